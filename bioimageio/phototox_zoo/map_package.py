"""The zoo "map" package: the fully convolutional form of a phototox model, image in, P(sick) image out.

Input (batch, channel, y, x) of any size from 224 px in 16 px steps; output P(sick) at the input's
size, computed as ``phototox map --mode dense --stride 16`` computes it (normalisation and bilinear
upsampling inside the model: spec 0.5 cannot express a 16 px output grid with a 110 px offset). A
consumer that tiles the image must give each tile a halo of :data:`HALO` px (the window's half-width
+ the normalisation box's half-width + one grid step for the interpolation, rounded up to 16) and
tile on a 16 px grid; then the tiled map equals the whole-image map away from the image border.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

import phototox
import phototox.models.architectures
from phototox.models.architectures import NETWORK_STRIDE, WINDOW

from . import map_module
from .build import physical_scale, pixel_size_sentence

HALO = 240
"""Output halo in px: >= 110 (window half-width) + 110 (normalisation box half-width) + 16 (grid step)."""
MIN_SIZE = 2 * HALO + NETWORK_STRIDE
"""Smallest input side: the spec needs more than two halos (a 220 px window alone would need only 224)."""
TEST_SIDE = 512
MARKER = "# --- package source below"


def normalisation_of(meta: dict | None) -> dict:
    """The model's normalisation contract: its meta's ``normalisation`` dict, else per-crop (``local``)."""
    value = (meta or {}).get("normalisation")
    if isinstance(value, dict) and value.get("kind") == "box":
        return {"kind": "box", **{k: v for k, v in value.items() if k != "kind"}}
    return {"kind": "local"}


def architecture_source() -> str:
    """``phototox/models/architectures.py`` followed by the map wrapper: one file that imports only torch."""
    model_src = Path(inspect.getsourcefile(phototox.models.architectures)).read_text()
    wrapper = Path(inspect.getsourcefile(map_module)).read_text()
    return model_src.rstrip() + "\n\n\n" + wrapper[wrapper.index(MARKER) :]


def map_network(loaded) -> map_module.DeadNetMap:
    """The wrapped module with the loaded model's weights, in eval mode."""
    net = map_module.DeadNetMap(loaded.arch, normalisation_of(loaded.meta), **loaded.arch_kwargs)
    net.net.load_state_dict(loaded.module.state_dict())
    return net.eval()


class _Frame(torch.nn.Module):
    """One (y, x) frame through the map network (traced: sizes flow through as tensors)."""

    def __init__(self, net: map_module.DeadNetMap) -> None:
        super().__init__()
        self.net = net

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.net.sick_map(frame)


class _Batched(torch.nn.Module):
    """(batch, 1, y, x) -> (batch, 1, y, x) around the traced frame module (scripted: any batch size)."""

    def __init__(self, frame: torch.nn.Module) -> None:
        super().__init__()
        self.frame = frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.frame(x[b, 0]) for b in range(x.shape[0])])[:, None]


def export_map_weights(net: map_module.DeadNetMap, example: np.ndarray, folder: Path) -> None:
    """``weights.torchscript.pt`` and ``weights.onnx``: any batch, any size the input axes allow.

    Traced on ``example`` (y, x); the map module computes its sizes with tensors, so both run at
    any input size (``tests/test_zoo_map_weights.py`` checks other sizes against the module).
    """
    import warnings

    from .build import OPSET

    frame = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python scalars that are constants here
        traced = torch.jit.trace(_Frame(net), frame, check_trace=False)
        batched = torch.jit.script(_Batched(traced))
        batched.save(str(folder / "weights.torchscript.pt"))
        torch.onnx.export(  # the batch loop becomes an ONNX Loop
            batched,
            (frame[None, None],),
            str(folder / "weights.onnx"),
            opset_version=OPSET,
            dynamo=False,
            input_names=["phase"],
            output_names=["sick_probability"],
            dynamic_axes={axis: {0: "batch", 2: "y", 3: "x"} for axis in ("phase", "sick_probability")},
        )


def test_region(test) -> np.ndarray:
    """A TEST_SIDE square of the test crop's frame around the crop, and its origin in the frame."""
    frame = test.frame
    short = [max(0, MIN_SIZE - n) for n in frame.shape]
    if any(short):  # a small image: mirror it up to the smallest size the package accepts
        frame = np.pad(frame, [(0, k) for k in short], mode="symmetric")
    side_y, side_x = min(TEST_SIDE, frame.shape[0]), min(TEST_SIDE, frame.shape[1])
    side_y, side_x = side_y - (side_y - MIN_SIZE) % NETWORK_STRIDE, side_x - (side_x - MIN_SIZE) % NETWORK_STRIDE
    cy, cx = test.y + WINDOW // 2, test.x + WINDOW // 2
    y = int(np.clip(cy - side_y // 2, 0, frame.shape[0] - side_y))
    x = int(np.clip(cx - side_x // 2, 0, frame.shape[1] - side_x))
    return frame[y : y + side_y, x : x + side_x].astype(np.float32), (y, x)


def stage_map_package(loaded, folder: Path, test, classifier_folder: Path, rdf_common: dict) -> Path:
    """Write the map package into ``folder`` (cover and card from the classifier's staged folder)."""
    from .build import OPSET, _sha256

    folder.mkdir(parents=True, exist_ok=True)
    net = map_network(loaded)
    torch.save(net.state_dict(), folder / "weights.pt")
    (folder / "deadnet_map.py").write_text(architecture_source())
    shutil.copyfile(classifier_folder / "cover.png", folder / "cover.png")
    region, origin = test_region(test)
    with torch.no_grad():
        sick = net(torch.from_numpy(region)[None, None]).numpy().astype(np.float32)
    export_map_weights(net, region, folder)
    np.save(folder / "test_input.npy", region[None, None])
    np.save(folder / "test_output.npy", sick)
    provenance = {**test.provenance(), "crop_yx": list(origin), "crop_size": list(region.shape)}
    provenance.pop("p_sick", None)
    card = (classifier_folder / "README.md").read_text()
    card = card[: card.index("## Using this package")] if "## Using this package" in card else card
    (folder / "README.md").write_text(card + _usage(loaded, region.shape, provenance))
    scale = physical_scale(loaded.meta)
    space = [{"type": "space", "id": axis, "size": {"min": MIN_SIZE, "step": NETWORK_STRIDE}, **scale} for axis in "yx"]
    out_space = [
        {"type": "space", "id": axis, "size": {"tensor_id": "phase", "axis_id": axis}, "halo": HALO, **scale}
        for axis in "yx"
    ]
    kwargs = {"arch": loaded.arch, "normalisation": normalisation_of(loaded.meta), **loaded.arch_kwargs}
    kwargs.pop("softmax_output", None)
    rdf = {
        **{
            k: v
            for k, v in rdf_common.items()
            if k not in ("inputs", "outputs", "weights", "config", "covers", "documentation")
        },
        "name": rdf_common["name"] + " (map)",
        "description": "Fully convolutional phototox map: any phase-contrast image in (from 224 px, 16 px steps), "
        "P(sick) at every pixel out, as 'phototox map --mode dense --stride 16' computes it "
        "(normalisation and upsampling inside the model).",
        "tags": [t for t in rdf_common["tags"] if t != "classification"] + ["semantic-segmentation", "probability-map"],
        "documentation": {"source": "README.md", "sha256": _sha256(folder / "README.md")},
        "covers": [{"source": "cover.png", "sha256": _sha256(folder / "cover.png")}],
        "inputs": [
            {
                "id": "phase",
                "description": "grey phase-contrast image, any intensity scale (normalised inside)",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["phase"]}, *space],
                "test_tensor": {"source": "test_input.npy", "sha256": _sha256(folder / "test_input.npy")},
                "data": {"type": "float32"},
            }
        ],
        "outputs": [
            {
                "id": "sick_probability",
                "description": "P(sick) at every pixel (window values, bilinear between "
                "window centres, edge values held)",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["p_sick"]}, *out_space],
                "test_tensor": {"source": "test_output.npy", "sha256": _sha256(folder / "test_output.npy")},
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "sha256": _sha256(folder / "weights.pt"),
                "architecture": {
                    "source": "deadnet_map.py",
                    "sha256": _sha256(folder / "deadnet_map.py"),
                    "callable": "DeadNetMap",
                    "kwargs": kwargs,
                },
                "pytorch_version": torch.__version__.split("+")[0],
            },
            "torchscript": {
                "source": "weights.torchscript.pt",
                "sha256": _sha256(folder / "weights.torchscript.pt"),
                "parent": "pytorch_state_dict",
                "pytorch_version": torch.__version__.split("+")[0],
            },
            "onnx": {
                "source": "weights.onnx",
                "sha256": _sha256(folder / "weights.onnx"),
                "parent": "pytorch_state_dict",
                "opset_version": OPSET,
            },
        },
        "config": {
            "phototox": {
                "arch": loaded.arch,
                "window": WINDOW,
                "network_stride": NETWORK_STRIDE,
                "halo": HALO,
                "normalisation": kwargs["normalisation"],
                "equivalent": "phototox map --mode dense --stride 16",
                "tiling": "tile on a 16 px grid with a halo of at least 240 px; the map equals the untiled one away "
                "from the image border",
                "test_tensor": provenance,
            }
        },
    }
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
    return folder / "rdf.yaml"


def _usage(loaded, shape, provenance: dict) -> str:
    from .build import OPSET

    norm = normalisation_of(loaded.meta)
    how = (
        "per-window normalisation folded after the first convolution, with the statistics of the 220 px box "
        "around each position (phototox's dense 'local' normalisation)"
        if norm["kind"] == "local"
        else f"box normalisation of the frame ({norm})"
    )
    return f"""## Using this package (map)

* **Input**: one grey phase-contrast image (axes batch, channel, y, x), any bit depth, each side at least
  {MIN_SIZE} px and {MIN_SIZE} + a multiple of {NETWORK_STRIDE}. Crop or pad your image to such a size.
* **Output**: P(sick) at every pixel, the size of the input.
* **Pixel size**: {pixel_size_sentence(loaded.meta)}
* **Inside the model**: {how}; windows every {NETWORK_STRIDE} px from the top-left corner; bilinear
  upsampling between window centres. The result equals `phototox map IMAGE --mode dense --stride 16`.
* **Tiling**: each tile needs a halo of {HALO} px (110 px window half-width + 110 px normalisation box
  half-width + one 16 px grid step) and must start on a 16 px grid. bioimageio.core honours this:
  more than {HALO} px from the image border its map equals phototox's to 1e-6, whole or tiled
  (tested). Within {HALO} px of the border bioimageio.core pads the image by the halo (even untiled),
  so the map there differs from phototox's, which never pads: crop that band, or run phototox.
  Whether deepImageJ and ilastik honour the halo was not tested: give them the whole image, or tiles
  with the halo yourself.
* **Weights**: PyTorch state dict (with the model's Python code), TorchScript (any batch size; for
  deepImageJ) and ONNX (opset {OPSET}), the same computation traced per image with a loop over the
  batch, each passing `bioimageio test`; any batch and any image size the input axes allow.

## Installing phototox

```
git clone <the phototox repository> phototox   # phototox is not on PyPI
cd phototox && python3 -m venv .venv && . .venv/bin/activate
pip install torch==2.13.0 && pip install -e .
```

## Test tensor

A {shape[0]}x{shape[1]} px region of `{provenance["source_file"]}` at (y, x) = {tuple(provenance["crop_yx"])}
containing the classifier package's intermediate test window. Licence: {provenance.get("licence")}.

Built by phototox {phototox.__version__} ({loaded.arch}).
"""
