"""Issue #23 (part B, class 4): time limits on everything that waits; splits and intervals bounded.

Reproductions: ``--scheduler`` to a port that accepts and never answers (no end after 150 s),
``--scheduler "not a url"`` (a traceback), Dask worker logs before the one-line error,
``--split 100000x100000`` (a hang), ``--split 100x100`` (a traceback), ``--interval 1e308``.
Every server here listens on 127.0.0.1 and is closed by the test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hostile_support import expect_refusal, run_cli_subprocess

from phototox.apps.timecourse_options import MAX_SPLIT, parse_split
from phototox.errors import PhototoxError


def stack(path: Path, side: int = 256) -> Path:
    frames = (np.random.default_rng(0).random((3, side, side)) * 3000 + 100).astype(np.uint16)
    tifffile.imwrite(path, frames, photometric="minisblack")
    return path


TIMECOURSE = ["--interval", "5", "--pixel-size", "0.5", "--no-sickness", "--quiet"]


@pytest.mark.parametrize(
    "split,problem",
    [("100000x100000", f"1..{MAX_SPLIT}"), ("100x100", f"1..{MAX_SPLIT}"), ("0x2", f"1..{MAX_SPLIT}"), ("2", "2x2")],
)
def test_absurd_split_is_refused_before_any_image_is_read(tmp_path, capsys, split, problem):
    start = time.monotonic()
    args = ["timecourse", tmp_path / "missing.tif", "--out", tmp_path / "out", "--split", split, *TIMECOURSE]
    expect_refusal(args, tmp_path, capsys, names=("--split",), problem=problem)
    assert time.monotonic() - start < 5


def test_split_leaving_tiny_pseudo_fields_is_one_line_naming_the_file(tmp_path, capsys):
    field = stack(tmp_path / "field.tif")
    args = ["timecourse", field, "--out", tmp_path / "out", "--split", "8x8", *TIMECOURSE]
    expect_refusal(args, tmp_path, capsys, names=(str(field),), problem="smaller than 64x64 px")


def test_parse_split_accepts_the_documented_form():
    assert parse_split("2x2") == (2, 2) and parse_split(f"{MAX_SPLIT}x1") == (MAX_SPLIT, 1)
    with pytest.raises(PhototoxError):
        parse_split(f"{MAX_SPLIT + 1}x1")


@pytest.mark.parametrize("interval", ["1e308", "nan", "0", "-5", "20000"])
def test_implausible_interval_is_refused(tmp_path, capsys, interval):
    field = stack(tmp_path / "field.tif")
    args = ["timecourse", field, "--out", tmp_path / "out", *TIMECOURSE, "--interval", interval]
    expect_refusal(args, tmp_path, capsys, names=("--interval",), problem="minutes between frames")


# --- Dask scheduler ---------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["not a url", "tcp://host", "tcp://h:99999", "http://x:1/../y", ""])
def test_scheduler_that_is_not_an_address_is_one_line(tmp_path, capsys, address):
    pytest.importorskip("distributed")
    field = stack(tmp_path / "img.tif")
    args = ["predict", field, "--scheduler", address or " ", "--quiet", "--device", "cpu"]
    expect_refusal(args, tmp_path, capsys, names=("--scheduler",), problem="not a scheduler address")


class SilentPort:
    """A loopback port that accepts connections and never sends a byte (closed on exit)."""

    def __enter__(self) -> int:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        return self.server.getsockname()[1]

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(self.server.accept()[0])
            except OSError:
                continue

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for sock in self.held:
            sock.close()
        self.server.close()


CHILD = (
    "import sys\nfrom phototox.screens import cluster\ncluster.SCHEDULER_DEADLINE_S = 3\n"
    "from phototox.apps.cli import main\nsys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.slow
def test_scheduler_that_accepts_and_never_answers_ends_at_the_deadline(tmp_path):
    """A child process (its abandoned connection thread ends with it), deadline 3 s: one line, exit 1."""
    pytest.importorskip("distributed")
    field = stack(tmp_path / "img.tif")
    repo = str(Path(__file__).resolve().parents[1])
    with SilentPort() as port:
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, "predict", field, "--scheduler", f"tcp://127.0.0.1:{port}", "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=repo,
            check=False,
        )
        seconds = time.monotonic() - start
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("phototox: warning: ")]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "no answer within 3 s" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert seconds < 60, seconds  # import time plus the 3 s deadline; before: no end


@pytest.mark.slow
def test_worker_failure_is_one_line_without_dask_logs(tmp_path):
    """In a child process: worker processes write to the inherited stderr, which capsys cannot see."""
    pytest.importorskip("distributed")
    good = stack(tmp_path / "good.tif")
    tiny = tmp_path / "tiny.tif"
    tifffile.imwrite(tiny, np.ones((40, 40), np.uint16))
    args = ["predict", good, tiny, "--cluster", "local:1", "--quiet", "--device", "cpu"]
    code, err, _ = run_cli_subprocess(args, tmp_path, timeout=180)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("phototox: warning: ")]
    assert code == 1 and len(lines) == 1 and str(tiny) in lines[0], err


def test_a_real_scheduler_is_reached_within_the_deadline():
    pytest.importorskip("distributed")
    import logging

    from distributed import LocalCluster

    from phototox.screens.cluster import client_within

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=logging.CRITICAL
    ) as local:
        client = client_within(local.scheduler_address, 30)
        try:
            assert client.submit(lambda x: x + 1, 1).result(timeout=30) == 2
        finally:
            client.close()


@pytest.mark.parametrize("finterval", [1e300, 1e-9])
def test_implausible_interval_in_the_files_metadata_is_refused(tmp_path, capsys, finterval):
    """The same bounds hold when the interval comes from the file (ImageJ ``finterval``), not --interval."""
    field = tmp_path / "meta.tif"
    frames = (np.random.default_rng(0).random((3, 128, 128)) * 4000).astype(np.uint16)
    tifffile.imwrite(field, frames, imagej=True, metadata={"axes": "TYX", "finterval": finterval, "tunit": "min"})
    args = ["timecourse", field, "--out", tmp_path / "out", "--pixel-size", "0.5", "--no-sickness", "--quiet"]
    expect_refusal(args, tmp_path, capsys, names=("meta.tif",), problem="from the file's metadata")
