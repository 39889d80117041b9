"""``saetool extract``: run a model over a corpus and store activations at hooks.

Importing this package does not import torch: :class:`ExtractConfig` comes from
the light :mod:`saetool.extract.config` (the CLI builds its options from it at
``saetool --help``); ``extract_activations`` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saetool.extract.config import ExtractConfig

if TYPE_CHECKING:
    from saetool.extract.api import extract_activations

# Deferred imports: loaded by `saetool --help` (the extract command reads ExtractConfig); the extraction API and torch load on first use.

__all__ = ["ExtractConfig", "extract_activations"]


def __getattr__(name: str) -> Any:
    if name == "extract_activations":
        from saetool.extract.api import extract_activations

        return extract_activations
    raise AttributeError(name)
