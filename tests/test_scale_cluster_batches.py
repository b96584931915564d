"""Cluster work in batches (issue 30): every image once and in order, balanced across workers, a
failure inside a batch names its image and keeps the images finished before it; the start method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SYNTH_MODEL = "shipped:deadnet-gap-synthetic-v2"


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 16, 17, 100])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batches_cover_every_image_once_in_order_and_balanced(n, workers):
    pytest.importorskip("distributed")
    from phototox.screens.cluster import BATCH_MAX, batches

    paths = [f"img{i}.tif" for i in range(n)]
    got = batches(paths, workers)
    assert [p for b in got for p in b] == paths
    assert all(1 <= len(b) <= BATCH_MAX for b in got)
    assert max(map(len, got)) - min(map(len, got)) <= 1
    assert len(got) == n or len(got) % workers == 0  # same number of batches per worker when there are enough images
    assert len(got) < n or n <= workers  # batches, not one task per image
    assert batches([], workers) == []


def test_start_method(monkeypatch):
    pytest.importorskip("distributed")
    import sys

    from phototox.errors import PhototoxError
    from phototox.screens.cluster import start_method

    monkeypatch.delenv("PHOTOTOX_DASK_START", raising=False)
    linux = sys.platform.startswith("linux")
    assert start_method(1) == ("fork" if linux else None)
    assert start_method(2) is None  # a forked child of an OpenMP parent hangs with more than one thread
    monkeypatch.setenv("PHOTOTOX_DASK_START", "spawn")
    assert start_method(1) == "spawn"
    monkeypatch.setenv("PHOTOTOX_DASK_START", "vfork")
    with pytest.raises(PhototoxError, match="PHOTOTOX_DASK_START"):
        start_method(1)


@pytest.mark.slow
def test_a_bad_image_inside_a_batch_is_named_and_the_ones_before_it_are_kept(tmp_path):
    pytest.importorskip("distributed")
    import tifffile
    from distributed import Client, LocalCluster

    from phototox.errors import PhototoxError
    from phototox.screens.cluster import run_images
    from phototox.screens.jobs import RunSettings
    from phototox.screens.ledger import Ledger
    from phototox.synth.fields import render_field

    paths = []
    for i in range(4):
        path = tmp_path / f"f{i}.tif"
        tifffile.imwrite(path, render_field(240, 260, i / 3, seed=90 + i).image, photometric="minisblack")
        paths.append(str(path))
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all")
    inputs = [paths[0], paths[1], str(bad), paths[2], paths[3]]  # one worker, one batch: the bad one in the middle
    settings = RunSettings(model=SYNTH_MODEL, model_name=SYNTH_MODEL, device="cpu", stride=64)
    ledger_path = tmp_path / "run.ledger.jsonl"
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    try:
        with Client(cluster) as client, pytest.raises(PhototoxError, match="broken.tif") as caught:
            run_images(
                "predict", inputs, settings, Ledger(ledger_path, settings.fingerprint()), client=client, progress=False
            )
    finally:
        cluster.close()
    assert str(ledger_path) in str(caught.value)  # the message says how to resume
    records = [json.loads(line) for line in ledger_path.read_text().splitlines()[1:]]
    recorded = sorted(Path(r["key"].split("|")[0]).name for r in records if "key" in r)
    assert recorded == ["f0.tif", "f1.tif"]  # finished before the failure, so a rerun skips them


def test_ledgers_resume_only_runs_with_the_same_numbers(tmp_path):
    """bf16 rows never join exact rows in one ledger; a ledger from before --checks reached screens
    (no ``checks`` key: it ran all checks) resumes a run with all checks, not one with none."""
    import json

    from phototox.errors import PhototoxError
    from phototox.screens.jobs import RunSettings
    from phototox.screens.ledger import Ledger

    exact, onnx, bf16 = RunSettings(engine="torch"), RunSettings(engine="onnx"), RunSettings(engine="bf16")
    assert exact.fingerprint() == onnx.fingerprint() != bf16.fingerprint()
    Ledger(tmp_path / "exact.jsonl", exact.fingerprint())
    Ledger(tmp_path / "exact.jsonl", onnx.fingerprint())  # the exact engines resume each other
    with pytest.raises(PhototoxError, match="other settings"):
        Ledger(tmp_path / "exact.jsonl", bf16.fingerprint())
    old = {k: v for k, v in exact.fingerprint().items() if k != "checks"}
    (tmp_path / "old.jsonl").write_text(json.dumps({"settings": old}) + "\n")
    Ledger(tmp_path / "old.jsonl", exact.fingerprint())
    with pytest.raises(PhototoxError, match="other settings"):
        Ledger(tmp_path / "old.jsonl", RunSettings(checks="none").fingerprint())
