"""Synthetic activations: a known sparse dictionary, and writing any tensors as an
``activations`` artifact (for tests, benchmarks and sanity checks of training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from saetool.artifacts.arrays import create_rows_dataset, to_storage
from saetool.artifacts.norms import row_norms
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import ArtifactWriter


def sparse_dictionary_data(n_tokens: int, d: int, n_features: int, *, active: float = 5.0, seed: int = 0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(x, dictionary)``: ``x = codes @ dictionary`` where ``dictionary`` has
    ``n_features`` random unit rows in ``d`` dimensions (``n_features > d`` is
    fine) and each token draws about ``active`` features, each with a
    non-negative magnitude in [0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(n_features, d, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    on = torch.rand(n_tokens, n_features, generator=g) < active / n_features
    codes = on * (0.5 + torch.rand(n_tokens, n_features, generator=g))
    return codes @ dictionary, dictionary


def write_activations(
    path: str | Path,
    activations: Mapping[str, "torch.Tensor"],
    *,
    context_size: int = 16,
    token_ids: "np.ndarray | None" = None,
    model: str = "synthetic",
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write ``{hook: [n_tokens, d]}`` as an ``activations`` artifact: row ``i`` is
    position ``i % context_size`` of window ``i // context_size`` (token ids
    random unless given)."""
    hooks = list(activations)
    n = int(next(iter(activations.values())).shape[0]) if hooks else 0
    if token_ids is None:
        token_ids = np.random.default_rng(0).integers(1, 1000, size=n)
    token_ids = np.asarray(token_ids, dtype=np.int32)
    n_seq = -(-n // context_size)
    sequences = np.zeros((n_seq, context_size), np.int32)
    sequences.reshape(-1)[:n] = token_ids
    settings = {"model": model, "hooks": hooks, "context_size": context_size, "dtype": dtype, "corpus": "synthetic", "prepend_bos": False, "exclude_special": False}
    provenance = build_provenance(model=model, hooks=hooks, corpus="synthetic", extract=settings)
    with ArtifactWriter(path, "activations", provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        fh.attrs.update({"hooks": json.dumps(hooks), "config": json.dumps(settings), "context_size": context_size, "n_tokens": n, "n_sequences": n_seq, "model": model, "backend": "synthetic", "dtype": dtype, "bos_token_id": -1, "special_token_ids": "[]"})
        acts = fh.create_group("activations")
        norms = fh.create_group("norms")
        for hook, tensor in activations.items():
            ds = create_rows_dataset(acts, hook, int(tensor.shape[1]), dtype)
            ds.resize(n, axis=0)
            nds = create_rows_dataset(norms, hook, None, "float32")
            nds.resize(n, axis=0)
            if n:
                ds[:] = to_storage(tensor, dtype)
                nds[:] = to_storage(row_norms(tensor), "float32")
        tokens = fh.create_group("tokens")
        for name, values, kind in (("token_ids", token_ids, "int32"), ("seq_index", np.arange(n) // context_size, "int64"), ("position", np.arange(n) % context_size, "int32")):
            ds = create_rows_dataset(tokens, name, None, kind)
            ds.resize(n, axis=0)
            if n:
                ds[:] = values.astype(kind)
        seqs = fh.create_group("sequences")
        ds = create_rows_dataset(seqs, "token_ids", context_size, "int32", chunk_rows=64)
        ds.resize(n_seq, axis=0)
        if n_seq:
            ds[:] = sequences
    return Path(path)
