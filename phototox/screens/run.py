"""Run ``predict`` or ``map`` over many images: on a Dask cluster when one is named, else here.

Both paths return the same rows as the single-process commands. On a cluster a ledger makes the
run resumable: images already done are skipped when the same run is started again.
"""

from __future__ import annotations

from pathlib import Path

from phototox.errors import PhototoxError
from phototox.screens.jobs import RunSettings
from phototox.screens.ledger import Ledger


def run_paths(
    kind: str,
    paths: list[str],
    settings: RunSettings,
    *,
    ledger_path: Path | None = None,
    out_dir: Path | None = None,
    stems: dict[str, str] | None = None,
    overlay: bool = True,
    chunked: bool = False,
    scheduler: str | None = None,
    cluster: str | None = None,
    progress: bool = True,
) -> list[dict]:
    """Rows for every image of ``paths`` (``kind`` is ``predict`` or ``map``; maps need ``out_dir``)."""
    if kind not in ("predict", "map"):
        raise ValueError(f"kind must be 'predict' or 'map', got {kind!r}")
    if kind == "map" and (out_dir is None or stems is None):
        raise ValueError("map runs need out_dir and stems")
    if scheduler or cluster:
        try:
            from phototox.screens.cluster import run_images
        except ImportError as exc:
            raise PhototoxError(
                f"--scheduler/--cluster need the scale extra (pip install 'phototox[scale]'): {exc}"
            ) from exc

        ledger = Ledger(ledger_path, settings.fingerprint()) if ledger_path else None
        return run_images(
            kind,
            paths,
            settings,
            ledger,
            str(out_dir) if out_dir else None,
            stems or {},
            overlay,
            chunked,
            scheduler,
            cluster,
            progress=progress,
        )
    from tqdm import tqdm

    from phototox.maps.inference import Predictor
    from phototox.screens.jobs import map_image, predict_image

    predictor = Predictor.from_spec(settings.model, settings.device, settings.batch_size, settings.engine)
    rows: list[dict] = []
    for path in tqdm(paths, desc=kind, unit="image", disable=not progress or len(paths) < 2):
        if kind == "predict":
            rows += predict_image(predictor, path, settings)
        else:
            assert out_dir is not None and stems is not None  # checked above
            rows += map_image(predictor, path, str(out_dir), stems[path], settings, overlay, chunked)
    return rows
