"""Fiji/ImageJ front end of phototox: the Java plugin (``Phototox_.jar``), its build, and the bridge.

``phototox fiji`` starts ImageJ in-process with the bridge ready; ``phototox serve`` serves an
ImageJ started on its own. See ``plugins/fiji/README.md``.
"""
