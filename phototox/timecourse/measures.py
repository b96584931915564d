"""The per-frame measures of a time course: column name -> (axis label, meaning)."""

from __future__ import annotations

MEASURES = {
    "mean_sick_probability": ("mean P(sick)", "DeadNet mean sick probability (dense map)"),
    "sick_area_fraction": ("sick area fraction", "fraction of the field with P(sick) >= threshold"),
    "motion_um_per_min": ("motion (um/min)", "mean optical-flow speed over cell-covered pixels"),
    "frame_change": ("frame change (spread^2)", "squared change between frames over cell-covered pixels"),
    "confluence": ("confluence (fraction)", "fraction of the field covered by cells"),
    "mitotic_events_per_hour": (
        "mitotic rounding (events/h)",
        "rounding events that resolved (division or failed division) per hour, 1 h window",
    ),
    "division_events_per_hour": (
        "divisions (events/h)",
        "rounding events that ended in two daughters per hour, 1 h window (failed divisions left out)",
    ),
    "cell_count": ("cells (count)", "cells in the field: nuclei-free estimate (timecourse.cells) or --cell-counts"),
    "median_cell_area_um2": ("median cell area (um2)", "median area of the estimated cells, um^2"),
    "cell_confluence": (
        "cell confluence (fraction)",
        "fraction covered by cell bodies, halos and bright bands excluded",
    ),
}

# P(sick) measures: their onsets are withheld when more than this share of frames is out of the model's domain
SICKNESS_MEASURES = ("mean_sick_probability", "sick_area_fraction")
