"""Shared checks for the hostile-input tests: run the real CLI, expect one refusal line, tree unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phototox.apps.cli import main

SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"
"""A shipped model that gives meaningful (varying) probabilities on phototox.synth.fields fields."""

PEAK_RSS_KB_SOURCE = (
    "def peak_rss_kb():\n"
    "    try:\n"
    "        for line in open('/proc/self/status'):\n"
    "            if line.startswith('VmHWM:'):\n"
    "                return int(line.split()[1])\n"
    "    except OSError:\n"
    "        pass\n"
    "    import resource, sys\n"
    "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    return peak // 1024 if sys.platform == 'darwin' else peak\n"
)
"""Source of ``peak_rss_kb()`` for a child process: its own peak RSS in KiB (VmHWM). Not ``ru_maxrss``:
on Linux a child's ``ru_maxrss`` starts at its parent's RSS at fork time and survives ``exec``, so
inside a large pytest process it measured the parent (1.8 GB on CI for a 0.5 GB child). Without
``/proc`` (macOS) it falls back to ``ru_maxrss``, an upper bound there."""


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: files by (size, mtime_ns, mode), folders as 'dir'."""
    tree: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            tree[os.path.relpath(os.path.join(dirpath, name), root)] = ("dir",)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            tree[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return tree


def run_main(args: list[str], capsys, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``phototox ARGS`` in-process (cli.main); return (exit code, stdout, stderr)."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expect_refusal(
    args: list, root: Path, capsys, names: tuple[str, ...] = (), problem: str = "", cwd: Path | None = None
) -> str:
    """The command must fail with one stderr line naming ``names`` and ``problem``, changing nothing under ``root``."""
    before = snapshot(root)
    code, _, err = run_main(args, capsys, cwd)
    after = snapshot(root)
    # one-line warnings (e.g. "pixel size assumed") may come before the error; nothing else may
    lines = [line for line in err.strip().splitlines() if not line.startswith("phototox: warning: ")]
    assert code != 0, f"exit code 0 for {args}"
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    line = lines[0]
    assert line.startswith("phototox: error: "), line
    for name in names:
        assert str(name) in line, f"{name!r} not named in: {line}"
    assert problem.lower() in line.lower(), f"{problem!r} not in: {line}"
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (created or removed or changed), f"tree changed: created {created}, removed {removed}, changed {changed}"
    return line


def run_cli_subprocess(
    args: list, cwd: Path, umask: int | None = None, timeout: float = 600, max_address_bytes: int | None = None
) -> tuple[int, str, int]:
    """Run the real ``phototox`` entry point in a child process; return (exit code, stderr, peak RSS in KiB).

    ``max_address_bytes`` limits the child's address space (``ulimit -v``), so a runaway allocation
    fails there instead of swapping the machine."""
    code = (
        "import sys\n" + PEAK_RSS_KB_SOURCE + "from phototox.apps.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "sys.stderr.write(f'\\nPEAK_RSS_KB {peak_rss_kb()}\\n')\n"
        "sys.exit(rc)\n"
    )
    repo = str(Path(__file__).resolve().parents[1])  # this checkout's phototox, not an installed one
    path = os.pathsep.join(filter(None, (repo, os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}

    def preexec() -> None:
        if umask is not None:
            os.umask(umask)
        if max_address_bytes is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (max_address_bytes, max_address_bytes))

    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    peak = int(lines[-1].split()[1]) if lines and lines[-1].startswith("PEAK_RSS_KB") else -1
    return proc.returncode, "\n".join(lines[:-1] if peak >= 0 else lines), peak


def write_field(path: Path, height: int = 256, width: int = 288, dose: float = 0.7, seed: int = 1) -> np.ndarray:
    """A synthetic 16-bit phase-contrast field written as TIFF (or PNG by suffix, 8-bit)."""
    import tifffile

    from phototox.synth.fields import render_field

    image = render_field(height, width, dose, seed=seed).image
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, image, photometric="minisblack")
    else:
        import imageio.v3 as iio

        image = (image >> 8).astype(np.uint8)
        iio.imwrite(path, image)
    return image


def write_manifest(path: Path, rows: list[list], header=("path", "label", "group", "dose")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(str(v) for v in row) for row in [list(header), *rows]) + "\n")
    return path


def small_dataset(root: Path) -> list[list]:
    """Four small fields (two healthy, two sick) under ``root``; the manifest rows naming them."""
    rows = []
    for i, dose in enumerate((0.0, 0.1, 0.9, 1.0)):
        write_field(root / f"f{i}.tif", 240, 240, dose, seed=i)
        rows.append([f"f{i}.tif", "sick" if dose >= 0.5 else "healthy", f"g{i}", dose])
    return rows


skip_if_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
