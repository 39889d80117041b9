"""Reading ``activations`` artifacts (written by ``saetool extract``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from saetool.artifacts.arrays import from_storage
from saetool.artifacts.store import Artifact, open_artifact
from saetool.errors import ArtifactError

if TYPE_CHECKING:
    import numpy as np
    import torch

KIND = "activations"


class ActivationsFile:
    """An open activations artifact: per-hook ``[n_tokens, d]`` activations plus
    the token id, sequence index and position of every stored row."""

    def __init__(self, path: str | Path) -> None:
        self.artifact: Artifact = open_artifact(path, kind=KIND)
        fh = self.artifact.file
        self.path = self.artifact.path
        self.hooks: list[str] = json.loads(fh.attrs["hooks"])
        self.n_tokens = int(fh.attrs["n_tokens"])
        self.context_size = int(fh.attrs["context_size"])
        self.config: dict[str, Any] = json.loads(fh.attrs.get("config", "{}"))
        for hook in self.hooks:
            if f"activations/{hook}" not in fh:
                raise ArtifactError(f"{self.path} lists hook {hook!r} but has no activations for it (corrupt?)")

    @property
    def provenance(self) -> dict[str, Any]:
        return self.artifact.provenance

    @property
    def model(self) -> str | None:
        return self.provenance.get("model")

    def d(self, hook: str) -> int:
        return int(self._ds(hook).shape[1])

    def _ds(self, hook: str):
        if hook not in self.hooks:
            raise ArtifactError(f"{self.path} has no activations for hook {hook!r}", hint="it has: " + ", ".join(self.hooks))
        return self.artifact.file[f"activations/{hook}"]

    def read(self, hook: str, start: int = 0, stop: int | None = None, *, dtype: "torch.dtype | None" = None) -> "torch.Tensor":
        """Rows ``start:stop`` of a hook's activations as a tensor."""
        ds = self._ds(hook)
        stop = self.n_tokens if stop is None else min(stop, self.n_tokens)
        return from_storage(ds[start:stop], ds.attrs.get("saetool_dtype", "float32"), as_dtype=dtype)

    def iter_chunks(self, hook: str, chunk_rows: int = 8192, *, dtype: "torch.dtype | None" = None) -> Iterator["torch.Tensor"]:
        for start in range(0, self.n_tokens, chunk_rows):
            yield self.read(hook, start, start + chunk_rows, dtype=dtype)

    def token_ids(self) -> "np.ndarray":
        return self.artifact.file["tokens/token_ids"][: self.n_tokens]

    def seq_index(self) -> "np.ndarray":
        return self.artifact.file["tokens/seq_index"][: self.n_tokens]

    def positions(self) -> "np.ndarray":
        return self.artifact.file["tokens/position"][: self.n_tokens]

    def sequences(self) -> "np.ndarray":
        """Every context window the model saw, ``[n_sequences, context_size]``."""
        return self.artifact.file["sequences/token_ids"][:]

    def close(self) -> None:
        self.artifact.close()

    def __enter__(self) -> "ActivationsFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
