"""Training and fine-tuning with the paper's recipe, checkpointed and resumable.

Recipe (Richmond et al., 2017): mini-batch SGD with Nesterov momentum 0.9, batch 20, softmax
cross-entropy, base learning rate 3e-4 with Caffe's ``inv`` policy
``lr = base * (1 + gamma * iter) ** -power`` (gamma 1e-5, power 0.75), weight decay 1e-4 for the
high-dose data (1e-5 for low-dose), no decay on convolution biases.

Preprocessing follows the model's contract (:mod:`phototox.maps.normalise`): ``box`` by default (each
pixel normalised by the box centred on it, so dense maps equal exact ones), ``crop`` for the
paper's per-crop normalisation (faithful reproduction). The contract is saved with the weights.
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

from phototox import __version__
from phototox.errors import PhototoxError
from phototox.io.images import atomic_path, write_text_atomic
from phototox.io.manifest import Sample, grouped_split
from phototox.maps.devices import resolve_device
from phototox.models.architectures import DEFAULT_ARCH, architecture_config, build_model
from phototox.models.contract import DEFAULT_BOX, KINDS, Contract
from phototox.models.loader import load_model
from phototox.models.weights import save_weights
from phototox.results.plots import plot_training_curves
from phototox.training.augment import AugmentConfig
from phototox.training.card import model_card, training_data_summary
from phototox.training.dataset import CropDataset, FrameCache
from phototox.trust.pixelsize import training_rescaler


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
    checkpoint_every: int = 50
    balance_classes: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    workers: int = 0
    init: str = ""
    normalisation: str = "box"
    box_size: int = DEFAULT_BOX
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pixel_size_um: float | None = None  # the images' (rows without a pixel_size_um column)
    model_pixel_size_um: float | None = None  # the model's scale (default: --init model's, else pixel_size_um)

    @property
    def contract(self) -> Contract:
        """The preprocessing contract the model is trained under (validated)."""
        if self.normalisation not in KINDS:
            raise PhototoxError(f"unknown normalisation {self.normalisation!r}; use one of {', '.join(KINDS)}")
        return Contract("box", self.box_size) if self.normalisation == "box" else Contract("crop")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["augment"] = self.augment.to_dict()
        return out

    def validate(self) -> TrainConfig:
        """Refuse settings no run can use, naming the field (and its command-line option)."""
        whole = {"iterations": 1, "batch_size": 1, "eval_every": 1, "checkpoint_every": 1, "threads": 0, "workers": 0}
        for name, low in whole.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise PhototoxError(f"{_option(name)}: must be a whole number >= {low}, got {value!r}")
        reals = {
            "base_lr": (0.0, False),
            "weight_decay": (0.0, True),
            "lr_gamma": (0.0, True),
            "lr_power": (0.0, True),
            "momentum": (0.0, True),
        }
        for name, (bound, inclusive) in reals.items():
            value = getattr(self, name)
            ok = (
                isinstance(value, (int, float))
                and math.isfinite(value)
                and (value >= bound if inclusive else value > bound)
            )
            if not ok:
                raise PhototoxError(
                    f"{_option(name)}: must be a finite number {'>=' if inclusive else '>'} {bound:g}, got {value!r}"
                )
        if not (isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 1.0):
            raise PhototoxError(
                f"{_option('val_fraction')}: must lie in [0, 1) (the fraction of groups held "
                f"out for validation), got {self.val_fraction!r}"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise PhototoxError(f"{_option('momentum')}: must lie in [0, 1), got {self.momentum!r}")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        values["augment"] = AugmentConfig.from_dict(values.get("augment", {}))
        return cls(**values)


RUN_FILES = ("checkpoint.pt", "config.json", "log.csv", "curves.png", "model.pt", "model.pt.sha256", "model_card.md")
"""Every file a training run writes in its folder."""

_OPTIONS = {"base_lr": "--lr"}


def _option(name: str) -> str:
    """The training setting ``name`` with its command-line spelling, for error messages."""
    return f"{name} ({_OPTIONS.get(name, '--' + name.replace('_', '-'))})"


def run_output_paths(out_dir: str | Path) -> list[Path]:
    """The files :func:`train` writes in ``out_dir``."""
    return [Path(out_dir) / name for name in RUN_FILES]


def inv_lr(base_lr: float, iteration: int, gamma: float = 1e-5, power: float = 0.75) -> float:
    """Caffe's ``inv`` learning-rate policy."""
    return base_lr * (1.0 + gamma * iteration) ** (-power)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimiser groups: convolution biases without weight decay, everything else with it."""
    no_decay: list[nn.Parameter] = []
    decay: list[nn.Parameter] = []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            (no_decay if isinstance(module, nn.Conv2d) and name == "bias" else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = np.random.default_rng([seed, epoch, 7]).permutation(n).tolist()
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)] or [order]


@torch.no_grad()
def evaluate_crops(
    model: nn.Module, dataset: CropDataset, device: torch.device, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
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

    def __init__(
        self,
        samples: list[Sample],
        out_dir: str | Path,
        config: TrainConfig,
        manifest: str = "",
        progress: bool = True,
        allow_confounded: bool = False,
        unit_column: str | None = None,
    ) -> None:
        config.validate()
        self.samples, self.config, self.progress = samples, config, progress
        self.out_dir = Path(out_dir)
        self.manifest = manifest
        self.allow_confounded = allow_confounded
        self.audit = check_design(samples, manifest, allow_confounded, unit_column, config.seed)
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.val_fraction > 0:
            self.train_idx, self.val_idx = grouped_split(samples, config.val_fraction, config.seed)
        else:
            self.train_idx, self.val_idx = list(range(len(samples))), []

        self.model_um, rescale = training_rescaler(
            samples, config.pixel_size_um, config.model_pixel_size_um, config.init
        )
        cache = FrameCache(rescale=rescale)
        contract = config.contract
        self.train_set = CropDataset(samples, self.train_idx, config.augment, config.seed, cache, contract)
        self.val_set = CropDataset(samples, self.val_idx, None, config.seed, cache, contract) if self.val_idx else None
        if len({samples[i].label for i in self.train_idx}) < 2:
            raise PhototoxError("training data must contain both healthy and sick images")
        torch.manual_seed(config.seed)
        self.model = self._initial_model().to(self.device)
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.model, config.weight_decay),
            lr=config.base_lr,
            momentum=config.momentum,
            nesterov=True,
        )
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
        loaded = load_model(cfg.init)
        if loaded.arch != cfg.arch:
            raise PhototoxError(f"--init {cfg.init} is a {loaded.arch} model but --arch is {cfg.arch}")
        return loaded.module

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "history": self.history,
            "config": self.config.to_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def resume(self) -> bool:
        """Continue from ``checkpoint.pt`` if present; refuse if its config differs."""
        if not self.checkpoint_path.is_file():
            return False
        state = self._read_checkpoint()
        saved = {"normalisation": "crop", "box_size": DEFAULT_BOX, **dict(state["config"])}  # runs before contracts
        current = self.config.to_dict()
        for key in ("iterations", "device", "threads", "workers", "eval_every", "checkpoint_every"):
            saved.pop(key, None)
            current.pop(key, None)
        if json.loads(json.dumps(saved)) != json.loads(json.dumps(current)):
            raise PhototoxError(
                f"{self.checkpoint_path}: checkpoint was made with another configuration; "
                "use a new --out folder or the same settings"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
            self.batch_in_epoch = int(state["batch_in_epoch"])
            self.history = list(state["history"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise self._foreign(f"does not fit this model ({type(exc).__name__})") from None
        if "torch_rng" in state:  # dropout draws from the global generator
            torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        return True

    def _foreign(self, problem: str) -> PhototoxError:
        return PhototoxError(
            f"{self.checkpoint_path}: not a usable phototox training checkpoint: {problem}; "
            "delete it, use another --out folder, or pass --restart"
        )

    def _read_checkpoint(self) -> dict:
        """The checkpoint's contents, or one clear error for a corrupt, truncated or foreign file."""
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # a damaged pickle can raise almost any type
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise self._foreign(f"cannot be read ({first})") from None
        required = ("model", "optimizer", "iteration", "epoch", "batch_in_epoch", "history", "config")
        if (
            not isinstance(state, dict)
            or not all(k in state for k in required)
            or not isinstance(state["config"], dict)
        ):
            raise self._foreign("it lacks the fields phototox writes")
        return state

    # -- the loop -----------------------------------------------------------------------------
    def validate(self) -> dict:
        if self.val_set is None:
            return {}
        probs, labels = evaluate_crops(self.model, self.val_set, self.device)
        return {"val_loss": _log_loss(probs, labels), "val_acc": float(np.mean((probs >= 0.5) == labels))}

    def run(self) -> Path:
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            self.out_dir / "config.json",
            json.dumps(
                {
                    "manifest": self.manifest,
                    **cfg.to_dict(),
                    "train_groups": sorted({self.samples[i].group for i in self.train_idx}),
                    "val_groups": sorted({self.samples[i].group for i in self.val_idx}),
                },
                indent=2,
            ),
        )
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.iterations,
            initial=self.iteration,
            disable=not self.progress,
            desc="training",
            unit="it",
            dynamic_ncols=True,
        )
        self.model.train()
        running_loss, running_correct, running_n = 0.0, 0, 0
        started = time.time()
        while self.iteration < cfg.iterations:
            self.train_set.set_epoch(self.epoch)
            batches = _epoch_batches(len(self.train_set), cfg.batch_size, cfg.seed, self.epoch)
            # a private generator keeps the DataLoader from drawing on the global RNG (dropout's)
            loader = DataLoader(
                self.train_set,
                batch_sampler=batches[self.batch_in_epoch :],
                num_workers=cfg.workers,
                generator=torch.Generator().manual_seed(cfg.seed),
            )
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
                    row = {
                        "iteration": self.iteration,
                        "epoch": self.epoch,
                        "lr": lr,
                        "train_loss": running_loss / running_n,
                        "train_acc": running_correct / running_n,
                        "seconds": time.time() - started,
                        **self.validate(),
                    }
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

        plot_training_curves(self.history, self.out_dir / "curves.png")

    def heldout_evaluation(self) -> dict:
        """Metrics with intervals (accuracy, AUC, ECE) on the held-out groups, for the model card."""
        if self.val_set is None or len({self.samples[i].label for i in self.val_idx}) < 2:
            return {}
        from phototox.stats.calibration_metrics import ece_interval
        from phototox.training.evaluate import Evaluation

        probs, labels = evaluate_crops(self.model, self.val_set, self.device)
        images = np.array([r.sample for r in self.val_set.refs])
        evaluation = Evaluation(probs, labels, images, self.samples, seed=self.config.seed)
        m = evaluation.compute()
        keep = (
            "n_crops",
            "n_images",
            "threshold",
            "crop_accuracy",
            "crop_balanced_accuracy",
            "crop_auc",
            "paper_ci",
            "cluster_ci",
            "image_accuracy",
            "image_auc",
            "confusion_crops",
            "per_replicate",
        )
        out = {k: m[k] for k in keep if k in m}
        if len(set(images.tolist())) >= 2:
            out["ece"] = ece_interval(probs, labels, images, n_resamples=1000, seed=self.config.seed).as_dict()
        return out

    def finish(self) -> Path:
        """Write ``model.pt`` (+ checksum) with the training metadata, and ``model_card.md`` beside it."""

        self.model.eval()
        meta = {
            "trained_iterations": self.iteration,
            "manifest": self.manifest,
            "config": self.config.to_dict(),
            "last_eval": self.history[-1] if self.history else {},
            "train_groups": sorted({self.samples[i].group for i in self.train_idx}),
            "val_groups": sorted({self.samples[i].group for i in self.val_idx}),
            "torch": torch.__version__,
            "phototox_version": __version__,
            "normalisation": self.config.contract.to_meta(),
            "pixel_size_um": self.model_um,
            "data": training_data_summary(self.samples, self.train_idx, self.val_idx),
            "heldout_evaluation": self.heldout_evaluation(),
            "audit": self.audit.summary() if self.audit else {},
            "allow_confounded": self.allow_confounded,
        }
        from phototox.trust.assess import trained_model_trust_meta

        meta.update(
            trained_model_trust_meta(self.model, self.config, [self.samples[i] for i in self.train_idx], self.model_um)
        )
        name = f"{self.out_dir.name}/model.pt"
        meta["model_card"] = model_card(json.loads(json.dumps(meta)), name)
        path = self.out_dir / "model.pt"
        checksum = save_weights(path, self.model, self.config.arch, architecture_config(self.model), meta)
        write_text_atomic(self.out_dir / "model_card.md", model_card(json.loads(json.dumps(meta)), name, checksum))
        return path


def check_design(
    samples: list[Sample],
    manifest: str = "",
    allow_confounded: bool = False,
    unit_column: str | None = None,
    seed: int = 0,
):
    """Audit the training manifest; refuse (one line) a label fully explained by a batch column."""
    from phototox.training.audit import audit_samples

    audit = audit_samples(samples, manifest, unit_column, seed=seed, n_resamples=500)
    if audit.fully_confounded and not allow_confounded:
        column = next(c for c in audit.columns if c.column == audit.confounded_columns[0])
        raise PhototoxError(
            f"{manifest or 'manifest'}: {column.sentence} A model trained on it may learn the "
            f"{column.column}, not the cells; pass --allow-confounded to train anyway "
            "(`phototox audit` explains)"
        )
    return audit


def train(
    samples: list[Sample],
    out_dir: str | Path,
    config: TrainConfig,
    resume: bool = True,
    manifest: str = "",
    progress: bool = True,
    allow_confounded: bool = False,
    unit_column: str | None = None,
) -> Path:
    """Train (or resume) and return the path of the written ``model.pt``."""
    trainer = Trainer(samples, out_dir, config, manifest, progress, allow_confounded, unit_column)
    if resume:
        trainer.resume()
    return trainer.run()
