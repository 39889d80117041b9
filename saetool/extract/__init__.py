"""``saetool extract``: run a model over a corpus and store activations at hooks."""

from saetool.extract.api import ExtractConfig, extract_activations

__all__ = ["ExtractConfig", "extract_activations"]
