"""Training and fine-tuning with the paper's recipe, checkpointed and resumable.

Recipe (Richmond et al., 2017): mini-batch SGD with Nesterov momentum 0.9, batch 20, softmax
cross-entropy, base learning rate 3e-4 with Caffe's ``inv`` policy
``lr = base * (1 + gamma * iter) ** -power`` (gamma 1e-5, power 0.75), weight decay 1e-4 for the
high-dose data (1e-5 for low-dose), no decay on convolution biases.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .augment import AugmentConfig
from .dataset import CropDataset, FrameCache
from .devices import resolve_device
from .errors import PhototoxError
from .images import atomic_path, write_text_atomic
from .manifest import Sample, grouped_split
from .model import DEFAULT_ARCH, build_model
from .weights import load_shipped, load_weights, save_weights


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved as ``config.json`` beside the weights)."""

    arch: str = DEFAULT_ARCH
    iterations: int = 3000
    batch_size: int = 20
    base_lr: float = 3e-4
    lr_gamma: float = 1e-5
    lr_power: float = 0.75
    momentum: float = 0.9
    weight_decay: float = 1e-4
    val_fraction: float = 0.3
    eval_every: int = 100
    checkpoint_every: int = 100
    balance_classes: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    workers: int = 0
    init: str = ""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pixel_size_um: float | None = None  # the images' (rows without a pixel_size_um column)
    model_pixel_size_um: float | None = None  # the model's scale (default: --init model's, else pixel_size_um)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["augment"] = self.augment.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["augment"] = AugmentConfig.from_dict(values.get("augment", {}))
        return cls(**values)


def inv_lr(base_lr: float, iteration: int, gamma: float = 1e-5, power: float = 0.75) -> float:
    """Caffe's ``inv`` learning-rate policy."""
    return base_lr * (1.0 + gamma * iteration) ** (-power)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimiser groups: convolution biases without weight decay, everything else with it."""
    no_decay, decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            (no_decay if isinstance(module, nn.Conv2d) and name == "bias" else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch, 7]).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)] or [order]


@torch.no_grad()
def evaluate_crops(model: nn.Module, dataset: CropDataset, device: torch.device,
                   batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Sick probabilities and labels of every crop of ``dataset`` (model in eval mode)."""
    was_training = model.training
    model.eval()
    probs, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator())
    for x, y in loader:
        probs.append(torch.softmax(model(x.to(device)), dim=1)[:, 1].cpu().numpy())
        labels.append(y.numpy())
    model.train(was_training)
    return np.concatenate(probs), np.concatenate(labels)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class Trainer:
    """One training run in ``out_dir``: resumable from ``checkpoint.pt``."""

    def __init__(self, samples: list[Sample], out_dir: str | Path, config: TrainConfig,
                 manifest: str = "", progress: bool = True) -> None:
        self.samples, self.config, self.progress = samples, config, progress
        self.out_dir = Path(out_dir)
        self.manifest = manifest
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.val_fraction > 0:
            self.train_idx, self.val_idx = grouped_split(samples, config.val_fraction, config.seed)
        else:
            self.train_idx, self.val_idx = list(range(len(samples))), []
        from .pixelsize import training_rescaler

        self.model_um, rescale = training_rescaler(samples, config.pixel_size_um, config.model_pixel_size_um,
                                                   config.init)
        cache = FrameCache(rescale=rescale)
        self.train_set = CropDataset(samples, self.train_idx, config.augment, config.seed, cache)
        self.val_set = CropDataset(samples, self.val_idx, None, config.seed, cache) if self.val_idx else None
        if len({samples[i].label for i in self.train_idx}) < 2:
            raise PhototoxError("training data must contain both healthy and sick images")
        torch.manual_seed(config.seed)
        self.model = self._initial_model().to(self.device)
        self.optimizer = torch.optim.SGD(parameter_groups(self.model, config.weight_decay), lr=config.base_lr,
                                         momentum=config.momentum, nesterov=True)
        labels = self.train_set.labels()
        counts = np.bincount(labels, minlength=2).astype(np.float64)
        weights = counts.sum() / (2 * counts) if config.balance_classes else np.ones(2)
        self.loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=self.device))
        self.iteration, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.history: list[dict] = []

    def _initial_model(self) -> nn.Module:
        cfg = self.config
        if not cfg.init:
            return build_model(cfg.arch)
        loaded = load_shipped(None if cfg.init == "shipped" else cfg.init[len("shipped:"):]) \
            if cfg.init.startswith("shipped") else load_weights(cfg.init)
        if loaded.arch != cfg.arch:
            raise PhototoxError(f"--init {cfg.init} is a {loaded.arch} model but --arch is {cfg.arch}")
        return loaded.module

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "iteration": self.iteration, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "history": self.history, "config": self.config.to_dict(), "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def resume(self) -> bool:
        """Continue from ``checkpoint.pt`` if present; refuse if its config differs."""
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        saved = dict(state["config"])
        current = self.config.to_dict()
        for key in ("iterations", "device", "threads", "workers", "eval_every", "checkpoint_every"):
            saved.pop(key, None)
            current.pop(key, None)
        if json.loads(json.dumps(saved)) != json.loads(json.dumps(current)):
            raise PhototoxError(f"{self.checkpoint_path}: checkpoint was made with another configuration; "
                                "use a new --out folder or the same settings")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.history = list(state["history"])
        if "torch_rng" in state:  # dropout draws from the global generator
            torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        return True

    # -- the loop -----------------------------------------------------------------------------
    def validate(self) -> dict:
        if self.val_set is None:
            return {}
        probs, labels = evaluate_crops(self.model, self.val_set, self.device)
        return {"val_loss": _log_loss(probs, labels), "val_acc": float(np.mean((probs >= 0.5) == labels))}

    def run(self) -> Path:
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out_dir / "config.json", json.dumps(
            {"manifest": self.manifest, **cfg.to_dict(),
             "train_groups": sorted({self.samples[i].group for i in self.train_idx}),
             "val_groups": sorted({self.samples[i].group for i in self.val_idx})}, indent=2))
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=self.iteration, disable=not self.progress,
                   desc="training", unit="it", dynamic_ncols=True)
        self.model.train()
        running_loss, running_correct, running_n = 0.0, 0, 0
        started = time.time()
        while self.iteration < cfg.iterations:
            self.train_set.set_epoch(self.epoch)
            batches = _epoch_batches(len(self.train_set), cfg.batch_size, cfg.seed, self.epoch)
            # a private generator keeps the DataLoader from drawing on the global RNG (dropout's)
            loader = DataLoader(self.train_set, batch_sampler=batches[self.batch_in_epoch:],
                                num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed))
            for x, y in loader:
                lr = inv_lr(cfg.base_lr, self.iteration, cfg.lr_gamma, cfg.lr_power)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                x, y = x.to(self.device), y.to(self.device)
                logits = self.model(x)
                loss = self.loss_fn(logits, y)
                if not math.isfinite(loss.item()):
                    raise PhototoxError(f"training diverged at iteration {self.iteration} (loss {loss.item()})")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.iteration += 1
                self.batch_in_epoch += 1
                running_loss += loss.item() * len(y)
                running_correct += int((logits.argmax(1) == y).sum())
                running_n += len(y)
                bar.update(1)
                bar.set_postfix(loss=f"{running_loss / running_n:.3f}", acc=f"{running_correct / running_n:.2f}")
                if self.iteration % cfg.eval_every == 0 or self.iteration == cfg.iterations:
                    row = {"iteration": self.iteration, "epoch": self.epoch, "lr": lr,
                           "train_loss": running_loss / running_n, "train_acc": running_correct / running_n,
                           "seconds": time.time() - started, **self.validate()}
                    self.history.append(row)
                    running_loss, running_correct, running_n = 0.0, 0, 0
                    self.write_log()
                if self.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.iteration >= cfg.iterations:
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
        bar.close()
        self.save_checkpoint()
        return self.finish()

    def write_log(self) -> None:
        if not self.history:
            return
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k != "iteration", k))
        with atomic_path(self.out_dir / "log.csv") as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        from .plots import plot_training_curves

        plot_training_curves(self.history, self.out_dir / "curves.png")

    def finish(self) -> Path:
        """Write ``model.pt`` (+ checksum) with the training metadata."""
        self.model.eval()
        meta = {"trained_iterations": self.iteration, "manifest": self.manifest,
                "config": self.config.to_dict(), "last_eval": self.history[-1] if self.history else {},
                "train_groups": sorted({self.samples[i].group for i in self.train_idx}),
                "val_groups": sorted({self.samples[i].group for i in self.val_idx}),
                "torch": torch.__version__, "pixel_size_um": self.model_um}
        from .assess import trained_model_trust_meta

        meta.update(trained_model_trust_meta(self.model, self.config, [self.samples[i] for i in self.train_idx],
                                             self.model_um))
        path = self.out_dir / "model.pt"
        save_weights(path, self.model, self.config.arch, self.model.config(), meta)
        return path


def train(samples: list[Sample], out_dir: str | Path, config: TrainConfig, resume: bool = True,
          manifest: str = "", progress: bool = True) -> Path:
    """Train (or resume) and return the path of the written ``model.pt``."""
    trainer = Trainer(samples, out_dir, config, manifest, progress)
    if resume:
        trainer.resume()
    return trainer.run()
