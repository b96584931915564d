"""What a control reference (``--reference``, 'unlike your controls') adds to a map: one pass against two.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_reference_pass.py --rounds 5

On a real 1280x960 celldeath field (La Greca et al., PLoS ONE 2021, MIT; ``../shared/data`` or
``$PHOTOTOX_SHARED_DATA``), with the shipped default model on the default engine, CPU time at one
thread (median of alternating rounds) of: the bare map (``--checks none``); the map with all checks;
the map with all checks and a reference fitted on 4 other healthy fields, as now (one dense pass
feeds P(sick), the domain check and the novelty features) and as before (a PyTorch pass for P(sick)
and the novelty features, then a second pass for the domain features). The two ways give the same
numbers (``tests/test_novelty.py::test_a_reference_run_takes_one_pass_with_the_same_numbers``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phototox.io.images import read_frames  # noqa: E402
from phototox.maps.inference import Predictor  # noqa: E402
from phototox.maps.settings import MapSettings  # noqa: E402
from phototox.trust.assess import Assessor  # noqa: E402
from phototox.trust.novelty import analyse_with_novelty, fit_reference, frame_window_features  # noqa: E402

DATA = Path(os.environ.get("PHOTOTOX_SHARED_DATA", ROOT.parent / "shared" / "data")) / "celldeath_u2os"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (DATA / "manifest.csv").is_file():
        print(f"{DATA}: not found; set PHOTOTOX_SHARED_DATA", file=sys.stderr)
        return 2
    with (DATA / "manifest.csv").open() as handle:
        healthy = [DATA / r["path"] for r in csv.DictReader(handle) if r["label"] == "healthy"]
    frames = [read_frames(p)[0].astype(np.float32) for p in healthy[:5]]
    predictor = Predictor.from_spec("default", "cpu")
    reference = fit_reference([frame_window_features(predictor, f) for f in frames[1:]], info={"model": "default"})
    frame, settings = frames[0], MapSettings(stride=16)
    bare = Assessor(predictor, warn=lambda line: None, checks="none")
    checked = Assessor(predictor, warn=lambda line: None)
    with_reference = Assessor(predictor, warn=lambda line: None, novelty=reference)
    size = checked.pixel_size(0.434)

    def one_pass() -> None:
        with_reference.analyse(frame, settings, size)

    def two_passes() -> None:  # what the Assessor did before: the reference's own pass, then the domain's
        analyse_with_novelty(predictor, frame, settings, reference)
        checked._trust(frame, frame, size, "field", checked.domain, None)

    runs = {
        "bare map (--checks none)": lambda: bare.analyse(frame, settings, size),
        "all checks": lambda: checked.analyse(frame, settings, size),
        "all checks + reference, one pass (now)": one_pass,
        "all checks + reference, two passes (before)": two_passes,
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up (ONNX session, caches)
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.process_time()
            run()
            times[name].append(time.process_time() - start)
    base = statistics.median(times["bare map (--checks none)"])
    print(f"CPU: 1 thread, load {os.getloadavg()[0]:.1f}; engine {checked.analyse(frame, settings, size)[0].engine}")
    print("| run | CPU s | x bare map |\n|---|---|---|")
    report = {}
    for name, values in times.items():
        median = statistics.median(values)
        report[name] = {"cpu_s": median, "ratio": median / base}
        print(f"| {name} | {median:.2f} | {median / base:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
