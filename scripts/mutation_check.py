"""Break the map code on purpose and see which tests notice (a check that the tests can fail).

Each mutation edits one source line in a temporary copy of the repository (the working tree is
never touched), runs the map tests against that copy (``PYTHONPATH`` puts the copy's ``phototox``
before the installed one) and lists the tests that failed. A mutation no fast test catches is a
hole in the suite; one whose pattern is missing means the code moved and this list needs updating.

    python scripts/mutation_check.py                  # all mutations, fast tests (-m "not slow")
    python scripts/mutation_check.py --all-tests      # slow tests too
    python scripts/mutation_check.py --only dense-constant --markdown
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/test_maps.py",
    "tests/test_maps_known_answers.py",
    "tests/test_contract.py",
    "tests/test_dense_tiles.py",
    "tests/test_shipped_model_real_data.py",
]


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (must occur exactly once) by ``new`` in the first of ``paths`` that exists.

    Several paths let one list serve before and after a module moved (preprocess.py became
    normalise.py with the box contract); a mutation whose files are all absent is reported n/a.
    """

    name: str
    what: str
    paths: tuple[str, ...]
    old: str
    new: str


MUTATIONS = (
    Mutation(
        "dense-constant",
        "dense grid replaced by a constant 0.51",
        ("phototox/maps/dense.py",),
        "    check_dense_stride(stride)\n    if device is None:\n",
        "    check_dense_stride(stride)\n    h, w = frame.shape[0], frame.shape[1]\n"
        "    return np.full(((h - WINDOW) // stride + 1, (w - WINDOW) // stride + 1), 0.51, np.float32)\n"
        "    if device is None:\n",
    ),
    Mutation(
        "crop-normalisation-identity",
        "per-crop normalisation (exact path, training) is the identity",
        ("phototox/maps/normalise.py",),
        "    return (crops - mean) / torch.where(std < EPS, torch.ones_like(std), std)",
        "    return crops",
    ),
    Mutation(
        "dense-normalisation-identity",
        "dense local normalisation is the identity (mean 0, std 1)",
        ("phototox/maps/dense.py",),
        "    x = frame.double()\n",
        "    return torch.zeros(out_h, out_w), torch.ones(out_h, out_w)\n    x = frame.double()\n",
    ),
    Mutation(
        "dense-stride-16",
        "dense grid at multiples of 16 px keeps the 16 px grid (ignores the stride)",
        ("phototox/maps/dense.py",),
        "        step = stride // NETWORK_STRIDE\n",
        "        step = 1\n",
    ),
    Mutation(
        "dense-stitch-swapped",
        "shift-and-stitch offsets swapped between y and x (strides < 16)",
        ("phototox/maps/dense.py",),
        "            oy, ox = sy * stride, sx * stride\n",
        "            oy, ox = sx * stride, sy * stride\n",
    ),
    Mutation(
        "exact-half-stride",
        "exact windows cut at half the stride (same grid shape)",
        ("phototox/maps/inference.py",),
        "batch = torch.stack([tensor[y : y + w, x : x + w] for y, x in chunk])",
        "batch = torch.stack([tensor[y // 2 : y // 2 + w, x // 2 : x // 2 + w] for y, x in chunk])",
    ),
    Mutation(
        "map-centres-half-stride",
        "upsampled map places window centres at half the stride",
        ("phototox/maps/windows.py",),
        "    return np.arange(count) * stride + (window - 1) / 2.0\n",
        "    return np.arange(count) * (stride // 2) + (window - 1) / 2.0\n",
    ),
    Mutation(
        "box-normalisation-identity",
        "box-contract frame normalisation is the identity (after the box merge)",
        ("phototox/maps/normalise.py",),
        "        return box_normalise(frame, contract.size)\n",
        "        return np.ascontiguousarray(frame, dtype=np.float32)\n",
    ),
)


def copy_tree(target: Path) -> None:
    """Copy the tracked and the untracked-but-not-ignored files of the repository to ``target``."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def apply(mutation: Mutation, root: Path) -> bool:
    """Edit the copy (False: none of its files exist here); refuse when the pattern is not found once."""
    for name in mutation.paths:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text()
        count = text.count(mutation.old)
        if count != 1:
            raise SystemExit(f"mutation {mutation.name}: pattern found {count} times in {name}; update it")
        path.write_text(text.replace(mutation.old, mutation.new))
        return True
    return False


def run_tests(root: Path, tests: list[str], marker: str | None) -> tuple[int, list[str], str]:
    """Run pytest in ``root``; return its exit code, the failed test ids and the summary line."""
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    if marker:
        command += ["-m", marker]
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.MULTILINE)))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return proc.returncode, failed, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", choices=[m.name for m in MUTATIONS], help="mutations to run (default: all)"
    )
    parser.add_argument("--all-tests", action="store_true", help="run the slow tests too")
    parser.add_argument("--tests", nargs="+", default=TESTS, help="test files to run against each mutation")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    marker = None if args.all_tests else "not slow"
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    rows, uncaught = [], []
    with tempfile.TemporaryDirectory(prefix="phototox-mutants-") as tmp:
        baseline = Path(tmp) / "baseline"
        copy_tree(baseline)
        code, failed, summary = run_tests(baseline, args.tests, marker)
        print(f"baseline (no mutation): {summary}", flush=True)
        if code != 0:
            print("the unmutated tests fail; fix them first:\n  " + "\n  ".join(failed))
            return 2
        for mutation in chosen:
            root = Path(tmp) / mutation.name
            copy_tree(root)
            if not apply(mutation, root):
                print(f"{mutation.name}: n/a (none of {', '.join(mutation.paths)} in this tree)", flush=True)
                shutil.rmtree(root)
                continue
            code, failed, summary = run_tests(root, args.tests, marker)
            rows.append((mutation, failed))
            if not failed:
                uncaught.append(mutation.name)
            print(f"{mutation.name}: {len(failed)} failed ({summary})", flush=True)
            shutil.rmtree(root)
    print()
    if args.markdown:
        print("| mutation | what | tests that fail |\n|---|---|---|")
        for mutation, failed in rows:
            print(f"| {mutation.name} | {mutation.what} | {'<br>'.join(failed) or '**none**'} |")
    else:
        for mutation, failed in rows:
            print(f"{mutation.name} -- {mutation.what}")
            print("    " + ("\n    ".join(failed) if failed else "NOT CAUGHT"))
    if uncaught:
        print(f"not caught by any test: {', '.join(uncaught)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
