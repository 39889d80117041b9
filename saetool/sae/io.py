"""Reading and writing SAEs: the ``sae`` HDF5 artifact, plus dispatch to other formats.

INTERFACE STUB: the functions below are the contract between the trainer and
the SAE file formats; their bodies are being written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import h5py
    import numpy as np
    import pandas as pd

    from saetool.sae.model import SAE

KIND = "sae"


def write_sae_artifact(
    path: str | Path,
    sae: "SAE",
    *,
    provenance: dict[str, Any],
    training: dict[str, Any] | None = None,
    history: "dict[str, np.ndarray] | None" = None,
    write_extra: "Callable[[h5py.File], None] | None" = None,
    overwrite: bool = False,
) -> Path:
    """Write an ``sae`` artifact atomically: config, weights, training settings,
    per-step history; ``write_extra(file)`` may add groups (e.g. ``samples``)
    before the file is committed."""
    raise NotImplementedError


class SAEArtifact:
    """An open ``sae`` artifact: ``.config`` (SAEConfig), ``.sae(device)``,
    ``.training`` (dict), ``.history`` (pandas DataFrame), ``.file`` (h5py),
    ``.provenance``."""


def read_sae_artifact(path: str | Path) -> SAEArtifact:
    raise NotImplementedError


def load_sae(path: str | Path, device: str = "cpu") -> "SAE":
    """Any supported SAE: plugin formats first (``load_sae`` hook), then a saetool
    ``sae`` artifact, an SAELens directory, a sparsify directory."""
    raise NotImplementedError
