"""Crops of manifest images as a PyTorch dataset (DeadNet's 256/128 tiling + augmentation).

Every image (or frame window) is cut into overlapping 256x256 crops every 128 px; each item is
one such crop, augmented and cut to the 220x220 window in training, centre-cropped (no
augmentation) in evaluation, and normalised under the model's contract (:mod:`phototox.maps.normalise`;
under ``box`` each crop is read with half a box of surroundings, so an unaugmented window equals
the same window of the whole normalised frame). Item randomness is seeded by (seed, epoch, index): runs repeat.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from phototox.errors import ManifestError
from phototox.io.images import read_frames
from phototox.io.manifest import Sample
from phototox.maps.normalise import PER_CROP, Contract, reflect_index
from phototox.models.architectures import WINDOW
from phototox.training.augment import CROP, CROP_STRIDE, AugmentConfig, Augmenter, tile_origins


class FrameCache:
    """Reads image files once and keeps up to ``max_bytes`` of frames in memory (LRU)."""

    def __init__(self, max_bytes: int = 2 * 1024**3, rescale=None) -> None:
        self.max_bytes = max_bytes
        self.rescale = rescale  # (path, frames) -> frames at the model's pixel size (phototox.trust.pixelsize)
        self._frames: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, path: Path) -> np.ndarray:
        if path in self._frames:
            self._frames.move_to_end(path)
            return self._frames[path]
        frames = read_frames(path)
        if self.rescale is not None:
            frames = self.rescale(path, frames)
        self._frames[path] = frames
        self._bytes += frames.nbytes
        while self._bytes > self.max_bytes and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self._bytes -= old.nbytes
        return frames


@dataclass(frozen=True)
class CropRef:
    """One 256 crop: which sample, which frames, where."""

    sample: int
    y: int
    x: int
    first_frame: int
    last_frame: int


def _frame_range(sample: Sample, n_frames: int) -> tuple[int, int]:
    if sample.frames is None:
        return 0, n_frames - 1
    first, last = sample.frames
    if last >= n_frames:
        raise ManifestError(f"{sample.path}: frames {first}-{last} requested but the file has {n_frames}")
    return first, last


def build_crop_index(
    samples: list[Sample],
    cache: FrameCache,
    indices: list[int] | None = None,
    size: int = CROP,
    stride: int = CROP_STRIDE,
) -> list[CropRef]:
    """List the 256/128 crops of the chosen samples (each image's frames read once)."""
    refs = []
    for i in range(len(samples)) if indices is None else indices:
        frames = cache.get(samples[i].path)
        first, last = _frame_range(samples[i], frames.shape[0])
        for y, x in tile_origins(frames.shape[1], frames.shape[2], size, stride):
            refs.append(CropRef(i, y, x, first, last))
    return refs


class CropDataset(Dataset):
    """Labelled 220x220 windows, augmented (training) or centre-cropped (evaluation)."""

    def __init__(
        self,
        samples: list[Sample],
        indices: list[int] | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        cache: FrameCache | None = None,
        contract: Contract = PER_CROP,
    ) -> None:
        self.samples = samples
        self.cache = cache or FrameCache()
        self.refs = build_crop_index(samples, self.cache, indices)
        self.augment = augment
        self.contract = contract
        self.augmenter = Augmenter(augment or AugmentConfig.none(), WINDOW, contract)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.refs)

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream (call once per epoch)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        ref = self.refs[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frames = self.cache.get(self.samples[ref.sample].path)
        if self.augment is not None and self.augment.time_window:
            frame = int(rng.integers(ref.first_frame, ref.last_frame + 1))
        else:
            frame = (ref.first_frame + ref.last_frame) // 2
        halo = self.contract.halo  # box contract: the crop's surroundings, mirrored at the frame's edges
        image = frames[frame]
        size_y, size_x = min(CROP, image.shape[0]), min(CROP, image.shape[1])
        rows = reflect_index(np.arange(ref.y - halo, ref.y + size_y + halo), image.shape[0])
        cols = reflect_index(np.arange(ref.x - halo, ref.x + size_x + halo), image.shape[1])
        crop = image[rows[:, None], cols[None, :]]
        window = self.augmenter(crop, rng, halo)
        return torch.from_numpy(np.ascontiguousarray(window))[None], self.samples[ref.sample].label

    def labels(self) -> np.ndarray:
        return np.array([self.samples[r.sample].label for r in self.refs])

    def groups(self) -> list[str]:
        return [self.samples[r.sample].group for r in self.refs]
