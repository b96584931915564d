"""Every sickness-map option in one place: :class:`MapSettings`.

One frozen dataclass holds each option's default, its allowed values, its validation and its help
text. The command line (:meth:`MapSettings.add_arguments`), the HTTP server and the ImageJ bridge
(:meth:`MapSettings.from_params`, via :mod:`phototox.results.analysis_requests`) are generated from it, and every
map is made from one (validated when it is made, never again per frame); the CellProfiler module and
the Java option list are checked against it by ``tests/test_settings.py``, which fails when they
drift. This module imports nothing heavy (the CLI parser reads it before torch is loaded).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from phototox.defaults import DEFAULT_STRIDE
from phototox.errors import PhototoxError

MODES = ("dense", "exact")
NORMALISATIONS = ("local", "global")
COLOUR_RULES = ("refuse", "luminance")
NETWORK_STRIDE = 16
"""Output step of the fully convolutional pass (four 2x poolings); dense strides divide or are multiples of it."""


def check_dense_stride(stride: int) -> None:
    """Dense mode needs a stride that divides 16 or is a multiple of 16."""
    if stride < 1 or (NETWORK_STRIDE % stride and stride % NETWORK_STRIDE):
        raise PhototoxError(
            f"dense mode needs a stride that divides {NETWORK_STRIDE} or is a multiple of it "
            f"(1, 2, 4, 8, 16, 32, 48, ...), got {stride}; use exact mode for other strides"
        )


def _option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class MapSettings:
    """How a sickness map is made from an image (the same for every front end)."""

    stride: int = _option(DEFAULT_STRIDE, "window step in pixels; dense mode: a divisor or multiple of 16")
    mode: str = _option("dense", "exact: classify every window; dense: one fully convolutional pass", MODES)
    threshold: float = _option(0.5, "sick probability threshold, strictly between 0 and 1")
    normalisation: str = _option(
        "local",
        "dense mode's stand-in for per-crop normalisation (models trained under "
        "the box contract need none and ignore it)",
        NORMALISATIONS,
    )
    colour: str = _option("refuse", "what to do with colour images whose channels differ", COLOUR_RULES)

    def __post_init__(self) -> None:
        self.validate()  # settings are validated once, when they are made; a MapSettings is always valid

    def validate(self) -> MapSettings:
        """Return ``self`` if every option is valid; else one error naming the option and the problem."""
        for f in fields(self):
            choices = f.metadata["choices"]
            value = getattr(self, f.name)
            if choices and value not in choices:
                what = {"mode": "map mode", "normalisation": "dense normalisation", "colour": "colour rule"}[f.name]
                raise PhototoxError(f"unknown {what} {value!r} (setting {f.name}); use one of {', '.join(choices)}")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise PhototoxError(f"stride must be a positive whole number of pixels, got {self.stride!r}")
        if self.mode == "dense":
            check_dense_stride(self.stride)
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, float))
            or not 0.0 < float(self.threshold) < 1.0
        ):
            raise PhototoxError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        return self

    # -- front ends -----------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **defaults: Any) -> None:
        """Add ``--stride``, ``--mode``, ... to a command (``defaults`` override a command's defaults)."""
        for f in fields(cls):
            default = defaults.get(f.name, f.default)
            parser.add_argument(
                f"--{f.name}",
                type=type(f.default),
                default=default,
                choices=f.metadata["choices"],
                help=f"{f.metadata['help']} (default {default})",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MapSettings:
        """The validated settings of parsed command-line arguments."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}).validate()

    @classmethod
    def from_params(cls, params: dict[str, str]) -> MapSettings:
        """The validated settings of ``key=value`` strings (HTTP query, ImageJ options); blanks take defaults."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            text = params.get(f.name)
            if text in (None, ""):
                continue
            kind: type[Any] = type(f.default)  # every option has a default (see _option)
            try:
                values[f.name] = kind(text)
            except ValueError:
                raise PhototoxError(f"setting {f.name}={text!r} is not a valid {kind.__name__}") from None
        return cls(**values).validate()


DEFAULT_SETTINGS = MapSettings()
"""Every option at its default."""


def option_names() -> tuple[str, ...]:
    """The names of every map option (CLI flags are ``--NAME``, request keys ``NAME``)."""
    return tuple(f.name for f in fields(MapSettings))


ENGINES = ("auto", "torch", "onnx", "bf16")
"""``auto``: ONNX Runtime on CPU when installed, else PyTorch; ``onnx`` insists on ONNX Runtime
(``onnxruntime`` is accepted for it); ``bf16``: PyTorch in bfloat16 autocast, an opt-in that is
**not exact** (:data:`BF16_DEVIATION`). Results name the runtime that ran: torch, onnxruntime or
torch-bf16."""

BF16_DEVIATION = (
    "bf16 is approximate: P(sick) differs from the exact engines by up to about 0.02 "
    "(at most 0.011 on 6 real celldeath and T98G frames, benchmarks/README.md), and the domain score "
    "and 'unlike your controls' map, taken from the same pass, move by about 1%; faster only on CPUs "
    "with avx512_bf16/AMX or on GPUs (9x slower on an AVX2-only CPU)"
)
"""What every user of ``--engine bf16`` is told (help text, warning, benchmarks/README.md)."""
