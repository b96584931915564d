"""The schema of a model's metadata: every field phototox reads from ``meta`` (and the card), bounded.

A model's metadata sizes work: the normalisation box sizes every band's halo, the pixel size the
resampled frame, the domain statistics a matrix product. So every field phototox uses is checked
here, once, when the model is loaded (:func:`phototox.models.weights.model_from_payload`, which
weight files and bioimage.io packages both go through); a bad field is a one-line
:class:`~phototox.errors.ModelLoadError` naming the file and the field. Bounds:

* ``pixel_size_um`` (and the card's): absent/None, or a number in
  :data:`phototox.trust.pixelsize.PLAUSIBLE_UM` (0.02-20 um/px); how far an image may be resampled to
  it is bounded separately, per image (:func:`phototox.trust.pixelsize.check_resampling`);
* ``normalisation``: absent, ``{"kind": "crop"}`` or ``{"kind": "box", "size": odd 3..``
  :data:`phototox.maps.normalise.MAX_BOX` ``, "edge": "reflect"}``;
* ``domain``: ``mean`` :data:`DOMAIN_FEATURES` finite numbers, ``precision`` a square matrix of
  that side, ``threshold`` a finite number > 0, ``fine_detail.limit`` None or finite,
  ``fine_detail.range`` two finite numbers;
* ``calibration.control_p_sick``: at most :data:`MAX_CONTROLS` probabilities in 0..1;
* ``quality.focus_reference``: a finite number > 0;
* everything else: plain data (mappings with string keys, lists, strings, numbers, booleans,
  None), nested at most :data:`MAX_DEPTH` deep with at most :data:`MAX_NODES` values in all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from phototox.errors import ModelLoadError, PhototoxError
from phototox.io.imagemeta import PLAUSIBLE_UM
from phototox.maps.normalise import contract_from_meta

DOMAIN_FEATURES = 256
"""Length of a domain feature vector: 64 conv3_2 means and 64 spreads, 128 pooled conv4 means."""
MAX_CONTROLS = 100_000
"""Control fields a calibration may record."""
MAX_DEPTH = 32
"""Nesting depth of the metadata."""
MAX_NODES = 1_000_000
"""Values in the whole metadata (the domain precision matrix alone holds 65,536)."""


class _Bad(Exception):
    """A field's problem; turned into a ModelLoadError naming the file and the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"model metadata field '{field}' {problem}")


def _number(value: object, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(field, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        where = f" in {low:g}..{high:g}" if math.isfinite(low) or math.isfinite(high) else ""
        raise _Bad(field, f"must be a finite number{where}, got {str(value)[:40]}")
    return float(value)


def _numbers(value: object, field: str, length: int | None = None, max_length: int | None = None) -> list:
    """A list of finite numbers (of ``length`` exactly, or at most ``max_length``)."""
    if not isinstance(value, list):
        raise _Bad(field, f"must be a list of numbers, got {type(value).__name__}")
    if (length is not None and len(value) != length) or (max_length is not None and len(value) > max_length):
        wanted = f"{length}" if length is not None else f"at most {max_length}"
        raise _Bad(field, f"must hold {wanted} numbers, got {len(value)}")
    for i, item in enumerate(value):
        _number(item, f"{field}[{i}]")
    return value


def _mapping(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(field, f"must be a mapping, got {type(value).__name__}")
    return value


def _pixel_size(value: object, field: str) -> None:
    if value is not None:
        _number(value, field, *PLAUSIBLE_UM)


def _normalisation(value: object, field: str) -> None:
    try:
        contract_from_meta(value)
    except PhototoxError as exc:
        raise _Bad(field, f"is invalid ({str(exc).removeprefix('model metadata ')})") from None


def _domain(value: object, field: str) -> None:
    domain = _mapping(value, field)
    if "mean" not in domain:
        return
    _numbers(domain["mean"], f"{field}.mean", DOMAIN_FEATURES)
    precision = domain.get("precision")
    if not isinstance(precision, list) or len(precision) != DOMAIN_FEATURES:
        raise _Bad(f"{field}.precision", f"must be a {DOMAIN_FEATURES}x{DOMAIN_FEATURES} matrix of numbers")
    for i, row in enumerate(precision):
        _numbers(row, f"{field}.precision[{i}]", DOMAIN_FEATURES)
    _number(domain.get("threshold"), f"{field}.threshold", 0.0)
    if domain.get("pixel_size_um") is not None:
        _pixel_size(domain["pixel_size_um"], f"{field}.pixel_size_um")
    fine = domain.get("fine_detail")
    if fine is None:
        return
    fine = _mapping(fine, f"{field}.fine_detail")
    if fine.get("limit") is not None:
        _number(fine["limit"], f"{field}.fine_detail.limit")
    if fine.get("range") is not None:
        _numbers(fine["range"], f"{field}.fine_detail.range", 2)


def _calibration(value: object, field: str) -> None:
    values = _mapping(value, field).get("control_p_sick")
    if values is not None:
        _numbers(values, f"{field}.control_p_sick", max_length=MAX_CONTROLS)
        for i, p in enumerate(values):
            _number(p, f"{field}.control_p_sick[{i}]", 0.0, 1.0)


def _quality(value: object, field: str) -> None:
    reference = _mapping(value, field).get("focus_reference")
    if reference is not None:
        _number(reference, f"{field}.focus_reference", 1e-12)


def _card(value: object, field: str) -> None:
    _pixel_size(_mapping(value, field).get("pixel_size_um"), f"{field}.pixel_size_um")


FIELDS: dict[str, Callable[[object, str], None]] = {
    "pixel_size_um": _pixel_size,
    "normalisation": _normalisation,
    "domain": _domain,
    "calibration": _calibration,
    "quality": _quality,
    "card": _card,
}
"""The fields phototox reads, and their checks (a field that is absent is not checked)."""


def _plain(value: object, field: str, depth: int, count: list[int]) -> None:
    """Plain data only, bounded in depth and size (iterative over list items, recursive in depth)."""
    count[0] += 1
    if count[0] > MAX_NODES:
        raise _Bad(field, f"holds more than {MAX_NODES} values")
    if depth > MAX_DEPTH:
        raise _Bad(field, f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Bad(field, f"has a key of type {type(key).__name__} (keys must be strings)")
            _plain(item, f"{field}.{key[:40]}", depth + 1, count)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _plain(item, f"{field}[{i}]", depth + 1, count)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise _Bad(field, f"must be plain data, got {type(value).__name__}")


def check_meta(meta: object, source: str, card: object = None) -> dict:
    """``meta`` if it fits the schema (and ``card`` its pixel size); else a one-line ModelLoadError."""
    try:
        checked = _mapping(meta, "meta")
        _plain(checked, "meta", 0, [0])
        for name, check in FIELDS.items():
            if name in checked:
                check(checked[name], name)
        if card is not None:
            _card(card, "card")
    except _Bad as exc:
        raise ModelLoadError(f"{source}: {exc}") from None
    return checked
