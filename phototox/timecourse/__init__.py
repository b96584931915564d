"""Time-lapse phototoxicity: when, and from which light dose, do the cells start to change?

Per field and frame: DeadNet's mean P(sick) and sick-area fraction (the dense map path), motion
(optical flow), confluence and mitotic-rounding events; an onset per exposed field and measure
against the control fields at the same time point (family-wise false-onset rate), and per dose a
non-inferiority verdict on growth, motility, cell size and division rate. See :func:`run_timecourse`.
"""

from phototox.timecourse.pipeline import TimecourseSettings, run_timecourse

__all__ = ["TimecourseSettings", "run_timecourse"]
