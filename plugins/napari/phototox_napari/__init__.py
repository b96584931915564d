"""phototox in napari: a dock widget that maps P(sick) on the selected image layer, and sample data.

A thin front end over the library: every analysis goes through :meth:`phototox.trust.assess.Assessor.analyse`
with :class:`phototox.maps.settings.MapSettings`, as in ``phototox map`` (DeadNet, Richmond et al. 2017,
arXiv:1701.06109). :mod:`.run` holds the Qt-free part, :mod:`.widget` the widget.
"""

__all__ = ["LayerRun", "analyse_layer_data", "layer_pixel_size"]

from .run import LayerRun, analyse_layer_data, layer_pixel_size
