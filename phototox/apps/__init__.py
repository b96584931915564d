"""Applications built on the phototox library: the ``phototox`` command line, the HTTP server and
the expert annotation web app.

The library (everything in :mod:`phototox` outside this package) never imports from here; a test
of the import graph (``tests/test_layout.py``) keeps it so.
"""
