"""One unit of work -- one image -- done the same way by the single-process run and by every
cluster worker, so their outputs agree image for image. No Dask here."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from phototox.errors import PhototoxError
from phototox.io.images import read_frames
from phototox.maps.inference import Predictor
from phototox.maps.settings import MapSettings
from phototox.results.outputs import SUMMARY_FIELDS, summary_rows, write_map_outputs
from phototox.results.provenance import provenance
from phototox.screens.zarrio import is_zarr, open_large
from phototox.trust.assess import Assessor
from phototox.trust.pixelsize import scale_factor, to_model_scale


@dataclass(frozen=True)
class RunSettings:
    """What a worker needs to reproduce the single-process run: the model and the map settings."""

    model: str = "default"
    model_name: str = "the shipped default model"
    device: str = "auto"
    batch_size: int | None = None
    engine: str = "auto"
    stride: int = 32
    mode: str = "dense"
    threshold: float = 0.5
    normalisation: str = "local"
    colour: str = "refuse"
    chunk: int = 2048
    pixel_size_um: float | None = None
    checks: str = "all"
    """``all`` or ``none`` (``--checks``): the trust checks, as in the single-image commands"""

    def __post_init__(self) -> None:
        self.map_settings  # noqa: B018 -- the map settings are validated once, when the run's settings are made
        if self.checks not in ("all", "none"):
            raise PhototoxError(f"--checks must be all or none, got {self.checks!r}")

    @property
    def map_settings(self) -> MapSettings:
        """The :class:`MapSettings` of this run."""
        return MapSettings(self.stride, self.mode, self.threshold, self.normalisation, self.colour)

    @classmethod
    def from_args(cls, args) -> RunSettings:
        return cls(
            model=args.model,
            model_name=str(args.model),
            device=args.device,
            batch_size=args.batch_size,
            engine=getattr(args, "engine", "auto"),
            stride=args.stride,
            mode=args.mode,
            threshold=args.threshold,
            normalisation=args.normalisation,
            colour=args.colour,
            chunk=getattr(args, "chunk", None) or cls.chunk,
            pixel_size_um=getattr(args, "pixel_size", None),
            checks=getattr(args, "checks", "all"),
        )

    def fingerprint(self) -> dict:
        """The settings that change results (a ledger written with others cannot be resumed)."""
        out = asdict(self)
        del out["device"], out["batch_size"], out["engine"]  # the exact engines give the same numbers
        if self.engine == "bf16":  # approximate: never resumed into a run of exact rows, nor the reverse
            out["engine"] = "bf16"
        return out


def predict_image(predictor: Predictor, path: str, settings: RunSettings) -> list[dict]:
    """Summary rows of one image file (one per frame), as ``phototox predict`` writes them.

    OME-Zarr inputs are scored chunk by chunk (one row, nothing written)."""

    if is_zarr(path):
        return [chunked_row(predictor, path, None, settings)]
    _frames, results = _analyse(predictor, path, settings)
    return summary_rows(str(path), results, predictor.model.label, provenance(predictor.model))


def map_image(
    predictor: Predictor,
    path: str,
    out_dir: str,
    stem: str,
    settings: RunSettings,
    overlay: bool = True,
    chunked: bool = False,
) -> list[dict]:
    """Map outputs of one image, as ``phototox map`` writes them; summary rows returned.

    OME-Zarr inputs, and any input when ``chunked``, are mapped chunk by chunk into
    ``<stem>_map.ome.zarr`` (see :mod:`.chunked`); others into ``<stem>_map.tif`` and the overlay.
    """

    if chunked or is_zarr(path):
        return [chunked_row(predictor, path, Path(out_dir) / f"{stem}_map.ome.zarr", settings)]
    frames, results = _analyse(predictor, path, settings)
    write_map_outputs(Path(out_dir), stem, frames, results, overlay=overlay, provenance=provenance(predictor.model))
    return summary_rows(str(path), results, predictor.model.label, provenance(predictor.model))


def _analyse(predictor: Predictor, path: str, settings: RunSettings):
    """Frames of one file and their results at the model's pixel size, with the trust verdicts."""
    frames = read_frames(path, colour=settings.colour, min_size=predictor.window)
    assessor = Assessor(predictor, checks=settings.checks)
    size = assessor.pixel_size(settings.pixel_size_um, path)
    return frames, assessor.analyse(frames, settings.map_settings, size, str(path))


TRUST_CROP = 2048
"""Side (pixels at the model's scale) of the central crop whose trust verdicts stand for a chunked frame."""


def chunked_row(predictor: Predictor, path: str, out: Path | None, settings: RunSettings) -> dict:
    """Map a large image chunk by chunk into an OME-Zarr map (``out``, if given); its one summary row.

    Its trust verdicts (domain, quality) come from the central crop of at most
    :data:`TRUST_CROP` px at the model's scale (memory stays bounded for any frame).
    """
    from phototox.screens.chunked import chunked_map

    frame = open_large(path)
    assessor = Assessor(predictor, warn=lambda line: print(f"{path}: {line}", file=sys.stderr), checks=settings.checks)
    size = assessor.pixel_size(settings.pixel_size_um, None, frame.pixel_size_um)
    factor = scale_factor(size.um, assessor.model_um)
    result = chunked_map(
        predictor,
        frame,
        out,
        settings.map_settings,
        settings.chunk,
        size.um,
        attrs={"source": str(path), "model": predictor.model.label, "pixel_size": size.describe()},
        factor=factor,
    )
    h, w = frame.shape
    side = max(predictor.window, int(TRUST_CROP / factor))
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    crop = np.asarray(frame[y0 : y0 + side, x0 : x0 + side], np.float32)
    scaled = to_model_scale(crop, factor, predictor.window, str(path))
    result.trust = assessor.trust_of_region(crop, scaled, size, str(path))
    row = {"path": str(path), "frame": 0, **result.summary(), "model": predictor.model.label}
    return {**{k: row.get(k) for k in SUMMARY_FIELDS}, **provenance(predictor.model)}
