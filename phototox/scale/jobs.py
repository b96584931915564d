"""One unit of work -- one image -- done the same way by the single-process run and by every
cluster worker, so their outputs agree image for image. No Dask here."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..images import read_frames
from ..inference import Predictor
from ..outputs import SUMMARY_FIELDS, summary_rows, write_map_outputs
from ..pixelsize import assumed_warning, model_pixel_size, resolve_pixel_size, scale_factor
from ..provenance import provenance


@dataclass(frozen=True)
class RunSettings:
    """What a worker needs to reproduce the single-process run: the model and the map settings."""

    model: str = "default"
    model_name: str = "the shipped default model"
    device: str = "auto"
    batch_size: int | None = None
    stride: int = 32
    mode: str = "dense"
    threshold: float = 0.5
    normalisation: str = "local"
    colour: str = "refuse"
    chunk: int = 2048
    pixel_size_um: float | None = None

    @classmethod
    def from_args(cls, args) -> RunSettings:
        return cls(
            model=args.model,
            model_name=str(args.model),
            device=args.device,
            batch_size=args.batch_size,
            stride=args.stride,
            mode=args.mode,
            threshold=args.threshold,
            normalisation=args.normalisation,
            colour=args.colour,
            chunk=getattr(args, "chunk", None) or cls.chunk,
            pixel_size_um=getattr(args, "pixel_size", None),
        )

    def fingerprint(self) -> dict:
        """The settings that change results (a ledger written with others cannot be resumed)."""
        out = asdict(self)
        del out["device"], out["batch_size"]
        return out


def predict_image(predictor: Predictor, path: str, settings: RunSettings) -> list[dict]:
    """Summary rows of one image file (one per frame), as ``phototox predict`` writes them.

    OME-Zarr inputs are scored chunk by chunk (one row, nothing written)."""
    from .zarrio import is_zarr

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
    from .zarrio import is_zarr

    if chunked or is_zarr(path):
        return [chunked_row(predictor, path, Path(out_dir) / f"{stem}_map.ome.zarr", settings)]
    frames, results = _analyse(predictor, path, settings)
    write_map_outputs(Path(out_dir), stem, frames, results, overlay=overlay, provenance=provenance(predictor.model))
    return summary_rows(str(path), results, predictor.model.label, provenance(predictor.model))


def _analyse(predictor: Predictor, path: str, settings: RunSettings):
    """Frames of one file and their results at the model's pixel size, with the trust fields."""
    from ..assess import Assessor

    frames = read_frames(path, colour=settings.colour, min_size=predictor.window)
    assessor = Assessor(predictor)
    return frames, assessor.analyse(
        frames,
        str(path),
        path,
        settings.pixel_size_um,
        settings.stride,
        settings.mode,
        settings.threshold,
        settings.normalisation,
    )


def chunked_row(predictor: Predictor, path: str, out: Path | None, settings: RunSettings) -> dict:
    """Map a large image chunk by chunk into an OME-Zarr map (``out``, if given); its one summary row."""
    from .chunked import chunked_map
    from .zarrio import open_large

    frame = open_large(path)
    model_um = model_pixel_size(predictor.model.meta)
    size = resolve_pixel_size(settings.pixel_size_um, None, model_um, frame.pixel_size_um)
    if size.source in ("assumed", "unknown"):
        print(f"{path}: {assumed_warning(model_um)}", file=sys.stderr)
    result = chunked_map(
        predictor,
        frame,
        out,
        settings.stride,
        settings.mode,
        settings.threshold,
        settings.normalisation,
        settings.chunk,
        size.um,
        attrs={"source": str(path), "model": predictor.model.label, "pixel_size": size.describe()},
        factor=scale_factor(size.um, model_um),
    )
    row = {
        "path": str(path),
        "frame": 0,
        **result.summary(),
        "model": predictor.model.label,
        "pixel_size_um": size.um,
        "pixel_size_source": size.source if size.source != "assumed" else "assumed (model's)",
        "model_pixel_size_um": model_um,
    }
    return {**{k: row.get(k) for k in SUMMARY_FIELDS}, **provenance(predictor.model)}
