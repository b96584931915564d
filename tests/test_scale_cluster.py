"""Many images on a Dask cluster: same rows and maps as one process, one model load per worker,
resumable after a crash, and no Dask at all without the flag (issue 17)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Eight fields at different doses (outputs vary from image to image)."""
    import tifffile

    from phototox.synth.fields import render_field

    folder = tmp_path_factory.mktemp("fields")
    paths = []
    for i, dose in enumerate([0.0, 1.0, 0.2, 0.9, 0.5, 0.0, 0.8, 0.3]):
        path = folder / f"field_{i}.tif"
        tifffile.imwrite(path, render_field(260, 300, dose, seed=40 + i).image, photometric="minisblack")
        paths.append(path)
    return paths


def _settings(**kw):
    from phototox.screens.jobs import RunSettings

    return RunSettings(model=SYNTH_MODEL, model_name=SYNTH_MODEL, device="cpu", stride=32, **kw)


def _single_process_rows(paths, settings):
    from phototox.maps.inference import Predictor
    from phototox.screens.jobs import predict_image

    predictor = Predictor.from_spec(settings.model, "cpu")
    return [row for p in paths for row in predict_image(predictor, str(p), settings)]


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_dask_is_not_imported_without_the_flag(images, tmp_path):
    code = (
        "import sys; from phototox.apps.cli import main; "
        f"rc = main(['predict', {str(images[0])!r}, '--model', {SYNTH_MODEL!r}, '--quiet', '--out', "
        f"{str(tmp_path / 'p.csv')!r}]); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'ome_zarr')); "
        "print('LOADED', bad); sys.exit(rc or bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOADED []" in result.stdout
    assert (tmp_path / "p.csv").is_file()


@pytest.mark.slow
def test_cluster_rows_equal_single_process_rows_and_one_load_per_worker(images, client):
    from phototox.screens.cluster import PLUGIN_NAME, run_images

    settings = _settings()
    rows = run_images("predict", images, settings, client=client, progress=False)
    expected = _single_process_rows(images, settings)
    assert [r["path"] for r in rows] == [str(p) for p in images]
    assert len({round(r["mean_sick_probability"], 3) for r in rows}) > 3  # varied outputs
    for got, want in zip(rows, expected):
        assert got == {k: (pytest.approx(v, abs=1e-6) if isinstance(v, float) else v) for k, v in want.items()}
    loads = client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].loads)
    assert sorted(loads.values()) == [1, 1]  # eight images, two workers, two model loads


@pytest.mark.slow
def test_interrupted_run_resumes_without_recomputing_or_duplicating(images, client, tmp_path, monkeypatch):
    from phototox.screens.cluster import run_images
    from phototox.screens.ledger import Ledger
    from phototox.trust.assess import Assessor

    settings = _settings()
    ledger_path = tmp_path / "run.ledger.jsonl"
    half = images[:4]
    run_images("predict", half, settings, Ledger(ledger_path, settings.fingerprint()), client=client, progress=False)
    with ledger_path.open("a") as handle:  # the crash hit while the next record was being written
        handle.write('{"key": "' + str(images[4]) + "|12")
    calls = []
    original = Assessor.analyse  # every image goes through the assessor (pixel size, domain, quality)
    monkeypatch.setattr(Assessor, "analyse", lambda self, *a, **k: calls.append(a[3]) or original(self, *a, **k))
    rows = run_images(
        "predict", images, settings, Ledger(ledger_path, settings.fingerprint()), client=client, progress=False
    )
    assert sorted(calls) == sorted(str(p) for p in images[4:])  # only the missing half was computed
    assert [r["path"] for r in rows] == [str(p) for p in images]  # every image once, in input order
    records = [json.loads(line) for line in ledger_path.read_text().splitlines()[1:] if line.endswith("}")]
    keys = [r["key"] for r in records if "key" in r]
    assert len(keys) == len(set(keys)) == len(images)
    expected = _single_process_rows(images, settings)
    assert [r["mean_sick_probability"] for r in rows] == pytest.approx(
        [r["mean_sick_probability"] for r in expected], abs=1e-6
    )
    from phototox.errors import PhototoxError

    with pytest.raises(PhototoxError, match="other settings"):
        Ledger(ledger_path, _settings(threshold=0.7).fingerprint())


@pytest.mark.slow
def test_cli_map_on_a_local_cluster_equals_the_plain_run(images, tmp_path):
    """The real command with --cluster local:2 (worker processes) against the plain command."""
    import tifffile

    from phototox.apps.cli import main

    subset = [str(p) for p in images[:3]]
    common = ["--model", SYNTH_MODEL, "--device", "cpu", "--stride", "32", "--quiet", "--no-overlay"]
    assert main(["map", *subset, "--out", str(tmp_path / "plain"), *common]) == 0
    assert main(["map", *subset, "--out", str(tmp_path / "dask"), "--cluster", "local:2", *common]) == 0
    assert _read_csv(tmp_path / "plain" / "summary.csv") == _read_csv(tmp_path / "dask" / "summary.csv")
    for p in images[:3]:
        a = tifffile.imread(tmp_path / "plain" / f"{p.stem}_map.tif")
        b = tifffile.imread(tmp_path / "dask" / f"{p.stem}_map.tif")
        np.testing.assert_array_equal(a, b)
    assert not list((tmp_path / "dask").glob(".*ledger*"))  # the ledger goes once the summary is written


def test_bad_cluster_spec_is_one_line(images, capsys):
    pytest.importorskip("distributed")
    from phototox.apps.cli import main

    assert main(["predict", str(images[0]), "--cluster", "remote:3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cluster 'remote:3'" in err


@pytest.mark.slow
def test_a_killed_cluster_run_resumes_where_it_stopped(tmp_path):
    """The real command, killed with SIGKILL (process group, workers too) mid-run, then started again."""
    pytest.importorskip("distributed")
    import os
    import signal
    import time

    import tifffile

    from phototox.synth.fields import render_field

    paths = []
    for i in range(16):
        path = tmp_path / f"field_{i:02d}.tif"
        tifffile.imwrite(path, render_field(400, 420, (i % 5) / 4, seed=70 + i).image, photometric="minisblack")
        paths.append(str(path))
    out, ledger = tmp_path / "run.csv", tmp_path / ".run.csv.ledger.jsonl"
    command = [sys.executable, "-m", "phototox", "predict", *paths, "--model", SYNTH_MODEL, "--device", "cpu"]
    command += ["--stride", "32", "--cluster", "local:1", "--out", str(out)]

    def finished_records() -> int:
        if not ledger.exists():
            return 0
        return sum(1 for line in ledger.read_text().splitlines()[1:] if line.endswith("}"))

    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 300
        while finished_records() < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    done_before = finished_records()
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    assert 2 <= done_before < len(paths)
    assert not out.exists()  # no half-written result

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resuming: {done_before} of {len(paths)} images already done" in second.stderr
    rows = _read_csv(out)
    assert [r["path"] for r in rows] == paths  # each image once, in input order
    expected = _single_process_rows(paths, _settings())
    assert [float(r["mean_sick_probability"]) for r in rows] == pytest.approx(
        [r["mean_sick_probability"] for r in expected], abs=1e-6
    )
    assert not ledger.exists()  # removed once the result is written
