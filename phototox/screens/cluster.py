"""Many images on a Dask distributed cluster: one model load per worker, a batch of images per
task, results gathered into the same CSV and maps as the single-process run, resumable.

Each worker loads the model once, when :class:`PredictorPlugin` is registered (not per task).
Images go to the workers in batches (:func:`batches`: about :data:`BATCH_MAX` per task, the same
number of batches for every worker), so the scheduler handles a few tasks, not one per image. A
local cluster on Linux whose workers each run one torch thread starts them by ``fork`` (no fresh
interpreter importing torch per worker: about 1 s instead of 20 s on 2 busy cores); with more
threads per worker it spawns them, because a forked child of a process that has used OpenMP
threads hangs in its first multi-threaded op.
Tasks call :mod:`.jobs` -- the same code the single-process run calls -- and write their map files
atomically where the client asked (a filesystem the workers share, as on any HPC cluster). The
client records each finished image in a :class:`~.ledger.Ledger`; a rerun after a crash skips
what the ledger holds and computes every other image exactly once.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from math import ceil
from typing import TYPE_CHECKING

from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from phototox.errors import PhototoxError
from phototox.screens.jobs import RunSettings, map_image, predict_image
from phototox.screens.ledger import Ledger, input_key

if TYPE_CHECKING:
    from phototox.maps.inference import Predictor

PLUGIN_NAME = "phototox-predictor"
SCHEDULER_DEADLINE_S = 30.0
"""Whole time allowed to reach a scheduler and get its first answer (connection, handshake and
registration together: distributed's own timeout covers the connection only, and a port that
accepts but never answers held a client for good)."""
SCHEDULER_ADDRESS = re.compile(
    r"^(?:(?:tcp|tls|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>[0-9]{1,5})/?$"
)
"""``[PROTOCOL://]HOST:PORT`` of a Dask scheduler."""
BATCH_MAX = 8
"""Most images in one task: few tasks for the scheduler, and a crash loses at most a batch per worker."""


class PredictorPlugin(WorkerPlugin):
    """Loads the model once per worker and keeps the :class:`~phototox.maps.inference.Predictor`."""

    name = PLUGIN_NAME

    def __init__(self, settings: RunSettings, threads: int | None = None) -> None:
        self.settings = settings
        self.threads = threads
        self.predictor: Predictor | None = None
        self.loads = 0

    def setup(self, worker=None) -> None:
        import torch

        from phototox.maps.inference import Predictor

        if self.threads:
            torch.set_num_threads(self.threads)
        self.predictor = Predictor.from_spec(
            self.settings.model, self.settings.device, self.settings.batch_size, self.settings.engine
        )
        self.loads += 1


def worker_predictor() -> Predictor:
    """The predictor the plugin loaded on this worker."""
    plugin = get_worker().plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, PredictorPlugin) or plugin.predictor is None:
        raise PhototoxError("this Dask worker has no phototox model loaded (its PredictorPlugin did not set up)")
    return plugin.predictor


def _run_one(
    kind: str, path: str, settings: RunSettings, out_dir: str | None, stem: str | None, overlay: bool, chunked: bool
) -> list[dict]:
    predictor = worker_predictor()
    if kind == "predict":
        return predict_image(predictor, path, settings)
    if out_dir is None or stem is None:
        raise PhototoxError(f"{path}: a map job needs an output folder and a file stem")
    return map_image(predictor, path, out_dir, stem, settings, overlay, chunked)


def _run_batch(
    kind: str,
    paths: list[str],
    settings: RunSettings,
    out_dir: str | None,
    stems: dict[str, str],
    overlay: bool,
    chunked: bool,
) -> list[tuple[str, list[dict] | None, BaseException | None]]:
    """``(path, rows, None)`` per image of the batch, in order, up to the first failure ``(path, None, error)``."""
    done: list[tuple[str, list[dict] | None, BaseException | None]] = []
    for path in paths:
        try:
            done.append((path, _run_one(kind, path, settings, out_dir, stems.get(path), overlay, chunked), None))
        except Exception as exc:  # reported by the client with the image's path
            done.append((path, None, exc))
            break
    return done


def batches(paths: list[str], workers: int, most: int = BATCH_MAX) -> list[list[str]]:
    """``paths`` in order, split into a multiple of ``workers`` batches of at most ``most`` (sizes differ by 1 at most)."""
    if not paths:
        return []
    count = min(len(paths), max(1, workers) * ceil(len(paths) / (max(1, workers) * most)))
    size, extra = divmod(len(paths), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        out.append(paths[start:end])
        start = end
    return out


def parse_local(spec: str) -> int:
    """``local:N`` -> N workers (``local`` alone: one per CPU core)."""
    name, _, count = spec.partition(":")
    if name != "local":
        raise PhototoxError(
            f"--cluster {spec!r}: use local:N (N workers on this machine); for a running "
            "cluster pass --scheduler ADDRESS"
        )
    if not count:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise PhototoxError(f"--cluster {spec!r}: N must be a positive whole number of workers")
    return int(count)


def check_scheduler(address: str) -> str:
    """``address`` if it has the form of :data:`SCHEDULER_ADDRESS` with a port in 1..65535, else one line."""
    text = address.strip()
    match = SCHEDULER_ADDRESS.match(text)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise PhototoxError(
            f"--scheduler {address[:100]!r}: not a scheduler address (expected [tcp://]HOST:PORT, e.g. tcp://10.0.0.5:8786)"
        )
    return text


def client_within(address: str, deadline: float) -> Client:
    """A client of the scheduler at ``address``, connected and answered within ``deadline`` seconds.

    The attempt runs in a daemon thread that is abandoned (and ends with the process) when the
    deadline passes; distributed's own logging is silenced meanwhile, so a failure is one line.
    """
    outcome: dict = {}

    def attempt() -> None:
        try:
            outcome["client"] = Client(address, timeout=f"{deadline:g}s")
        except Exception as exc:  # whatever distributed raises, reported in one line below
            outcome["error"] = exc

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        thread = threading.Thread(target=attempt, name="phototox-scheduler-connect", daemon=True)
        thread.start()
        thread.join(deadline)
    finally:
        quiet.setLevel(level)
    if "client" in outcome:
        return outcome["client"]
    if "error" in outcome:
        reason = " ".join(str(outcome["error"]).split())[:200] or type(outcome["error"]).__name__
        raise PhototoxError(f"--scheduler {address}: cannot connect ({reason})")
    raise PhototoxError(
        f"--scheduler {address}: no answer within {deadline:g} s (is a Dask scheduler listening there?)"
    )


def connect(scheduler: str | None = None, cluster: str | None = None, processes: bool = True):
    """A Dask client (and the LocalCluster it owns, or None) plus torch threads per worker."""
    if scheduler:
        return client_within(check_scheduler(scheduler), SCHEDULER_DEADLINE_S), None, None
    import dask

    workers = parse_local(cluster or "local")
    threads = max(1, (os.cpu_count() or 1) // workers)
    method = start_method(threads)
    with dask.config.set({"distributed.worker.multiprocessing-method": method} if method else {}):
        local = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,  # failures reach the user as one line, not as worker logs
        )
    return Client(local), local, threads


def start_method(threads: int) -> str | None:
    """``fork`` for local workers of one torch thread on Linux (safe, and no torch import per worker), else Dask's default.

    ``PHOTOTOX_DASK_START`` (``fork``, ``spawn``, ``forkserver``) overrides it.
    """
    chosen = os.environ.get("PHOTOTOX_DASK_START")
    if chosen:
        if chosen not in ("fork", "spawn", "forkserver"):
            raise PhototoxError(f"PHOTOTOX_DASK_START={chosen!r}: use fork, spawn or forkserver")
        return chosen
    return "fork" if sys.platform.startswith("linux") and threads == 1 else None


def run_images(
    kind: str,
    inputs: Iterable[str],
    settings: RunSettings,
    ledger: Ledger | None = None,
    out_dir: str | None = None,
    stems: dict[str, str] | None = None,
    overlay: bool = True,
    chunked: bool = False,
    scheduler: str | None = None,
    cluster: str | None = None,
    client: Client | None = None,
    progress: bool = True,
) -> list[dict]:
    """Process every input on the cluster; summary rows in input order (as the single-process run).

    Images already in ``ledger`` are not recomputed; each finished one is recorded at once.
    """
    from tqdm import tqdm

    inputs = [str(p) for p in inputs]
    keys = {p: input_key(p) for p in inputs}
    done = dict(ledger.done) if ledger is not None else {}
    todo = list(dict.fromkeys(p for p in inputs if keys[p] not in done))
    unique = len(set(keys.values()))
    if done and ledger is not None and progress:  # counted from what is skipped, not from the ledger
        skipped = unique - len({keys[p] for p in todo})
        print(f"resuming: {skipped} of {unique} images already done ({ledger.path})", file=sys.stderr)
    owned = None
    if todo:
        if client is None:
            client, owned, threads = connect(scheduler, cluster)
        else:
            threads = None
        try:
            client.register_plugin(PredictorPlugin(settings, threads), name=PLUGIN_NAME)
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            futures = {
                client.submit(
                    _run_batch,
                    kind,
                    batch,
                    settings,
                    out_dir,
                    {p: (stems or {})[p] for p in batch if p in (stems or {})},
                    overlay,
                    chunked,
                    pure=False,
                ): batch
                for batch in batches(todo, workers)
            }
            with tqdm(
                total=unique, initial=unique - len(todo), desc=f"{kind} on cluster", unit="image", disable=not progress
            ) as bar:
                for future in as_completed(futures):
                    outcome: list[tuple[str, list[dict] | None, BaseException | None]]
                    try:
                        outcome = future.result()
                    except Exception as lost:  # the task itself failed (a lost worker)
                        outcome = [(futures[future][0], None, lost)]
                    for path, rows, error in outcome:
                        if rows is None:
                            exc = error or PhototoxError("no result")
                            for other in futures:
                                other.cancel()
                            where = (
                                f"; finished images are recorded in {ledger.path}, rerun to resume" if ledger else ""
                            )
                            if isinstance(exc, PhototoxError):
                                raise type(exc)(f"{exc}{where}") from exc
                            raise PhototoxError(f"{path}: {type(exc).__name__}: {exc}{where}") from exc
                        done[keys[path]] = rows
                        if ledger is not None:
                            ledger.record(keys[path], rows)
                        bar.update(1)
        finally:
            if owned is not None:
                client.close()
                owned.close()
    return [row for p in inputs for row in done[keys[p]]]
