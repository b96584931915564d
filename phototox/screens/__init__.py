"""Screens and whole plates: chunked maps of huge frames, OME-Zarr, Dask clusters, plate summaries.

Nothing here is imported by the rest of phototox unless a scale feature is asked for, and only
:mod:`.zarrio`, :mod:`.chunked` (OME-Zarr output) and :mod:`.cluster` need the ``scale`` extra
(``pip install -e ".[scale]"``: dask, distributed, ome-zarr).
"""
