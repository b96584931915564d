"""Build the bioimage.io model package (format 0.5) of a phototox model, and test it offline.

The package holds the same weights in three formats -- ``pytorch_state_dict`` (with the
architecture source, ``phototox/models/architectures.py`` verbatim), ``torchscript`` and ``onnx`` (opset 18,
one file) -- test tensors (a raw 220x220 crop and the class probabilities), a cover image with a
sickness map, the model card as documentation, and deepImageJ settings (no tiling: the model is
a classifier of one 220 px window; cropping is the consumer's job, as phototox does).

    python -m phototox_zoo build --model default --out dist/
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

import phototox
import phototox.models.architectures
from phototox.errors import PhototoxError
from phototox.images import atomic_path, read_frames
from phototox.inference import Predictor
from phototox.models.architectures import CLASSES, WINDOW, build_model
from phototox.normalise import contract_of, normalise_crops

FORMAT_VERSION = "0.5.12"
OPSET = 18
ARCH_CALLABLES = {"deadnet": "DeadNet", "deadnet-gap": "DeadNetGAP"}
DEADNET_CITATION = {
    "text": "Richmond D, Jost AP-T, Lake T, Spiller D, Baker J, Vass J. DeadNet: Identifying phototoxicity from "
            "label-free microscopy images of cells using deep ConvNets. arXiv:1701.06109 (2017).",
    "doi": "10.48550/arXiv.1701.06109"}
TAGS = ["phase-contrast", "phototoxicity", "cell-health", "classification", "pytorch", "2d",
        "transmitted-light", "deadnet", "live-cell-imaging"]


@dataclass
class BuildResult:
    """The zip written and the outcome of ``bioimageio test`` for each weight format."""

    package: Path
    statuses: dict[str, str]
    details: dict[str, str]

    @property
    def passed(self) -> bool:
        return bool(self.statuses) and all(s == "passed" for s in self.statuses.values())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _test_crop(image: str | None, seed: int) -> np.ndarray:
    """A raw 220x220 window: the centre of ``image``, or of a synthetic damaged field."""
    if image:
        frame = read_frames(image)[0]
    else:
        from phototox.synth import render_field

        frame = render_field(320, 320, 0.8, seed=seed).image.astype(np.float32)
    y, x = (frame.shape[0] - WINDOW) // 2, (frame.shape[1] - WINDOW) // 2
    return frame[y:y + WINDOW, x:x + WINDOW].astype(np.float32)


def _cover(path: Path, loaded, seed: int, cover_image: str | None) -> None:
    """Cover: a field (synthetic unless given) with its sickness map."""
    from phototox.plots import plot_map_overlay
    from phototox.synth import render_field

    frame = read_frames(cover_image)[0] if cover_image else render_field(440, 660, 0.6, seed=seed).image.astype(np.float32)
    result = Predictor.create(loaded, "cpu").analyse_frame(frame, 16, "dense")
    source = "your image" if cover_image else "synthetic field"
    plot_map_overlay(frame, result.sick_map, path, f"phototox sickness map ({source}): mean P(sick) "
                                                   f"{result.mean_sick_probability:.2f}", threshold=0.5, width=5.0)


def card_text(loaded) -> str:
    """The model card of THIS model: its curated card file when it has one, else generated from its meta."""
    from phototox.card import card_for_model

    return card_for_model(loaded)


def _documentation(path: Path, loaded, model_spec: str) -> None:
    card = card_text(loaded)
    contract = contract_of(loaded)
    trained = ("exactly as the model was trained." if contract.kind == "crop" else
               f"an approximation: the model was trained with each pixel normalised by the {contract.size} px box "
               "centred on it within the whole frame, which a lone window cannot reproduce (it has no context); "
               "phototox itself applies the exact contract to whole frames.")
    usage = f"""
## Using this package

* **Input**: one grey phase-contrast window of 220x220 px (axes batch, channel, y, x), any bit depth.
  The package normalises it to zero mean and unit variance (`zero_mean_unit_variance`, per sample),
  {trained}
* **Output**: probabilities of the classes `healthy` and `sick` (axes batch, channel).
* **Whole images**: the model classifies one window. Do not let a consumer tile the image with
  this package: crop 220 px windows yourself, or use phototox (`pip install phototox`), which slides
  the window (or runs the fully convolutional form) and returns a full-resolution sickness map:
  `phototox map IMAGE --model <this zip>`. deepImageJ: tiling is switched off for this reason.

Built by phototox {phototox.__version__} from `{model_spec}` ({loaded.arch}).
"""
    path.write_text((card or "# phototox model\n") + "\n" + usage)


def stage_package(model_spec: str, folder: Path, seed: int = 0, test_image: str | None = None,
                  cover_image: str | None = None, name: str | None = None) -> Path:
    """Write every file of the package into ``folder``; return the path of ``rdf.yaml``."""
    loaded = Predictor.from_spec(model_spec, "cpu").model
    if loaded.arch not in ARCH_CALLABLES:
        raise PhototoxError(f"{model_spec}: only phototox DeadNet models can be packaged (got {loaded.arch})")
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
             for k, v in loaded.module.state_dict().items()}
    torch.save(state, folder / "weights.pt")
    shutil.copyfile(inspect.getsourcefile(phototox.models.architectures), folder / "deadnet.py")

    net = build_model(loaded.arch, softmax_output=True, **loaded.arch_kwargs).eval()
    net.load_state_dict(state)
    crop = _test_crop(test_image, seed)
    np.save(folder / "test_input.npy", crop[None, None])
    import imageio.v3 as iio

    from phototox.images import to_display_uint8

    iio.imwrite(folder / "sample_input.png", to_display_uint8(crop))
    with torch.no_grad():
        probs = net(normalise_crops(torch.from_numpy(crop))[None, None]).numpy().astype(np.float32)
        example = normalise_crops(torch.from_numpy(crop))[None, None]
        traced = torch.jit.trace(net, example)
    np.save(folder / "test_output.npy", probs)
    traced.save(str(folder / "weights.torchscript.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(folder / "weights.onnx"), opset_version=OPSET, dynamo=False,
                          input_names=["phase"], output_names=["probabilities"],
                          dynamic_axes={"phase": {0: "batch"}, "probabilities": {0: "batch"}})
    _cover(folder / "cover.png", loaded, seed, cover_image)
    _documentation(folder / "README.md", loaded, model_spec)

    rdf = description(loaded, folder, name)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
    return folder / "rdf.yaml"


def description(loaded, folder: Path, name: str | None = None) -> dict:
    """The format 0.5 model description (files must already be in ``folder``)."""
    meta = loaded.meta or {}
    card = loaded.card or {}
    citations = [c for c in card.get("citations") or [] if isinstance(c, dict) and c.get("text")] \
        or [DEADNET_CITATION]
    torch_version = torch.__version__.split("+")[0]
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name or "phototox DeadNet-GAP phase-contrast cell health",
        "description": "Tells from a label-free phase-contrast window (220x220 px) whether the cells look "
                       "healthy or sick (e.g. harmed by imaging light). DeadNet (Richmond et al., 2017) "
                       "reimplemented by phototox; whole-image sickness maps with the phototox package.",
        "authors": [{"name": "phototox developers"}],
        "cite": citations,
        "license": "MIT",
        "tags": TAGS + (["u2os"] if "U2OS" in str(card.get("training_data", {}).get("name", "")) else []),
        "version": phototox.__version__,
        "documentation": {"source": "README.md", "sha256": _sha256(folder / "README.md")},
        "covers": [{"source": "cover.png", "sha256": _sha256(folder / "cover.png")}],
        **_training_data(card),
        "inputs": [{
            "id": "phase",
            "description": "grey phase-contrast window, any intensity scale",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["phase"]},
                     {"type": "space", "id": "y", "size": WINDOW}, {"type": "space", "id": "x", "size": WINDOW}],
            "test_tensor": {"source": "test_input.npy", "sha256": _sha256(folder / "test_input.npy")},
            "sample_tensor": {"source": "sample_input.png", "sha256": _sha256(folder / "sample_input.png")},
            "data": {"type": "float32"},
            "preprocessing": [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["channel", "y", "x"]}}],
        }],
        "outputs": [{
            "id": "probabilities",
            "description": "class probabilities (softmax): healthy, sick",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": list(CLASSES)}],
            "test_tensor": {"source": "test_output.npy", "sha256": _sha256(folder / "test_output.npy")},
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt", "sha256": _sha256(folder / "weights.pt"),
                "architecture": {"source": "deadnet.py", "sha256": _sha256(folder / "deadnet.py"),
                                 "callable": ARCH_CALLABLES[loaded.arch],
                                 "kwargs": {**loaded.arch_kwargs, "softmax_output": True}},
                "pytorch_version": torch_version,
            },
            "torchscript": {"source": "weights.torchscript.pt", "sha256": _sha256(folder / "weights.torchscript.pt"),
                            "parent": "pytorch_state_dict", "pytorch_version": torch_version},
            "onnx": {"source": "weights.onnx", "sha256": _sha256(folder / "weights.onnx"),
                     "parent": "pytorch_state_dict", "opset_version": OPSET},
        },
        "config": {
            "deepimagej": {"allow_tiling": False, "pyramidal_model": False,
                           "prediction": {"preprocess": [{"spec": None}], "postprocess": [{"spec": None}]}},
            "phototox": {"model": loaded.label, "pixel_size_um": card.get("pixel_size_um"),
                         "pixel_size_note": card.get("pixel_size_note", ""), "citations": citations,
                         "training_data": card.get("training_data") or {}, "arch": loaded.arch, "window": WINDOW, "network_stride": 16, "classes": list(CLASSES),
                         "trained_iterations": meta.get("trained_iterations"),
                         "note": "a window classifier: crop 220 px windows (phototox does) instead of tiling"},
        },
    }


def _training_data(card: dict) -> dict:
    """The rdf ``training_data`` entry from the model's card (absent when the card has none)."""
    data = card.get("training_data") or {}
    citation = data.get("citation") or {}
    if not data.get("name") or not str(data.get("source", "")).startswith("https://") or not citation.get("text"):
        return {}  # e.g. synthetic training data: described under config.phototox only
    return {"training_data": {
        "type": "dataset", "format_version": "0.3.0", "name": data["name"], "source": data["source"],
        "description": data.get("description", ""), "cite": [citation], "license": data.get("license", "MIT"),
        "authors": [{"name": a} for a in data.get("authors") or []] or [{"name": "unknown"}],
        "tags": list(data.get("tags") or []),
    }}


def zip_folder(folder: Path, target: Path) -> Path:
    """Deterministic zip of the staged files (fixed order and timestamps), written atomically."""
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                info = zipfile.ZipInfo(path.name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    return target


def run_bioimageio_tests(package: Path, formats=("pytorch_state_dict", "torchscript", "onnx")) -> tuple[dict, dict]:
    """``bioimageio test`` of each weight format, offline; status per format and failure details."""
    os.environ.setdefault("BIOIMAGEIO_CACHE_WARNINGS_LIMIT", "0")
    from bioimageio.core import test_model

    statuses, details = {}, {}
    for weight_format in formats:
        summary = test_model(str(package), weight_format=weight_format)
        statuses[weight_format] = str(summary.status)
        if summary.status != "passed":
            details[weight_format] = summary.format() if hasattr(summary, "format") else str(summary)
    return statuses, details


def build(model_spec: str = "default", out: str | Path = "dist", seed: int = 0, test_image: str | None = None,
          cover_image: str | None = None, run_tests: bool = True, name: str | None = None) -> BuildResult:
    """Stage, zip and (optionally) test the package; return where it is and how the tests went."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded_arch = Predictor.from_spec(model_spec, "cpu").model.arch
    target = out / f"phototox-{loaded_arch}.zip"
    with tempfile.TemporaryDirectory() as tmp:
        stage_package(model_spec, Path(tmp) / "package", seed, test_image, cover_image, name)
        zip_folder(Path(tmp) / "package", target)
    statuses, details = run_bioimageio_tests(target) if run_tests else ({}, {})
    (out / f"{target.stem}.test.json").write_text(json.dumps({"package": str(target), "statuses": statuses}, indent=2))
    return BuildResult(target, statuses, details)
