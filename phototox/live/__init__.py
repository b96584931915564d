"""Live: watch a Micro-Manager acquisition (pymmcore-plus MDA) for phototoxicity as it runs.

Needs the ``live`` extra (``pip install phototox[live]``). :func:`attach` a watcher to a core, or run
``phototox watch``. Warnings only: phototox never changes the acquisition. See
:mod:`phototox.live.watcher` (threads, queue), :mod:`phototox.live.onsets` (the time-course rule,
frame by frame), :mod:`phototox.live.dose` (the dose ledger), :mod:`phototox.live.sim` (a simulated
microscope).
"""

from phototox.live.onsets import LiveWarning
from phototox.live.watcher import LiveSettings, Watcher, attach, check_sequence

__all__ = ["LiveSettings", "LiveWarning", "Watcher", "attach", "check_sequence"]
