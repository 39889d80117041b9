"""Feature activations at stored rows: per-feature top-k merges and an SAE's values;
unit decoder rows (the features' directions).

Shared by training's sample collection (:mod:`saetool.train.samples`),
``interpret`` (:mod:`saetool.interpret.collect`), ``track`` and ``bench``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from saetool.artifacts.arrays import from_storage, read_rows


def unit_rows(w: "torch.Tensor") -> "torch.Tensor":
    """The rows of ``w`` scaled to unit L2 norm (a zero row stays zero); dtype and device kept."""
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def batch_topk(dense: "torch.Tensor", rows: "torch.Tensor", k: int, *, threshold: float = float("-inf")) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-column top-``k`` of ``dense [n, F]``: ``[F, k]`` values and the matching
    ``rows`` entries; entries not above ``threshold`` (or missing, n < k) are ``-inf`` / -1."""
    kb = min(k, dense.shape[0])
    vals, idx = dense.topk(kb, dim=0)  # [kb, F]
    vals = torch.where(vals > threshold, vals, float("-inf")).t()
    out_rows = torch.where(vals > float("-inf"), rows[idx].t(), -1)
    if kb < k:
        pad = k - kb
        vals = torch.cat([vals, vals.new_full((vals.shape[0], pad), float("-inf"))], dim=1)
        out_rows = torch.cat([out_rows, out_rows.new_full((out_rows.shape[0], pad), -1)], dim=1)
    return vals, out_rows


def merge_topk(values: "torch.Tensor", rows: "torch.Tensor", cand_values: "torch.Tensor", cand_rows: "torch.Tensor", k: int, *, dedup: bool = False) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Merge per-row candidates ``[F, c]`` into a running top-``k`` ``[F, k]`` (values, ids).

    One ``topk`` over the concatenation, no loop over features. Empty slots
    hold ``-inf`` / -1. With ``dedup`` an id present twice in a row (the same
    token seen again) is kept once, the newer value winning.
    """
    cand_v = torch.cat([values, cand_values], dim=1)
    cand_r = torch.cat([rows, cand_rows], dim=1)
    if dedup:
        order = torch.argsort(cand_r, dim=1, stable=True)
        cand_r = cand_r.gather(1, order)
        cand_v = cand_v.gather(1, order)
        dup = (cand_r[:, 1:] == cand_r[:, :-1]) & (cand_r[:, 1:] >= 0)
        cand_v[:, :-1] = cand_v[:, :-1].masked_fill(dup, float("-inf"))
    top_v, top_i = cand_v.topk(k, dim=1)
    return top_v, torch.where(top_v > float("-inf"), cand_r.gather(1, top_i), -1)


def merge_topk_sparse(values: "torch.Tensor", rows: "torch.Tensor", feat: "torch.Tensor", cand_values: "torch.Tensor", cand_rows: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """:func:`merge_topk` for sparse candidates: flat ``(feat, value, row)`` triples.

    ``values``/``rows`` ``[F, k]`` hold each feature's running top-k (descending;
    ``-inf``/-1 empty). Candidate values must be finite and >= 0 (activations,
    random priorities). Cost is linear in the candidates, not in ``F`` x tokens:
    those not above their feature's current k-th value are dropped, the rest
    sorted once by (feature, value), each feature's first k scattered into a
    ``[F, k]`` block and merged with :func:`merge_topk`. No loop over features.
    """
    F, k = values.shape
    keep = cand_values > values[:, k - 1][feat]
    if not bool(keep.any()):
        return values, rows
    feat, cand_values, cand_rows = feat[keep].long(), cand_values[keep].to(values.dtype), cand_rows[keep].to(rows.dtype)
    # non-negative float32 bit patterns sort like the values: key = (feature, -value)
    bits = cand_values.float().contiguous().view(torch.int32).long()
    order = torch.argsort((feat << 31) | (0x7FFFFFFF - bits), stable=True)
    f_s = feat[order]
    counts = torch.bincount(f_s, minlength=F)
    rank = torch.arange(len(f_s)) - (torch.cumsum(counts, 0) - counts)[f_s]
    sel = rank < k
    slot = f_s[sel] * k + rank[sel]
    block_v = torch.full_like(values, float("-inf"))
    block_r = torch.full_like(rows, -1)
    block_v.view(-1)[slot] = cand_values[order[sel]]
    block_r.view(-1)[slot] = cand_rows[order[sel]]
    return merge_topk(values, rows, block_v, block_r, k)


def values_at(sae: Any, acts: Any, hook: str, rows: "np.ndarray", feats: "np.ndarray") -> "np.ndarray":
    """``sae.encode(x[rows])[feats]`` pairwise for an activations file, encoding each distinct
    row once, in blocks of 4096."""
    out = np.empty(len(rows), np.float32)
    if not len(rows):
        return out
    uniq, inv = np.unique(rows, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(0, len(uniq) + 4096, 4096))
    ds = acts.artifact.file[f"activations/{hook}"]
    for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if lo == hi:
            continue
        x = from_storage(read_rows(ds, uniq[b * 4096 : (b + 1) * 4096]), ds.attrs.get("saetool_dtype", "float32"))
        with torch.no_grad():
            f = sae.encode(x.to(device=sae.device, dtype=sae.dtype)).float().cpu()
        sel = order[lo:hi]
        out[sel] = f[torch.as_tensor(inv[sel] - b * 4096), torch.as_tensor(np.asarray(feats)[sel])].numpy()
    return out
