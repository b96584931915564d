"""Defaults every front end shares, in a module without heavy imports (the CLI parser reads them).

``DEFAULT_STRIDE``: the window step of a sickness map, for ``phototox map``/``predict``/``demo``/
``dose-response``, the HTTP server, Fiji and CellProfiler alike. In dense mode (the default) any
stride of 16 or more costs one fully convolutional pass, so 32 px only sets the grid; in exact mode
it keeps the window count (and time) to a sixteenth of a 8 px grid. ``phototox explain`` alone uses
110 px (half a window), because Grad-CAM needs one backward pass per window.
"""

DEFAULT_STRIDE = 32

WINDOW = 220
"""Side of the square crop the classifier sees, in pixels (DeadNet's 220 px); equal to
``phototox.models.architectures.WINDOW``, which zoo packages carry alone (tests/test_layout.py checks)."""

# The model `phototox demo` runs by default: trained on phototox.synth.fields fields, like the demo.
DEMO_MODEL = "shipped:deadnet-gap-synthetic-v3"
