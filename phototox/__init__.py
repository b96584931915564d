"""phototox: is the light used to image these cells harming them, and where?

A reimplementation and extension of DeadNet (Richmond, Jost, Lake, Spiller, Baker and Vass,
"DeadNet: Identifying Phototoxicity from Label-free Microscopy Images of Cells using Deep
ConvNets", 2017, arXiv:1701.06109). The core library knows nothing of its front ends
(CellProfiler, Fiji, bioimage.io); they all call :class:`phototox.maps.inference.Predictor`.
"""

__version__ = "0.1.0"
CITATION = (
    "Richmond D, Jost AP-T, Lake T, Spiller D, Baker J, Vass J. DeadNet: Identifying phototoxicity "
    "from label-free microscopy images of cells using deep ConvNets. arXiv:1701.06109 (2017)."
)
