"""Label-free "unlike your controls": a model of the user's healthy windows, and a conformal line.

From the user's control fields (no light, same cells, same microscope) :func:`fit_reference` fits
a model of healthy windows in the classifier's feature space, at the model's pixel size: each
220 px window is described by the trunk features its head pools (the 128 conv4 channels over
the window's interior cells, :func:`dense_features`, the same dense pass that gives P(sick)). By
default (``kind="knn"``) a window's novelty is its mean distance to the 5 nearest control windows
(features standardised by the controls' SD, divided by sqrt(d)); ``kind="gaussian"`` models the
control windows by one Gaussian with a Ledoit-Wolf-shrunk covariance (PaDiM-style, one for all
positions: cells have no fixed place in a field) and scores the Mahalanobis distance. Both hold
the stated false-alarm rate on held-out fields; k-NN finds far more of what differs (the celldeath
N3 batch: 72% of windows beyond the line against 1.4%; synthetic dose 0.3: 6% against 3%) and is
more sensitive to a doubled cell density (``benchmarks/README.md``).

The null is whole control fields held out of the fit (all frames of a file are one field): a
field's score is its largest window novelty; leaving each field out in turn gives k held-out
field scores, and the line is the ``ceil((k+1)(1-alpha))``-th of them
(:func:`phototox.trust.domain.conformal_threshold`). A new field like the controls then has any window
beyond the line with probability at most the stated rate (``1 - rank/(k+1)``, reachable with k
fields); its p-value is ``(1 + #held-out fields >= its score) / (k + 1)``. It needs no sick
labels and says nothing about why a window differs: it is called "unlike your controls", never
"sick". The guarantee holds for fields the size of the controls (more windows, more chances).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from phototox.errors import PhototoxError
from phototox.io.images import atomic_path
from phototox.maps.dense import TileInputs, TileTaps, dense_trunk, dense_trunk_output, model_trunk
from phototox.maps.windows import upsample_grid, window_count
from phototox.models.architectures import NETWORK_STRIDE, WINDOW
from phototox.shapes import plane_shape
from phototox.trust.domain import conformal_threshold

KINDS = ("gaussian", "knn")
NOVELTY_STRIDE = 32
"""Window step (px at the model's scale) of novelty maps and of the reference's null."""
FEATURES = "mean of the 128 conv4 channels over each window's interior cells (the classifier head's input)"
KNN_K = 5
MAX_BANK = 20000
"""k-NN keeps at most this many control windows (evenly thinned)."""


def tile_window_features(out: torch.Tensor, rows: int, cols: int, border: int) -> np.ndarray:
    """(rows, cols, C) features of a tile's windows: the trunk output ``out`` (1, C, h, w) averaged over
    each window's interior cells (the cells its head pools, ``border`` left out at each side)."""
    side = out.shape[2] - (rows - 1)  # cells per window side (14 for DeadNet)
    inner = out[:, :, border : out.shape[2] - border, border : out.shape[3] - border]
    pooled = F.avg_pool2d(inner.float(), side - 2 * border, stride=1)[0]
    return pooled.permute(1, 2, 0)[:rows, :cols].cpu().numpy()


@torch.no_grad()
def dense_features(
    predictor, frame: np.ndarray, normalisation: str = "local", tile_windows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """P(sick) grid (ny, nx) and window features (ny, nx, C) at 16 px steps, from one dense pass.

    ``frame`` is at the model's scale. The head is applied to the same trunk output whose pooled
    interior gives the features, so no second network pass is made (PyTorch runs the tiles).
    """
    module = predictor.model.module
    model_trunk(module)  # one line if the model has no trunk
    if not hasattr(module, "dense_head"):
        raise PhototoxError(f"model {predictor.model.source} has no dense form; no novelty map")
    contract = predictor.contract
    box_size = contract.size if contract.kind == "box" else None
    inputs = TileInputs(np.asarray(frame), "box" if box_size else normalisation, predictor.device, box_size)
    trunk = dense_trunk(module, True)
    border = int(getattr(module, "border", 0))
    tile = tile_windows or predictor.tile_windows
    h, w = inputs.shape
    ny, nx = window_count(h, WINDOW, NETWORK_STRIDE), window_count(w, WINDOW, NETWORK_STRIDE)
    probs = np.empty((ny, nx), np.float32)
    feats: np.ndarray | None = None
    for i0 in range(0, ny, tile):
        i1 = min(i0 + tile, ny)
        y0, y1 = NETWORK_STRIDE * i0, NETWORK_STRIDE * (i1 - 1) + WINDOW
        for j0 in range(0, nx, tile):
            j1 = min(j0 + tile, nx)
            x0, x1 = NETWORK_STRIDE * j0, NETWORK_STRIDE * (j1 - 1) + WINDOW
            region, mean, std = inputs.region(y0, y1, x0, x1)
            out = dense_trunk_output(module, region, mean, std, trunk)
            logits = module.dense_head(out)[0]
            probs[i0:i1, j0:j1] = torch.softmax(logits.float(), 0)[1][: i1 - i0, : j1 - j0].cpu().numpy()
            pooled = tile_window_features(out, i1 - i0, j1 - j0, border)
            if feats is None:
                feats = np.empty((ny, nx, pooled.shape[2]), np.float32)
            feats[i0:i1, j0:j1] = pooled
    if feats is None:
        raise PhototoxError(f"frame of {h}x{w} px has no {WINDOW} px window")
    return probs, feats


class NoveltyTaps(TileTaps):
    """The window features of :func:`dense_features` (16 px grid), collected from a dense pass's own tiles.

    Handed to :func:`phototox.maps.dense.dense_sick_grid` (box contract), so that a run with a control
    reference makes one pass for P(sick), the domain check and the novelty map, on any dense engine.
    """

    def __init__(self, shape: tuple[int, int], border: int) -> None:
        self.ny, self.nx = (
            window_count(shape[0], WINDOW, NETWORK_STRIDE),
            window_count(shape[1], WINDOW, NETWORK_STRIDE),
        )
        self.border = border
        self.feats: np.ndarray | None = None
        self.done = False

    def take(
        self, i0: int, i1: int, j0: int, j1: int, region: torch.Tensor, tapped: torch.Tensor, out: torch.Tensor
    ) -> None:
        pooled = tile_window_features(out, i1 - i0, j1 - j0, self.border)
        if self.feats is None:
            self.feats = np.empty((self.ny, self.nx, pooled.shape[2]), np.float32)
        self.feats[i0:i1, j0:j1] = pooled


def novelty_step(stride: int = NOVELTY_STRIDE) -> int:
    """Subsampling of the 16 px grid for a novelty stride (a multiple of 16)."""
    if stride % NETWORK_STRIDE:
        raise PhototoxError(f"novelty stride must be a multiple of {NETWORK_STRIDE} px, got {stride}")
    return stride // NETWORK_STRIDE


@dataclass
class NoveltyReference:
    """A model of the controls' windows, the held-out field scores and the line they give."""

    kind: str
    mean: np.ndarray
    precision: np.ndarray
    """Gaussian: Ledoit-Wolf precision; k-NN: per-feature scale (diagonal)"""
    field_scores: np.ndarray
    alpha: float
    stride: int = NOVELTY_STRIDE
    bank: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    """model name and checksum, pixel size, control files and window counts, the rule"""

    @property
    def conformal(self) -> dict:
        return conformal_threshold(self.field_scores, self.alpha)

    @property
    def threshold(self) -> float:
        return float(self.conformal["threshold"])

    @property
    def rate(self) -> float:
        """False-alarm rate reached: a field like the controls has any window beyond the line at most this often."""
        return float(self.conformal["false_alarm_rate"])

    def window_scores(self, features: np.ndarray) -> np.ndarray:
        """Novelty of each window of (..., d) features (shape (...))."""
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
        return _scores(self.kind, self.mean, self.precision, self.bank, flat).reshape(features.shape[:-1])

    def p_value(self, field_score: float) -> float:
        k = self.field_scores.size
        return float((1 + np.sum(self.field_scores >= field_score)) / (k + 1))

    def summary(self, scores: np.ndarray, model_shape: tuple[int, int]) -> dict:
        """The ``unlike_controls_*`` result columns of one frame's window novelty scores.

        The interval is Wilson's 95% over ``n_eff`` = the frame's area in whole windows (at the
        model's scale): overlapping windows are not independent, so the window count would overstate
        the evidence.
        """
        beyond = scores > self.threshold
        fraction = float(beyond.mean())
        n_eff = max(1, int(model_shape[0] * model_shape[1] // (WINDOW * WINDOW)))
        low, high = wilson(fraction, n_eff)
        return {
            "unlike_controls_fraction": round(fraction, 4),
            "unlike_controls_low": round(low, 4),
            "unlike_controls_high": round(high, 4),
            "unlike_controls_p_value": round(self.p_value(float(scores.max())), 4),
            "unlike_controls_rate": round(self.rate, 4),
        }

    def size_warning(self, windows: int, source: str = "image") -> str | None:
        """A line when an image has over 1.5x the control fields' median window count, else None.

        The line bounds fields the size of the controls: more windows give more chances to cross it.
        """
        counts = self.info.get("window_counts") or []
        if not counts or windows <= 1.5 * float(np.median(counts)):
            return None
        return (
            f"phototox: warning: {source}: {windows} windows against the control fields' median {np.median(counts):g}; "
            f"the 'unlike your controls' line holds its rate ({self.rate:.3g}) for fields the size of the controls, "
            "a larger field crosses it more often"
        )

    def check_model(self, model) -> None:
        """Refuse (one line) a model other than the one whose features the reference holds."""
        want = self.info.get("model_sha256")
        have = getattr(model, "sha256", None)
        if want and have and want != have:
            raise PhototoxError(
                f"reference {self.info.get('source', '')}: fitted on the features of model {self.info.get('model')} "
                f"(sha256 {want[:12]}), not {model.source} ({have[:12]}); make the reference with this model"
            )

    def save(self, path: Path) -> None:
        """An .npz (arrays plus JSON info), written atomically."""

        arrays = {"mean": self.mean, "precision": self.precision, "field_scores": self.field_scores}
        if self.bank is not None:
            arrays["bank"] = self.bank
        info = {**self.info, "kind": self.kind, "alpha": self.alpha, "stride": self.stride, "conformal": self.conformal}
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, info=np.asarray(json.dumps(info)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoveltyReference:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                info = json.loads(str(data["info"]))
                arrays = {k: np.asarray(data[k]) for k in data.files if k != "info"}
        except (OSError, ValueError, KeyError) as exc:
            raise PhototoxError(f"{path}: not a phototox reference (.npz from 'phototox reference'): {exc}") from None
        if info.get("kind") not in KINDS or "field_scores" not in arrays:
            raise PhototoxError(f"{path}: not a phototox reference (no kind or field scores)")
        info["source"] = str(path)
        return cls(
            info["kind"],
            arrays["mean"],
            arrays["precision"],
            arrays["field_scores"],
            float(info["alpha"]),
            int(info["stride"]),
            arrays.get("bank"),
            info,
        )


def wilson(fraction: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion over ``n`` units."""
    centre = (fraction + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(fraction * (1 - fraction) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _fit(kind: str, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if kind == "gaussian":
        from phototox.trust.domain import fit_gaussian

        mean, precision = fit_gaussian(windows)
        return mean, precision, None
    mean = windows.mean(0)
    scale = windows.std(0) + 1e-6
    keep = np.linspace(0, len(windows) - 1, min(len(windows), MAX_BANK)).round().astype(int)
    return mean, scale, ((windows[keep] - mean) / scale).astype(np.float32)


def _scores(kind: str, mean: np.ndarray, precision: np.ndarray, bank: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    if kind == "gaussian":
        diff = x - mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, precision, diff), 0.0) / x.shape[1])
    if bank is None:
        raise PhototoxError("k-NN reference without its bank of control windows")
    z = torch.from_numpy(((x - mean) / precision).astype(np.float32))
    distances = torch.cdist(z, torch.from_numpy(bank))
    k = min(KNN_K, bank.shape[0])
    return torch.topk(distances, k, largest=False).values.mean(1).double().numpy() / math.sqrt(x.shape[1])


def fit_reference(
    per_field: list[np.ndarray], alpha: float = 0.05, kind: str = "knn", info: dict | None = None
) -> NoveltyReference:
    """A reference from each control field's window features ((n_i, d), all frames of a field together).

    Leave-one-field-out: field i's score is its largest window novelty under the model fitted
    without it. Refuses fewer than 3 fields (one line).
    """
    from phototox.trust.controls import MIN_CONTROLS

    if kind not in KINDS:
        raise PhototoxError(f"unknown reference kind {kind!r}; use one of {', '.join(KINDS)}")
    if len(per_field) < MIN_CONTROLS:
        raise PhototoxError(
            f"an 'unlike your controls' reference needs at least {MIN_CONTROLS} control fields (files; the frames of "
            f"one file are one field), got {len(per_field)}"
        )
    per_field = [np.asarray(f, np.float64).reshape(-1, np.shape(f)[-1]) for f in per_field]
    held_out = []
    for i, scored in enumerate(per_field):
        others = np.concatenate([f for j, f in enumerate(per_field) if j != i])
        held_out.append(float(_scores(kind, *_fit(kind, others), scored).max()))
    mean, precision, bank = _fit(kind, np.concatenate(per_field))
    conformal = conformal_threshold(held_out, alpha)  # also refuses an alpha outside (0, 1)
    meta = {
        **(info or {}),
        "features": FEATURES,
        "field_score": "largest window novelty of the field (all its frames)",
        "window_counts": [len(f) for f in per_field],
        "rule": "conformal, leave-one-field-out: " + conformal["note"],
    }
    return NoveltyReference(kind, mean, precision, np.asarray(held_out), alpha, NOVELTY_STRIDE, bank, meta)


def frame_window_features(predictor, scaled: np.ndarray, stride: int = NOVELTY_STRIDE) -> np.ndarray:
    """Window features (n, d) of one frame at the model's scale, on the novelty grid."""
    _, feats = dense_features(predictor, scaled)
    step = novelty_step(stride)
    return feats[::step, ::step].reshape(-1, feats.shape[-1])


def analyse_with_novelty(
    predictor, scaled: np.ndarray, settings, reference: NoveltyReference, window_progress=None, warn=None
):
    """A frame's :class:`~phototox.maps.inference.FrameResult` with its novelty map, and the novelty columns.

    ``scaled`` is at the model's scale. In dense mode at a multiple of 16 px one dense pass gives
    both P(sick) and the features; otherwise the P(sick) map is made as usual and the features by
    one more dense pass. (Box-contract models in dense mode take :class:`NoveltyTaps` instead: one
    pass on any engine, beside the domain check; :class:`phototox.trust.assess.Assessor`.)
    """

    reference.check_model(predictor.model)
    shape = plane_shape(scaled)
    if settings.mode == "dense" and settings.stride % NETWORK_STRIDE == 0:
        probs, feats = dense_features(predictor, scaled, settings.normalisation)
        step = settings.stride // NETWORK_STRIDE
        ny, nx = window_count(shape[0], WINDOW, settings.stride), window_count(shape[1], WINDOW, settings.stride)
        result = predictor.result_from_grid(np.ascontiguousarray(probs[::step, ::step][:ny, :nx]), shape, settings)
    else:
        result = predictor.analyse_frame(scaled, settings, window_progress=window_progress)
        _, feats = dense_features(predictor, scaled, settings.normalisation)
    result.novelty_map, columns = novelty_from_features(reference, feats, shape, warn)
    return result, columns


def novelty_from_features(
    reference: NoveltyReference, feats: np.ndarray, shape: tuple[int, int], warn=None
) -> tuple[np.ndarray, dict]:
    """The novelty map (at ``shape``, in units of the reference's line) and columns of a frame's (ny, nx, C)
    window features on the 16 px grid (:func:`dense_features` or :class:`NoveltyTaps`)."""
    step = novelty_step(reference.stride)
    scores = reference.window_scores(feats[::step, ::step])
    line = reference.size_warning(int(scores.size))
    if line is not None and warn is not None:
        warn(line)
    return upsample_grid(scores / reference.threshold, shape, WINDOW, reference.stride), reference.summary(
        scores, shape
    )
