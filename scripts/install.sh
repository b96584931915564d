#!/usr/bin/env bash
# Install phototox with everything its tests use into the active Python environment (use a venv),
# plus the system packages (ImageJ 1.x, a JDK, Xvfb, Chromium) with apt when possible.
#   python3 -m venv .venv && . .venv/bin/activate && bash scripts/install.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  packages=$(grep -v '^#' "$repo/requirements/apt.txt" | tr '\n' ' ')
  if ! dpkg -s $packages >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends $packages
  fi
else
  echo "install.sh: no apt-get; install by hand: $(grep -v '^#' "$repo/requirements/apt.txt" | tr '\n' ' ')" >&2
fi

python -m pip install -q torch==2.13.0   # the CPU wheel first, so nothing pulls a CUDA build
python -m pip install -q -c "$repo/requirements/constraints.txt" -e "$repo[all]"
python -m pip install -q --no-deps -r "$repo/requirements/cellprofiler-cli.txt"
python -c "import phototox, phototox_fiji, phototox_zoo, cellprofiler_core; print('phototox', phototox.__version__, 'installed')"
