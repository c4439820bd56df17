"""napari-cellseg: adapt a pretrained network to your microscope and segment cells.

The package root stays light: plugin discovery and sample data must not import
torch, napari or Qt. Import the submodules you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
