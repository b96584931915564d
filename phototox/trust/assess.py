"""The front door: every front end analyses images through :class:`Assessor`.

CLI (predict, map, dose-response, calibrate), HTTP server and ImageJ bridge (:mod:`phototox.results.analysis_requests`),
CellProfiler, time-course, plates and chunked maps all call :meth:`Assessor.analyse` (or, for
frames too large for memory, :meth:`Assessor.trust_of_region`). For every frame it (1) takes the
image's pixel size (:meth:`Assessor.pixel_size`: user, file, else the model's, assumed and said
so), (2) resamples the frame to the model's pixel size, (3) runs the one inference path
(:meth:`phototox.maps.inference.Predictor.analyse_frame`) with :class:`~phototox.maps.settings.MapSettings`
validated once when they were made, (4) brings the map back to the image's own size, and fills the
result's typed :class:`~phototox.schema.Trust`: pixel sizes, domain score, fine detail and
``out_of_domain`` (:mod:`phototox.trust.domain`), quality flags (:mod:`phototox.trust.quality`) and, when
control fields are known, the difference to them (:mod:`phototox.trust.controls`). The map's ``stride``
is in pixels at the model's scale.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from phototox.errors import ImageInputError, PhototoxError
from phototox.io.images import read_frames
from phototox.maps.dense import TapsTogether, TileTaps
from phototox.maps.inference import FrameResult, NotANumberError, Predictor, summarise_map
from phototox.maps.settings import MapSettings
from phototox.schema import Trust, columns
from phototox.shapes import plane_shape
from phototox.trust.controls import ControlReference
from phototox.trust.domain import DomainStats, domain_warning
from phototox.trust.domain_pass import DomainTaps, model_border
from phototox.trust.novelty import (
    NoveltyReference,
    NoveltyTaps,
    analyse_with_novelty,
    dense_features,
    novelty_from_features,
)
from phototox.trust.pixelsize import (
    PIXEL_SIZE_HINT,
    PixelSize,
    assumed_warning,
    manifest_pixel_size,
    model_pixel_size,
    resample,
    resolve_pixel_size,
    scale_factor,
    to_model_scale,
    training_frames,
)
from phototox.trust.quality import quality_flags

TRUST_FIELDS = columns("trust") + columns("controls")
"""Columns this layer fills in every result row (blank where not known)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class Assessor:
    """A Predictor plus the model's pixel size, domain statistics and (optional) control reference."""

    predictor: Predictor
    controls: ControlReference | None = None
    warn: Callable[[str], None] = _stderr
    domain_check: bool = True
    checks: str = "all"
    """``all``: domain and quality checks; ``none``: skipped, and every result says so (``checks`` column)"""
    warned: set = field(default_factory=set)
    pixel_size_hint: str = PIXEL_SIZE_HINT
    """How this front end asks for the pixel size, in the assumed-size warning."""
    novelty: NoveltyReference | None = None
    """'unlike your controls' reference (:mod:`phototox.trust.novelty`): adds its map and columns"""

    @property
    def model_um(self) -> float | None:
        return model_pixel_size(self.predictor.model.meta)

    @property
    def domain(self) -> DomainStats | None:
        if not self.domain_check or self.checks == "none":
            return None
        return DomainStats.from_meta(self.predictor.model.meta)

    def _warn_once(self, key: str, line: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.warn(line)

    def pixel_size(
        self, user_um: float | None, path: str | os.PathLike | None = None, metadata_um: float | None = None
    ) -> PixelSize:
        """The image's pixel size; warns once per run when it had to be assumed."""
        size = resolve_pixel_size(user_um, path, self.model_um, metadata_um)
        if size.source in ("assumed", "unknown"):
            self._warn_once("assumed", assumed_warning(self.model_um, self.pixel_size_hint))
        return size

    def analyse(
        self,
        frames: np.ndarray,
        settings: MapSettings,
        pixel_size: PixelSize,
        source: str = "image",
        mask: np.ndarray | None = None,
        progress: Callable[[int], None] | None = None,
        window_progress: Callable[[int], None] | None = None,
    ) -> list[FrameResult]:
        """Every frame of a validated (T, H, W) stack (or one (H, W) frame) with its trust verdicts.

        ``mask`` (the frame's size) restricts the summary numbers to its pixels. ``progress`` is
        called once per frame, ``window_progress`` per batch of windows (exact mode). With
        controls, the frames are one field: every frame carries the comparison of their mean
        P(sick) with the control fields.
        """
        frames = np.asarray(frames)
        stack = frames[None] if frames.ndim == 2 else frames
        domain = self.domain
        results = []
        for i, frame in enumerate(stack):
            name = source if len(stack) == 1 else f"{source} frame {i}"
            results.append(self._analyse_frame(frame, settings, pixel_size, name, domain, mask, window_progress))
            if progress is not None:
                progress(1)
        if self.controls is not None:  # the frames of one call are one field: one comparison
            field_value = float(np.mean([r.mean_sick_probability for r in results]))
            compared = self.controls.compare(field_value, source)
            for r in results:
                r.trust.set(compared)
        return results

    def _analyse_frame(
        self,
        frame: np.ndarray,
        settings: MapSettings,
        size: PixelSize,
        source: str,
        domain: DomainStats | None,
        mask: np.ndarray | None,
        window_progress: Callable[[int], None] | None,
    ) -> FrameResult:
        """One frame at the model's scale, map back at the frame's size, trust verdicts filled."""
        if mask is not None and mask.shape != frame.shape:
            raise ImageInputError(f"{source}: mask of shape {mask.shape} does not match the image shape {frame.shape}")
        factor = scale_factor(size.um, self.model_um)
        scaled = to_model_scale(frame, factor, self.predictor.window, source)
        taps, novelty_taps = None, None
        one_pass = settings.mode == "dense" and self.predictor.contract.kind == "box"
        if domain is not None and domain.one_pass and settings.mode == "dense":
            taps = DomainTaps(plane_shape(scaled), model_border(self.predictor))
        reference = self.novelty
        if reference is not None and one_pass:  # P(sick), domain and novelty features from one pass
            reference.check_model(self.predictor.model)
            novelty_taps = NoveltyTaps(plane_shape(scaled), model_border(self.predictor))
        handed: TileTaps | None = novelty_taps if taps is None else taps
        if taps is not None and novelty_taps is not None:
            handed = TapsTogether(taps, novelty_taps)
        try:
            if reference is not None and novelty_taps is not None:
                result = self.predictor.analyse_frame(scaled, settings, window_progress=window_progress, taps=handed)
                feats = novelty_taps.feats
                if not novelty_taps.done or feats is None:  # the pass could not hand them over: one more pass
                    feats = dense_features(self.predictor, scaled, settings.normalisation)[1]
                result.novelty_map, novelty = novelty_from_features(
                    reference,
                    feats,
                    plane_shape(scaled),
                    lambda line: self._warn_once("novelty-size", line),
                )
            elif self.novelty is not None:
                taps = None  # analyse_with_novelty makes its own pass
                result, novelty = analyse_with_novelty(
                    self.predictor,
                    scaled,
                    settings,
                    self.novelty,
                    window_progress,
                    lambda line: self._warn_once("novelty-size", line),
                )
            else:
                result = self.predictor.analyse_frame(scaled, settings, window_progress=window_progress, taps=taps)
        except NotANumberError as exc:
            raise NotANumberError(f"{source}: {exc}") from None
        if factor != 1.0:
            result.sick_map = np.clip(resample(result.sick_map, plane_shape(frame), order=1), 0.0, 1.0)
        if factor != 1.0 or mask is not None:
            (result.mean_sick_probability, result.sick_area_fraction, result.label, result.confidence) = summarise_map(
                result.sick_map, settings.threshold, mask
            )
        result.trust = self._trust(
            frame, scaled, size, source, domain, taps if taps is not None and taps.done else None
        )
        if self.novelty is not None:
            result.trust.set(novelty)
            if factor != 1.0 and result.novelty_map is not None:
                result.novelty_map = resample(result.novelty_map, plane_shape(frame), order=1)
        return result

    def _trust(
        self,
        frame: np.ndarray,
        scaled: np.ndarray,
        size: PixelSize,
        source: str,
        domain: DomainStats | None,
        taps: DomainTaps | None = None,
    ) -> Trust:
        """Pixel sizes, domain verdict and quality flags of a frame (``scaled``: at the model's scale).

        ``taps``: the domain features the dense pass already collected (else computed here).
        """
        trust = Trust(
            pixel_size_um=None if size.um is None else round(size.um, 5),
            pixel_size_source=size.source if size.source != "assumed" else "assumed (model's)",
            model_pixel_size_um=self.model_um,
            checks=self.checks,
        )
        if self.checks == "none":
            return trust
        if domain is not None:
            features = taps.features() if taps is not None else domain.features(self.predictor, scaled)
            verdict = domain.verdict(features)
            trust.set(verdict.fields())
            if verdict.out_of_domain:
                self.warn(domain_warning(source, verdict))
        focus_reference = (self.predictor.model.meta.get("quality") or {}).get("focus_reference")
        return trust.set(quality_flags(frame, scaled, focus_reference))

    def trust_of_region(self, region: np.ndarray, scaled: np.ndarray, size: PixelSize, source: str) -> Trust:
        """Trust verdicts of a frame too large for memory, from one region read of it.

        ``region`` is a crop at the image's scale and ``scaled`` the same crop at the model's
        (chunked maps read the central crop); the verdicts then describe that crop.
        """
        return self._trust(region, scaled, size, source, self.domain)


CONTROLS_HEADER = (
    "against your controls: each file is one field, compared with the spread of the control fields "
    "(95% prediction interval for one new control field); one field can be 'unlike your controls' or show "
    "no difference, never 'sicker' (that needs several fields or dishes per arm)"
)


def control_lines(rows: list[dict]) -> list[str]:
    """One line per file with a control comparison: the verdict, the difference and its prediction interval."""
    lines, seen = [], set()
    for r in rows:
        if r.get("vs_controls") in (None, "") or r["path"] in seen:
            continue
        seen.add(r["path"])
        frames = [float(x["mean_sick_probability"]) for x in rows if x["path"] == r["path"]]
        what = f"P(sick) {np.mean(frames):.3f}" + (f" (mean of {len(frames)} frames)" if len(frames) > 1 else "")
        lo, hi = r.get("vs_controls_low"), r.get("vs_controls_high")
        interval = (
            f", 95% prediction interval [{float(lo):+.3f}, {float(hi):+.3f}]"
            if lo not in (None, "") and hi not in (None, "")
            else ""
        )
        lines.append(
            f"{os.path.basename(str(r['path']))}: {r.get('vs_controls_verdict')}: {what}, difference to the control "
            f"fields' mean {float(r['vs_controls']):+.3f}{interval}"
        )
    return [CONTROLS_HEADER, *lines] if lines else []


def training_trust_meta(
    model, samples: list, model_um: float | None, default_um: float | None = None, device: str = "cpu"
) -> dict:
    """``meta`` entries a trained model needs for this layer, from its TRAINING samples.

    ``pixel_size_um`` (the model's), ``domain`` (phototox.trust.domain statistics and threshold) and
    ``quality.focus_reference`` (median focus measure). Each sample is read, resampled to
    ``model_um`` from its manifest ``pixel_size_um`` (else ``default_um``) and, for time-lapses,
    limited to its frame range. The lead's retrain calls this once after training.
    """
    from phototox.trust.domain import compute_domain_stats
    from phototox.trust.quality import focus_measure

    predictor = Predictor.create(model, device)
    fields = []
    for sample in samples:
        frames = read_frames(sample.path, min_size=model.window)
        if sample.frames is not None:
            frames = frames[sample.frames[0] : sample.frames[1] + 1]
        image_um = manifest_pixel_size(sample.extra, str(sample.path)) or default_um
        fields.append(list(training_frames(frames, image_um, model_um, model.window, str(sample.path))))
    focus = float(np.median([focus_measure(f) for frames in fields for f in frames]))
    domain = compute_domain_stats(predictor, fields, f"{len(fields)} training images", model_um)
    return {
        "pixel_size_um": model_um,
        "domain": domain,
        "quality": {"focus_reference": round(focus, 5), "statistic": "normalised variance of LoG (sigma 1)"},
    }


def trained_model_trust_meta(module, config, train_samples: list, model_um: float | None) -> dict:
    """Domain statistics and focus reference for a freshly trained module (from its training images).

    Returns ``{}`` plus a note where they cannot be made (fewer than three training images).
    """
    from phototox.models.backends.torch import TorchBackend
    from phototox.models.base import LoadedModel

    loaded = LoadedModel(
        TorchBackend(module),
        config.arch,
        module.config(),
        meta={"pixel_size_um": model_um, "normalisation": config.contract.to_meta()},
    )
    try:
        meta = training_trust_meta(loaded, train_samples, model_um, config.pixel_size_um)
    except PhototoxError as exc:
        return {"domain_note": f"no domain statistics: {exc}"}
    finally:
        module.train(False)
    return meta
