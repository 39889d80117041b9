"""saetool: sparse-autoencoder interpretability research from the command line.

The package import is deliberately light; heavy libraries (torch, transformers,
h5py) are imported by the stage that needs them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
