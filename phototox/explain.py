"""The paper's explanations: Grad-CAM over a whole frame, and class-model visualisation.

Grad-CAM (Selvaraju et al., 2017) weights the feature maps of a conv layer (DeadNet: conv4_2) by
the spatially averaged gradient of a class score. Richmond et al. (2017) note that per-crop
weights make overlapping crops disagree, and instead average the weights over all training
crops of the class; :func:`reference_weights` computes those, and without a reference the
weights are averaged over all windows of the image itself, so that one set of weights explains
the whole frame. Class-model visualisation (Simonyan et al., 2014) does gradient ascent on a
class score with an L2 penalty and a smoothness (total variation) term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dataset import CropDataset
from .inference import Predictor
from .manifest import Sample
from .models.architectures import GRADCAM_LAYER
from .preprocess import normalise_crops
from .windows import window_origins


def _layer(module: nn.Module, name: str) -> nn.Module:
    found = dict(module.named_modules()).get(name) or dict(module.named_modules()).get(f"features.{name}")
    if found is None:
        raise ValueError(f"layer {name!r} not found in the model")
    return found


def activations_and_gradients(module: nn.Module, layer: nn.Module, crops: torch.Tensor,
                              class_index: int) -> tuple[torch.Tensor, torch.Tensor]:
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
    return activ.detach(), activ.grad.detach()


def gradcam_weights(module: nn.Module, layer: nn.Module, crops: torch.Tensor, class_index: int) -> torch.Tensor:
    """Per-crop Grad-CAM channel weights (N, C): spatial mean of the gradients."""
    _, grads = activations_and_gradients(module, layer, crops, class_index)
    return grads.mean(dim=(2, 3))


def reference_weights(predictor: Predictor, samples: list[Sample], class_index: int,
                      max_crops: int = 400, seed: int = 0, layer_name: str = GRADCAM_LAYER) -> np.ndarray:
    """Grad-CAM weights averaged over (up to ``max_crops``) crops of training images of one class."""
    indices = [i for i, s in enumerate(samples) if s.label == class_index]
    if not indices:
        raise ValueError("the reference manifest has no image of the requested class")
    dataset = CropDataset(samples, indices, augment=None)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(dataset))[:max_crops]
    module, layer = predictor.model.module, _layer(predictor.model.module, layer_name)
    total, count = None, 0
    for start in range(0, len(chosen), predictor.batch_size):
        crops = torch.stack([dataset[int(i)][0] for i in chosen[start:start + predictor.batch_size]])
        w = gradcam_weights(module, layer, crops.to(predictor.device), class_index).sum(0)
        total = w if total is None else total + w
        count += len(crops)
    return (total / count).cpu().numpy()


def gradcam_image(predictor: Predictor, frame: np.ndarray, class_index: int = 1, weights: np.ndarray | None = None,
                  stride: int = 110, layer_name: str = GRADCAM_LAYER) -> np.ndarray:
    """Grad-CAM heat map over a whole frame (float32, the frame's shape).

    Windows every ``stride`` px are explained with one set of channel weights (``weights``, or
    the mean of the per-window weights); each window's map is upsampled bilinearly to the window
    and overlapping windows are averaged.
    """
    return gradcam_frame(predictor.model.module, _layer(predictor.model.module, layer_name), frame, class_index,
                         predictor.window, weights, stride, predictor.device, predictor.batch_size)


def gradcam_frame(module: nn.Module, layer: nn.Module, frame: np.ndarray, class_index: int, window: int,
                  weights: np.ndarray | None = None, stride: int = 110, device: torch.device | str = "cpu",
                  batch_size: int = 32) -> np.ndarray:
    """Model-agnostic core of :func:`gradcam_image` (any module, any layer, any window)."""
    ys, xs = window_origins(frame.shape[0], window, stride), window_origins(frame.shape[1], window, stride)
    positions = [(y, x) for y in ys for x in xs]
    tensor = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).to(device)
    acts, grads = [], []
    module.eval()
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        crops = normalise_crops(torch.stack([tensor[y:y + window, x:x + window] for y, x in chunk]))[:, None]
        a, g = activations_and_gradients(module, layer, crops, class_index)
        acts.append(a.cpu())
        grads.append(g.mean(dim=(2, 3)).cpu())
    activ = torch.cat(acts)
    alpha = torch.as_tensor(weights, dtype=torch.float32) if weights is not None else torch.cat(grads).mean(0)
    cams = F.relu((activ * alpha.view(1, -1, 1, 1)).sum(1, keepdim=True))
    cams = F.interpolate(cams, size=(window, window), mode="bilinear", align_corners=False)[:, 0].numpy()
    heat = np.zeros(frame.shape, np.float64)
    counts = np.zeros(frame.shape, np.float64)
    for (y, x), cam in zip(positions, cams):
        heat[y:y + window, x:x + window] += cam
        counts[y:y + window, x:x + window] += 1
    return (heat / np.maximum(counts, 1)).astype(np.float32)


@dataclass
class ClassModel:
    """An input optimised to maximise one class score, and the score along the way."""

    image: np.ndarray
    scores: list[float]
    probabilities: list[float]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Squared-difference smoothness penalty of a (1, 1, h, w) image."""
    return ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean()


def class_model(predictor: Predictor, class_index: int = 1, init: np.ndarray | None = None,
                iterations: int = 500, l2: float = 1e-3, smoothness: float = 1e-2, lr: float = 0.05,
                seed: int = 0, progress: bool = False) -> ClassModel:
    """Gradient ascent on the class logit (from zeros plus tiny noise, or from ``init``)."""
    return class_model_for(predictor.model.module, predictor.window, class_index, init, iterations, l2,
                           smoothness, lr, seed, predictor.device, progress)


def class_model_for(module: nn.Module, window: int, class_index: int = 1, init: np.ndarray | None = None,
                    iterations: int = 500, l2: float = 1e-3, smoothness: float = 1e-2, lr: float = 0.05,
                    seed: int = 0, device: torch.device | str = "cpu", progress: bool = False) -> ClassModel:
    """Model-agnostic core of :func:`class_model`."""
    generator = torch.Generator().manual_seed(seed)
    if init is None:
        start = torch.randn(1, 1, window, window, generator=generator) * 1e-3
    else:
        start = normalise_crops(torch.as_tensor(np.asarray(init, dtype=np.float32)))[None, None]
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
