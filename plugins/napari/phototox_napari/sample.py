"""Sample data: a synthetic phase-contrast field (phototox.synth.fields), half its cells light-damaged."""

from __future__ import annotations


def synthetic_field() -> list[tuple]:
    """One 512x512 synthetic field (dose 0.5, seed 0) as a napari layer tuple.

    Synthetic fields have no physical scale, so the layer states none: map it with a synthetic
    model (``deadnet-gap-synthetic-v3``); the shipped real-data model calls it out of domain.
    """
    from phototox.synth.fields import render_field

    image = render_field(512, 512, 0.5, seed=0).image
    return [(image, {"name": "synthetic field (phototox)"}, "image")]
