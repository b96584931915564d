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
import sys
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
from phototox.io.images import atomic_path, read_frames, write_text_atomic
from phototox.maps.inference import Predictor
from phototox.maps.normalise import contract_of, normalise_crops
from phototox.maps.settings import MapSettings
from phototox.models.architectures import CLASSES, WINDOW, build_model
from phototox.trust.pixelsize import model_pixel_size

FORMAT_VERSION = "0.5.12"
OPSET = 18
ARCH_CALLABLES = {"deadnet": "DeadNet", "deadnet-gap": "DeadNetGAP"}
DEADNET_CITATION = {
    "text": "Richmond D, Jost AP-T, Lake T, Spiller D, Baker J, Vass J. DeadNet: Identifying phototoxicity from "
    "label-free microscopy images of cells using deep ConvNets. arXiv:1701.06109 (2017).",
    "doi": "10.48550/arXiv.1701.06109",
}
CELLDEATH_CITATION = {
    "text": "La Greca AD, Perez N, Castaneda S, et al. celldeath: A tool for detection of cell death in transmitted "
    "light microscopy images by deep learning-based visual recognition. PLoS ONE 16(6): e0253666 (2021).",
    "doi": "10.1371/journal.pone.0253666",
}
TAGS = [
    "phase-contrast",
    "phototoxicity",
    "cell-health",
    "classification",
    "pytorch",
    "2d",
    "transmitted-light",
    "deadnet",
    "live-cell-imaging",
]


@dataclass
class BuildResult:
    """The zip written and the outcome of ``bioimageio test`` for each weight format."""

    package: Path
    statuses: dict[str, str]
    details: dict[str, str]
    map_package: Path | None = None

    @property
    def passed(self) -> bool:
        return bool(self.statuses) and all(s == "passed" for s in self.statuses.values())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def as_packaged(loaded):
    """``loaded`` as the crop package computes it: each lone window normalised to zero mean and unit
    variance (bioimage.io's ``zero_mean_unit_variance``), whatever the model's own contract. For a
    box-contract model that differs from phototox's lone-window rule (the window mirrored as its own
    frame); the package README says so. The test crop and its expected output come from this."""
    import copy

    packaged = copy.copy(loaded)
    packaged.meta = {**(loaded.meta or {}), "normalisation": None}
    return packaged


def _test_crop(predictor, image: str | None, seed: int):
    """The package's test crop: intermediate P(sick), from ``image`` or from redistributable real data."""
    from .test_data import TestCrop, _best_in_frame, find_test_crop

    if not image:
        return find_test_crop(predictor, seed=seed)
    frame = read_frames(image)[0]
    p, y, x = _best_in_frame(predictor, frame)
    return TestCrop(
        frame[y : y + WINDOW, x : x + WINDOW].copy(),
        p,
        frame,
        y,
        x,
        Path(image).name,
        note="given with --test-image: its licence must allow redistribution in the package",
    )


def _cover(path: Path, predictor, seed: int, cover_image: str | None) -> str:
    """Cover: a real sick and a real healthy field with their maps (or your image, or synthetic fields)."""
    from phototox.synth.fields import render_field

    from .cover import write_cover
    from .test_data import cover_fields

    fields = None if cover_image else cover_fields(predictor)
    if fields is None:
        if cover_image:
            frame = read_frames(cover_image)[0]
            fields = [(frame, "", Path(cover_image).name)] * 2
        else:
            print("phototox zoo: no real data for the cover; using synthetic fields", file=sys.stderr)
            fields = [
                (
                    render_field(440, 440, dose, seed=seed).image.astype(np.float32),
                    label,
                    f"phototox.synth.fields dose {dose}",
                )
                for dose, label in ((0.9, "sick"), (0.0, "healthy"))
            ]
    panels = []
    for frame, label, source in fields:
        result = predictor.analyse_frame(frame, MapSettings(stride=16, mode="dense"))
        caption = (
            f"{label or 'image'}: {source}\nmodel calls it {result.label}, "
            f"mean P(sick) {result.mean_sick_probability:.2f}"
        )
        panels.append((frame, result.sick_map, caption))
    footer = (
        "phototox sickness maps (dense, 16 px grid); cyan: P(sick) = 0.5. Images: celldeath U2OS, "
        "La Greca et al. 2021, MIT"
        if not cover_image and fields[0][2].startswith("celldeath")
        else "phototox sickness maps (dense, 16 px grid); cyan: P(sick) = 0.5"
    )
    write_cover(path, panels, footer)
    return "; ".join(f"{label}: {source}" for _, label, source in fields)


def card_text(loaded) -> str:
    """The model card of THIS model: its curated card file when it has one, else generated from its meta."""
    from phototox.training.card import card_for_model

    return card_for_model(loaded)


def own_card(card: str) -> str:
    """The first model's card of a card file (cut at the next top-level ``# `` heading)."""
    lines = card.splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line.startswith("# ")), len(lines))
    return "\n".join(lines[:end]).rstrip() + "\n"


def validation_section(card: str, meta: dict) -> str:
    """The held-out figures: the card's held-out section if it has one, else the last validation in meta."""
    lines = card.splitlines()
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if line.startswith("## ") and any(w in line.lower() for w in ("held-out", "held out", "validation"))
        ),
        None,
    )
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        body = "\n".join(lines[start + 1 : end]).strip()
        return f'## Validation\n\nFrom the model card, section "{lines[start][3:]}":\n\n{body}\n'
    last = (meta or {}).get("last_eval") or {}
    if "val_acc" in last:
        return (
            f"## Validation\n\nLast validation during training (iteration {last.get('iteration')}): crop "
            f"accuracy {last['val_acc']:.3f}, loss {last.get('val_loss', float('nan')):.3f}. No held-out "
            "evaluation is recorded with this model: run `phototox evaluate --held-out` before trusting it.\n"
        )
    return "## Validation\n\nNo held-out figures are recorded with this model.\n"


INSTALL = """git clone <the phototox repository> phototox   # phototox is not on PyPI
cd phototox && python3 -m venv .venv && . .venv/bin/activate
pip install torch==2.13.0 && pip install -e .
phototox map IMAGE --model {zip}"""


def _documentation(path: Path, loaded, model_spec: str, crop, zip_name: str, cover_source: str) -> None:
    card = card_text(loaded) or "# phototox model\n"
    test = crop.provenance()
    licence = f"{test.get('licence')}; {test.get('citation', '')}".rstrip("; ")
    contract = contract_of(loaded)
    trained = (
        "exactly as the model was trained."
        if contract.kind == "crop"
        else f"an approximation: the model was trained with each pixel normalised by the {contract.size} px box "
        "centred on it within the whole frame, which a lone window cannot reproduce (it has no context); "
        "phototox itself applies the exact contract to whole frames (on real windows of the shipped model, "
        "this per-window rule is off the in-frame P(sick) by 0.020 on average, phototox's mirrored lone-window "
        "rule by 0.015)."
    )
    usage = f"""
{validation_section(card, loaded.meta)}
## Using this package

* **Input**: one grey phase-contrast window of 220x220 px (axes batch, channel, y, x), any bit depth.
  The package normalises it to zero mean and unit variance (`zero_mean_unit_variance`, per sample),
  {trained}
* **Pixel size**: {pixel_size_sentence(loaded.meta)}
* **Output**: probabilities of the classes `healthy` and `sick` (axes batch, channel).
* **Whole images**: this package classifies one window; do not let a consumer tile an image with it.
  For a picture, use the companion *map* package (`-map.zip`, fully convolutional, any size) or
  phototox itself, which slides the window and returns a full-resolution sickness map.

## Installing phototox

```
{INSTALL.format(zip=zip_name)}
```

## Test tensor

`test_input.npy` is a real, intermediate crop (P(sick) = {test["p_sick"]:.3f} for this model, chosen
at build time so that a change to the preprocessing or the weights fails `bioimageio test`):
`{test["source_file"]}`, 220x220 px at (y, x) = {tuple(test["crop_yx"])}. Licence: {licence.rstrip(".")}.
{test.get("note", "")}

Cover: {cover_source}.

Built by phototox {phototox.__version__} from `{model_spec}` ({loaded.arch}).
"""
    path.write_text(own_card(card) + "\n" + usage)


def stage_package(
    model_spec: str,
    folder: Path,
    seed: int = 0,
    test_image: str | None = None,
    cover_image: str | None = None,
    name: str | None = None,
    maintainer: str | None = None,
    map_folder: Path | None = None,
) -> Path:
    """Write every file of the package into ``folder`` (and the map package into ``map_folder``).

    Returns the path of the classifier package's ``rdf.yaml``.
    """
    loaded = Predictor.from_spec(model_spec, "cpu").model
    if loaded.arch not in ARCH_CALLABLES:
        raise PhototoxError(f"{model_spec}: only phototox DeadNet models can be packaged (got {loaded.arch})")
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
        for k, v in loaded.module.state_dict().items()
    }
    torch.save(state, folder / "weights.pt")
    shutil.copyfile(inspect.getsourcefile(phototox.models.architectures), folder / "deadnet.py")

    net = build_model(loaded.arch, softmax_output=True, **loaded.arch_kwargs).eval()
    net.load_state_dict(state)
    predictor = Predictor.create(loaded, "cpu")
    test = _test_crop(Predictor.create(as_packaged(loaded), "cpu"), test_image, seed)
    crop = test.crop.astype(np.float32)
    np.save(folder / "test_input.npy", crop[None, None])
    import imageio.v3 as iio

    from phototox.io.images import to_display_uint8

    iio.imwrite(folder / "sample_input.png", to_display_uint8(crop))
    with torch.no_grad():
        probs = net(normalise_crops(torch.from_numpy(crop))[None, None]).numpy().astype(np.float32)
        example = normalise_crops(torch.from_numpy(crop))[None, None]
        traced = torch.jit.trace(net, example)
    np.save(folder / "test_output.npy", probs)
    traced.save(str(folder / "weights.torchscript.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(folder / "weights.onnx"),
            opset_version=OPSET,
            dynamo=False,
            input_names=["phase"],
            output_names=["probabilities"],
            dynamic_axes={"phase": {0: "batch"}, "probabilities": {0: "batch"}},
        )
    cover_source = _cover(folder / "cover.png", predictor, seed, cover_image)
    _documentation(folder / "README.md", loaded, model_spec, test, f"phototox-{loaded.arch}.zip", cover_source)

    rdf = description(loaded, folder, name, maintainer)
    rdf["config"]["phototox"]["test_tensor"] = test.provenance()
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
    if map_folder is not None:
        from .map_package import stage_map_package

        stage_map_package(loaded, map_folder, test, folder, rdf)
    return folder / "rdf.yaml"


def training_data(meta: dict) -> dict:
    """The training set of THIS model: the celldeath set when its manifest says so, else what meta records."""
    manifest = str((meta or {}).get("manifest") or "")
    if "celldeath" in manifest:
        return {
            "type": "dataset",
            "format_version": "0.3.0",
            "source": "https://github.com/miriukaLab/celldeath",
            "authors": [{"name": "La Greca AD"}, {"name": "Perez N"}, {"name": "Miriuka SG"}],
            "tags": ["u2os", "transmitted-light", "cell-death"],
            "name": "celldeath U2OS transmitted-light images (La Greca et al., 2021)",
            "description": "U2OS cells, 20x transmitted light, 1280x960 8-bit: camptothecin 1 h (sick) vs DMSO "
            "(healthy). A drug insult, not light; label and replicate are confounded.",
            "cite": [CELLDEATH_CITATION],
            "license": "MIT",
        }
    return {
        "type": "dataset",
        "format_version": "0.3.0",
        "name": f"phototox training set {Path(manifest).name or '(unrecorded)'}",
        "description": f"the manifest this model was trained on, as recorded in its weights: {manifest or 'not recorded'}",
        "authors": [{"name": "phototox developers"}],
        "cite": [DEADNET_CITATION],
        "license": "MIT",
    }


def maintainers(github_user: str | None) -> list[dict]:
    """The zoo needs a GitHub user per maintainer; ``--maintainer USER`` or ``$PHOTOTOX_ZOO_MAINTAINER``."""
    user = github_user or os.environ.get("PHOTOTOX_ZOO_MAINTAINER")
    if not user:
        print(
            "phototox zoo: no --maintainer GITHUB_USER given; 'maintainers' is left empty (the zoo needs one "
            "before upload, and bioimageio checks the user online)",
            file=sys.stderr,
        )
        return []
    return [{"github_user": user, "name": "phototox developers"}]


def physical_scale(meta: dict | None) -> dict:
    """``unit``/``scale`` for a space axis: the pixel size (um) the model was trained at, when it records one."""
    um = model_pixel_size(meta or {})
    return {"unit": "micrometer", "scale": float(um)} if um else {}


def pixel_size_sentence(meta: dict | None) -> str:
    """What the package's README says about the expected pixel size."""
    um = model_pixel_size(meta or {})
    if not um:
        return "The model records no pixel size: use images at the scale of its training data."
    return (
        f"**Expected pixel size: {um:g} um per pixel** (the scale of the training images; also the `scale` of the "
        "space axes in rdf.yaml). Resample your image to it first (phototox does, from `--pixel-size` or the "
        "file's metadata): the same cells imaged at another magnification give other probabilities."
    )


def description(loaded, folder: Path, name: str | None = None, maintainer: str | None = None) -> dict:
    """The format 0.5 model description (files must already be in ``folder``)."""
    meta = loaded.meta or {}
    card = loaded.card or {}
    citations = [c for c in card.get("citations") or [] if isinstance(c, dict) and c.get("text")] or [DEADNET_CITATION]
    torch_version = torch.__version__.split("+")[0]
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name or "phototox DeadNet-GAP phase-contrast cell health",
        "description": "Tells from a label-free phase-contrast window (220x220 px) whether the cells look "
        "healthy or sick (e.g. harmed by imaging light). DeadNet (Richmond et al., 2017) "
        "reimplemented by phototox; whole-image sickness maps with the phototox package.",
        "authors": [{"name": "phototox developers"}],
        **({"maintainers": people} if (people := maintainers(maintainer)) else {}),
        "cite": citations,
        "license": "MIT",
        "tags": TAGS + (["u2os"] if "U2OS" in str(card.get("training_data", {}).get("name", "")) else []),
        "version": phototox.__version__,
        "documentation": {"source": "README.md", "sha256": _sha256(folder / "README.md")},
        "covers": [{"source": "cover.png", "sha256": _sha256(folder / "cover.png")}],
        **(_training_data(card) or {"training_data": training_data(meta)}),
        "inputs": [
            {
                "id": "phase",
                "description": "grey phase-contrast window, any intensity scale",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["phase"]},
                    {"type": "space", "id": "y", "size": WINDOW, **physical_scale(meta)},
                    {"type": "space", "id": "x", "size": WINDOW, **physical_scale(meta)},
                ],
                "test_tensor": {"source": "test_input.npy", "sha256": _sha256(folder / "test_input.npy")},
                "sample_tensor": {"source": "sample_input.png", "sha256": _sha256(folder / "sample_input.png")},
                "data": {"type": "float32"},
                "preprocessing": [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["channel", "y", "x"]}}],
            }
        ],
        "outputs": [
            {
                "id": "probabilities",
                "description": "class probabilities (softmax): healthy, sick",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": list(CLASSES)}],
                "test_tensor": {"source": "test_output.npy", "sha256": _sha256(folder / "test_output.npy")},
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "sha256": _sha256(folder / "weights.pt"),
                "architecture": {
                    "source": "deadnet.py",
                    "sha256": _sha256(folder / "deadnet.py"),
                    "callable": ARCH_CALLABLES[loaded.arch],
                    "kwargs": {**loaded.arch_kwargs, "softmax_output": True},
                },
                "pytorch_version": torch_version,
            },
            "torchscript": {
                "source": "weights.torchscript.pt",
                "sha256": _sha256(folder / "weights.torchscript.pt"),
                "parent": "pytorch_state_dict",
                "pytorch_version": torch_version,
            },
            "onnx": {
                "source": "weights.onnx",
                "sha256": _sha256(folder / "weights.onnx"),
                "parent": "pytorch_state_dict",
                "opset_version": OPSET,
            },
        },
        "config": {
            "deepimagej": {
                "allow_tiling": False,
                "pyramidal_model": False,
                "prediction": {"preprocess": [{"spec": None}], "postprocess": [{"spec": None}]},
            },
            "phototox": {
                "model": loaded.label,
                "pixel_size_um": card.get("pixel_size_um"),
                "pixel_size_note": card.get("pixel_size_note", ""),
                "citations": citations,
                "training_data": card.get("training_data") or {},
                "arch": loaded.arch,
                "window": WINDOW,
                "network_stride": 16,
                "classes": list(CLASSES),
                "trained_iterations": meta.get("trained_iterations"),
                "note": "a window classifier: crop 220 px windows (phototox does) instead of tiling",
            },
        },
    }


def _training_data(card: dict) -> dict:
    """The rdf ``training_data`` entry from the model's card (absent when the card has none)."""
    data = card.get("training_data") or {}
    citation = data.get("citation") or {}
    if not data.get("name") or not str(data.get("source", "")).startswith("https://") or not citation.get("text"):
        return {}  # e.g. synthetic training data: described under config.phototox only
    return {
        "training_data": {
            "type": "dataset",
            "format_version": "0.3.0",
            "name": data["name"],
            "source": data["source"],
            "description": data.get("description", ""),
            "cite": [citation],
            "license": data.get("license", "MIT"),
            "authors": [{"name": a} for a in data.get("authors") or []] or [{"name": "unknown"}],
            "tags": list(data.get("tags") or []),
        }
    }


def zip_folder(folder: Path, target: Path) -> Path:
    """Deterministic zip of the staged files (fixed order and timestamps), written atomically."""
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
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


def build(
    model_spec: str = "default",
    out: str | Path = "dist",
    seed: int = 0,
    test_image: str | None = None,
    cover_image: str | None = None,
    run_tests: bool = True,
    name: str | None = None,
    maintainer: str | None = None,
    with_map: bool = True,
) -> BuildResult:
    """Stage, zip and (optionally) test the package; return where it is and how the tests went."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded_arch = Predictor.from_spec(model_spec, "cpu").model.arch
    target = out / f"phototox-{loaded_arch}.zip"
    map_target = out / f"phototox-{loaded_arch}-map.zip" if with_map else None
    with tempfile.TemporaryDirectory() as tmp:
        stage_package(
            model_spec,
            Path(tmp) / "package",
            seed,
            test_image,
            cover_image,
            name,
            maintainer,
            Path(tmp) / "map" if with_map else None,
        )
        zip_folder(Path(tmp) / "package", target)
        if map_target is not None:
            zip_folder(Path(tmp) / "map", map_target)
    statuses, details = run_bioimageio_tests(target) if run_tests else ({}, {})
    if run_tests and map_target is not None:
        map_statuses, map_details = run_bioimageio_tests(map_target)
        statuses.update({f"map {k}": v for k, v in map_statuses.items()})
        details.update({f"map {k}": v for k, v in map_details.items()})
    report = {"package": str(target), "map_package": str(map_target) if map_target else None, "statuses": statuses}
    write_text_atomic(out / f"{target.stem}.test.json", json.dumps(report, indent=2))
    return BuildResult(target, statuses, details, map_target)
