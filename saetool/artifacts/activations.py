"""Reading ``activations`` artifacts (written by ``saetool extract``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from saetool.artifacts.arrays import from_storage, read_rows
from saetool.artifacts.store import Artifact, open_artifact
from saetool.artifacts.validate import bad
from saetool.errors import ArtifactError

if TYPE_CHECKING:
    import torch

# Deferred imports: torch only for the rows read as tensors; the kind's validator runs in `saetool inspect` and `audit`, which need h5py and numpy alone.

KIND = "activations"


def validate_activations_file(fh: Any, path: Path) -> None:
    """The ``activations`` kind's own check (after its attribute and dataset rules):
    every listed hook has its activations, and the windows are ``context_size`` wide."""
    for hook in json.loads(fh.attrs["hooks"]):
        if f"activations/{hook}" not in fh:
            raise bad(path, f"it lists hook {hook!r} but has no activations for it")
    width = fh["sequences/token_ids"].shape[1]
    if width != int(fh.attrs["context_size"]):
        raise bad(path, f"attribute 'context_size' says {int(fh.attrs['context_size'])} but the windows in sequences/token_ids are {width} wide")


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
        self.config: dict[str, Any] = json.loads(fh.attrs.get("config", "{}"))  # all checked by open_artifact

    def require_tokens(self) -> "ActivationsFile":
        """Self, or a one-line error when the file holds no rows (nothing to train on, measure or interpret)."""
        if self.n_tokens == 0:
            raise ArtifactError(f"{self.path} holds no activations (0 tokens)", hint="re-run `saetool extract` with a corpus that yields tokens")
        return self

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

    def read_finite(self, hook: str, start: int = 0, stop: int | None = None, *, dtype: "torch.dtype | None" = None) -> "torch.Tensor":
        """:meth:`read`, refusing NaN/inf rows with one line that lists them (every stage that computes on activations reads this way)."""
        import torch

        x = self.read(hook, start, stop, dtype=dtype)
        if not bool(torch.isfinite(x).all()):
            bad = self.nonfinite_rows(hook)
            shown = ", ".join(str(r) for r in bad[:10]) + (", ..." if len(bad) > 10 else "")
            raise ArtifactError(
                f"{self.path} has NaN/inf activations at {hook} in {len(bad)} row(s): {shown}",
                hint="re-extract with --dtype float32, or remove those rows",
            )
        return x

    def nonfinite_rows(self, hook: str, chunk_rows: int = 8192) -> list[int]:
        """The indices of the rows of ``hook`` holding NaN or inf."""
        import torch

        bad: list[int] = []
        for start in range(0, self.n_tokens, chunk_rows):
            x = self.read(hook, start, start + chunk_rows, dtype=torch.float32)
            bad.extend((start + torch.nonzero(~torch.isfinite(x).all(dim=1)).flatten()).tolist())
        return bad

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


def token_contexts(files: "Sequence[ActivationsFile]", file_idx: "np.ndarray", local: "np.ndarray", ctx: int) -> tuple["np.ndarray", ...]:
    """For rows ``local`` of ``files[file_idx]``: token id, window, position, a ``ctx``-token
    context around each (-1 padded) and where the token sits in it."""
    n = len(local)
    tok = np.empty(n, np.int32)
    seq = np.empty(n, np.int64)
    pos = np.empty(n, np.int32)
    contexts = np.full((n, ctx), -1, np.int32)
    cpos = np.empty(n, np.int32)
    for i, f in enumerate(files):
        sel = np.flatnonzero(file_idx == i)
        if sel.size == 0:
            continue
        fh = f.artifact.file
        rows = local[sel]
        tok[sel] = read_rows(fh["tokens/token_ids"], rows)
        seq[sel] = read_rows(fh["tokens/seq_index"], rows)
        pos[sel] = read_rows(fh["tokens/position"], rows)
        windows = read_rows(fh["sequences/token_ids"], seq[sel])
        length = windows.shape[1]
        width = min(ctx, length)
        starts = np.clip(pos[sel] - (width * 3) // 4, 0, length - width)
        take = starts[:, None] + np.arange(width)[None, :]
        contexts[sel, :width] = np.take_along_axis(windows, take, axis=1)
        cpos[sel] = pos[sel] - starts
    return tok, seq, pos, contexts, cpos
