"""The paper's explanations: Grad-CAM over a whole frame, and class-model visualisation.

In words: the Grad-CAM map shows where the network looked to call these cells sick (or healthy).

Grad-CAM (Selvaraju et al., 2017) weights the feature maps of a conv layer (DeadNet: conv4_2) by
the spatially averaged gradient of a class score. Richmond et al. (2017) note that per-crop
weights make overlapping crops disagree, and instead average the weights over all training
crops of the class; :func:`reference_weights_and_scale` computes those, and without a reference the
weights are averaged over all windows of the image itself, so that one set of weights explains
the whole frame. What is drawn is scaled by the image's P(sick) (:data:`HEAT_SCALE`): a healthy
image is dark, whatever its own strongest evidence. Class-model visualisation (Simonyan et al., 2014) does gradient ascent on a
class score with an L2 penalty and a smoothness (total variation) term.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phototox.io.images import read_frames, write_tiff_atomic
from phototox.io.manifest import Sample, read_manifest
from phototox.maps.inference import Predictor
from phototox.maps.normalise import normalise_frame, normalise_lone_window, normalise_windows
from phototox.maps.windows import window_origins
from phototox.models.architectures import GRADCAM_LAYER
from phototox.models.contract import PER_CROP, Contract
from phototox.results.plots import plot_map_overlay
from phototox.training.dataset import CropDataset
from phototox.trust.pixelsize import at_model_scale


def _layer(module: nn.Module, name: str) -> nn.Module:
    found = dict(module.named_modules()).get(name) or dict(module.named_modules()).get(f"features.{name}")
    if found is None:
        raise ValueError(f"layer {name!r} not found in the model")
    return found


def activations_and_gradients(
    module: nn.Module, layer: nn.Module, crops: torch.Tensor, class_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature maps of ``layer`` and d(class logit)/d(feature maps) for normalised crops (N,1,h,w)."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m, _inp, out):
        out.retain_grad()
        store["a"] = out

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            crops = crops.detach().requires_grad_(True)
            logits = module(crops)
            logits[:, class_index].sum().backward()
    finally:
        handle.remove()
    activ = store["a"]
    if activ.grad is None:
        raise ValueError("the class logit does not depend on the chosen layer's output; no gradient for Grad-CAM")
    return activ.detach(), activ.grad.detach()


def gradcam_weights(module: nn.Module, layer: nn.Module, crops: torch.Tensor, class_index: int) -> torch.Tensor:
    """Per-crop Grad-CAM channel weights (N, C): spatial mean of the gradients."""
    _, grads = activations_and_gradients(module, layer, crops, class_index)
    return grads.mean(dim=(2, 3))


def gradcam_image(
    predictor: Predictor,
    frame: np.ndarray,
    class_index: int = 1,
    weights: np.ndarray | None = None,
    stride: int = 110,
    layer_name: str = GRADCAM_LAYER,
    progress=None,
) -> np.ndarray:
    """Grad-CAM heat map over a whole frame (float32, the frame's shape, every pixel covered).

    Windows every ``stride`` px (plus windows flush with the right and bottom edges) are
    explained with one set of channel weights (``weights``, or the mean of the per-window
    weights); each window's map is upsampled bilinearly to the window and the windows are
    blended with a Hann taper, so no seam shows where windows meet. ``progress`` is called with
    the number of windows done.
    """
    return gradcam_frame(
        predictor.model.module,
        _layer(predictor.model.module, layer_name),
        frame,
        class_index,
        predictor.window,
        weights,
        stride,
        predictor.device,
        predictor.batch_size,
        predictor.contract,
        progress,
    )


def covering_origins(length: int, window: int, stride: int) -> np.ndarray:
    """Window starts every ``stride`` px plus one flush with the far edge, so every pixel is covered."""
    origins = window_origins(length, window, stride)
    return origins if origins[-1] == length - window else np.append(origins, length - window)


def taper(window: int) -> np.ndarray:
    """2-D Hann blending weights of a window (a small floor keeps frame corners defined)."""
    hann = np.hanning(window + 2)[1:-1] + 1e-3
    return np.outer(hann, hann)


def gradcam_frame(
    module: nn.Module,
    layer: nn.Module,
    frame: np.ndarray,
    class_index: int,
    window: int,
    weights: np.ndarray | None = None,
    stride: int = 110,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    contract: Contract = PER_CROP,
    progress=None,
) -> np.ndarray:
    """Model-agnostic core of :func:`gradcam_image` (any module, any layer, any window)."""
    ys, xs = covering_origins(frame.shape[0], window, stride), covering_origins(frame.shape[1], window, stride)
    positions = [(y, x) for y in ys for x in xs]
    tensor = torch.from_numpy(normalise_frame(frame, contract)).to(device)
    acts, grads = [], []
    module.eval()
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        crops = normalise_windows(torch.stack([tensor[y : y + window, x : x + window] for y, x in chunk]), contract)
        a, g = activations_and_gradients(module, layer, crops[:, None], class_index)
        acts.append(a.cpu())
        grads.append(g.mean(dim=(2, 3)).cpu())
        if progress is not None:
            progress(len(chunk))
    activ = torch.cat(acts)
    alpha = torch.as_tensor(weights, dtype=torch.float32) if weights is not None else torch.cat(grads).mean(0)
    cams = F.relu((activ * alpha.view(1, -1, 1, 1)).sum(1, keepdim=True))
    cam_crops = F.interpolate(cams, size=(window, window), mode="bilinear", align_corners=False)[:, 0].numpy()
    blend = taper(window)
    heat = np.zeros(frame.shape, np.float64)
    total = np.zeros(frame.shape, np.float64)
    for (y, x), cam in zip(positions, cam_crops):
        heat[y : y + window, x : x + window] += cam * blend
        total[y : y + window, x : x + window] += blend
    return (heat / total).astype(np.float32)


def reference_weights_and_scale(
    predictor: Predictor,
    samples: list[Sample],
    class_index: int,
    max_crops: int = 64,
    seed: int = 0,
    layer_name: str = GRADCAM_LAYER,
) -> tuple[np.ndarray, float]:
    """The reference crops' class-averaged Grad-CAM weights and their heat's 99th percentile, in ONE pass.

    The activations that give the gradients also give the heat whose 99th percentile is the scale,
    so ``--reference-manifest`` costs one forward-and-backward pass over ``max_crops`` crops.
    """
    indices = [i for i, s in enumerate(samples) if s.label == class_index]
    if not indices:
        raise ValueError("the reference manifest has no image of the requested class")
    dataset = CropDataset(samples, indices, augment=None, contract=predictor.contract)
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:max_crops]
    if len(chosen) == 0:
        raise ValueError(f"no crops to average (max_crops={max_crops})")
    module, layer = predictor.model.module, _layer(predictor.model.module, layer_name)
    acts, grads = [], []
    for start in range(0, len(chosen), predictor.batch_size):
        crops = torch.stack([dataset[int(i)][0] for i in chosen[start : start + predictor.batch_size]])
        a, g = activations_and_gradients(module, layer, crops.to(predictor.device), class_index)
        acts.append(a.cpu())
        grads.append(g.mean(dim=(2, 3)).cpu())
    weights = torch.cat(grads).mean(0)
    heat = F.relu((torch.cat(acts) * weights.view(1, -1, 1, 1)).sum(1))
    return weights.numpy(), float(np.percentile(heat.flatten().numpy(), 99))


HEAT_SCALE = (
    "shown = P(target) x clip(Grad-CAM / scale, 0, 1): 0-1 on every image; scale = the reference crops' 99th "
    "percentile (--reference-manifest) or this image's own 99th percentile; an image the model calls healthy "
    "(P(sick) near 0) stays dark when the target is 'sick'"
)
"""The fixed scale every Grad-CAM TIFF and overlay is drawn on (recorded in the TIFF)."""


def shown_heat(heat: np.ndarray, p_target: float, scale: float | None) -> tuple[np.ndarray, float]:
    """The heat on the fixed 0-1 scale of :data:`HEAT_SCALE`, and the scale used."""
    if scale is None or scale <= 0:
        scale = float(np.percentile(heat, 99))
    if scale <= 0:
        return np.zeros_like(heat, dtype=np.float32), 0.0
    return (float(p_target) * np.clip(heat / scale, 0.0, 1.0)).astype(np.float32), float(scale)


def explain_image(
    predictor: Predictor,
    path: Path,
    out: Path,
    target: str = "sick",
    reference: str | None = None,
    max_reference_crops: int = 64,
    stride: int = 110,
    colour: str = "refuse",
    quiet: bool = False,
    provenance: dict | None = None,
    pixel_size_um: float | None = None,
) -> list[Path]:
    """Grad-CAM of the first frame of ``path``: ``<stem>_gradcam.tif`` and ``.png`` (overlay).

    ``provenance`` (phototox version, model name and checksum) goes into the TIFF's metadata. The
    frame is explained at the model's pixel size (``pixel_size_um``, else the file's, else assumed)
    and the heat map returned at the frame's size.

    Both files hold the heat on one fixed 0-1 scale (:data:`HEAT_SCALE`): the Grad-CAM map divided
    by a scale and multiplied by the image's probability of the target class (mean of the dense
    P(sick) map at the model's scale), so an image the model calls healthy stays dark whatever
    its own strongest evidence. With ``reference`` (a manifest of training images) the channel
    weights and the scale are those of the reference images of the target class (the paper's
    fix, one pass over their crops, :func:`reference_weights_and_scale`); without it the weights
    come from this image and the scale is its own 99th percentile. The TIFF records the scale,
    P(sick) and whether a reference was used; the title states P(sick).
    """

    from tqdm import tqdm

    frame = read_frames(path, colour=colour, min_size=predictor.window)[0]
    class_index = 1 if target == "sick" else 0
    weights, scale = None, None
    if reference:
        samples = read_manifest(reference)
        weights, scale = reference_weights_and_scale(predictor, samples, class_index, max_crops=max_reference_crops)
    n = len(covering_origins(frame.shape[0], predictor.window, stride)) * len(
        covering_origins(frame.shape[1], predictor.window, stride)
    )

    p_sick: list[float] = []

    def explain(scaled: np.ndarray) -> np.ndarray:
        p_sick.append(float(predictor.analyse_frame(scaled).mean_sick_probability))
        return gradcam_image(predictor, scaled, class_index, weights, stride, progress=bar.update)

    with tqdm(total=n, desc=f"explaining {path.name}", unit="window", disable=quiet) as bar:
        heat = at_model_scale(explain, frame, predictor.model, pixel_size_um, path)
    p_target = p_sick[0] if target == "sick" else 1.0 - p_sick[0]
    shown, used_scale = shown_heat(heat, p_target, scale)
    out.mkdir(parents=True, exist_ok=True)
    tif, png = out / f"{path.stem}_gradcam.tif", out / f"{path.stem}_gradcam.png"
    info = {
        **(provenance or {}),
        "content": f"Grad-CAM evidence for '{target}' at conv4_2 on a fixed 0-1 scale",
        "scale_rule": HEAT_SCALE,
        "scale": round(used_scale, 6),
        "scale_source": "reference 99th percentile" if reference else "this image's 99th percentile",
        "reference_used": bool(reference),
        "reference": str(reference) if reference else "",
        "p_sick": round(p_sick[0], 5),
        "target": target,
    }
    write_tiff_atomic(tif, shown, metadata={"axes": "YX", "Info": json.dumps(info, indent=1)})
    model = (provenance or {}).get("model_name") or predictor.model.source
    how = (
        "weights and scale from the reference images of that class"
        if reference
        else "weights and scale from this image (its 99th percentile)"
    )
    title = (
        f"{path.name}: P(sick) {p_sick[0]:.3f} (model {model})\n"
        f"where the network looked to call these cells {target} (Grad-CAM at conv4_2; {how})\n"
        f"shown: P({target}) x evidence / scale, one fixed 0-1 scale: an image called "
        f"{'healthy' if target == 'sick' else 'sick'} stays dark"
    )
    plot_map_overlay(frame, shown, png, title, label=f"P({target}) x evidence (fixed 0-1)")
    return [tif, png]


@dataclass
class ClassModel:
    """An input optimised to maximise one class score, and the score along the way."""

    image: np.ndarray
    scores: list[float]
    probabilities: list[float]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Squared-difference smoothness penalty of a (1, 1, h, w) image."""
    return ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean()


def class_model(
    predictor: Predictor,
    class_index: int = 1,
    init: np.ndarray | None = None,
    iterations: int = 500,
    l2: float = 1e-3,
    smoothness: float = 1e-2,
    lr: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> ClassModel:
    """Gradient ascent on the class logit (from zeros plus tiny noise, or from ``init``)."""
    return class_model_for(
        predictor.model.module,
        predictor.window,
        class_index,
        init,
        iterations,
        l2,
        smoothness,
        lr,
        seed,
        predictor.device,
        progress,
        predictor.contract,
    )


def class_model_for(
    module: nn.Module,
    window: int,
    class_index: int = 1,
    init: np.ndarray | None = None,
    iterations: int = 500,
    l2: float = 1e-3,
    smoothness: float = 1e-2,
    lr: float = 0.05,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    contract: Contract = PER_CROP,
) -> ClassModel:
    """Model-agnostic core of :func:`class_model` (``init`` normalised under ``contract``, as a lone window)."""
    generator = torch.Generator().manual_seed(seed)
    if init is None:
        start = torch.randn(1, 1, window, window, generator=generator) * 1e-3
    else:
        start = torch.from_numpy(normalise_lone_window(np.asarray(init, dtype=np.float32), contract))[None, None]
    x = start.to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    module.eval()
    scores, probs = [], []
    from tqdm import tqdm

    for _ in tqdm(range(iterations + 1), disable=not progress, desc="class model", unit="it"):
        logits = module(x)
        score = logits[0, class_index]
        scores.append(float(score.detach()))
        probs.append(float(torch.softmax(logits.detach(), 1)[0, class_index]))
        if len(scores) > iterations:
            break
        loss = -score + l2 * (x**2).mean() * window + smoothness * total_variation(x) * window
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return ClassModel(x.detach()[0, 0].cpu().numpy(), scores, probs)
