"""Streaming per-feature statistics and example selection (vectorised, checkpointable).

:class:`FeatureCollector` sees the nonzero feature activations of one chunk of
tokens at a time, as flat ``(token row, feature, value)`` triples (a TopK SAE
gives them without a dense ``[n, d_sae]`` matrix), and keeps, with torch ops
only and in time linear in the triples:

* ``count``/``total``/``total_sq``/``max`` for all ``d_sae`` features -- firing
  counts (activation > 0), sums over active tokens, the largest value;
* for the tracked features: a running top-k of activations
  (:func:`saetool.sae.features.merge_topk_sparse`);
* a uniform random sample of active tokens, kept as the top-k of random
  priorities drawn per active (token, feature) -- ``k_top + k_held`` of them, so
  that after removing those in the top-k at least ``k_held`` remain;
* random inactive tokens (negatives): per chunk ``negatives`` random rows per
  feature with random priorities, the active ones dropped, merged the same way
  (every chunk of equal size has the same chance);
* in a second pass, a histogram with ``bins`` equal bins over ``(0, max]``,
  and a uniform random sample of ``per_interval`` active tokens in each of
  ``intervals`` equal intervals of ``(0, max]`` (examples of weak, medium
  and strong activations, as SAEDashboard shows them).

Sampling priorities of active tokens are a hash of ``(seed, row, feature)``, and
negatives come from a generator seeded by ``(seed, first row of the chunk)``, so
the result depends only on the data and the seed, not on where a run was
interrupted and resumed, nor (for active tokens) on which other features are tracked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from saetool.sae.features import merge_topk_sparse


@dataclass
class CollectSettings:
    """How many examples of each kind to keep per feature, and the histogram size."""

    examples: int = 20
    held_out: int = 10
    negatives: int = 10
    bins: int = 40
    seed: int = 0
    intervals: int = 5
    per_interval: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NEG_INF = float("-inf")


class FeatureCollector:
    """Statistics of ``d_sae`` features, examples and histograms of the ``tracked`` ones (default all)."""

    #: Tensors saved by :meth:`state` (besides the counters).
    STATE = ("count", "total", "total_sq", "max", "top_v", "top_r", "rnd_v", "rnd_r", "neg_v", "neg_r", "hist", "iv_v", "iv_r")

    def __init__(self, d_sae: int, settings: CollectSettings, tracked: "torch.Tensor | None" = None) -> None:
        self.d_sae = int(d_sae)
        self.settings = s = settings
        self.tracked = None if tracked is None else torch.as_tensor(tracked, dtype=torch.long)
        F = self.d_sae if self.tracked is None else len(self.tracked)
        self.n_features = F
        self.column = None
        if self.tracked is not None:
            self.column = torch.full((self.d_sae,), -1, dtype=torch.long)
            self.column[self.tracked] = torch.arange(F)
        self.count = torch.zeros(self.d_sae, dtype=torch.long)
        self.total = torch.zeros(self.d_sae, dtype=torch.float64)
        self.total_sq = torch.zeros(self.d_sae, dtype=torch.float64)
        self.max = torch.zeros(self.d_sae, dtype=torch.float32)
        self.top_v, self.top_r = _empty(F, s.examples)
        self.rnd_v, self.rnd_r = _empty(F, s.examples + s.held_out)
        self.neg_v, self.neg_r = _empty(F, s.negatives)
        self.hist = torch.zeros(F, s.bins, dtype=torch.long)
        self.iv_v, self.iv_r = _empty(F * s.intervals, s.per_interval)
        self.tokens_seen = 0

    def _tracked_only(self, feat: "torch.Tensor", *others: "torch.Tensor") -> tuple["torch.Tensor", ...]:
        """Triples of tracked features, with ``feat`` turned into their column."""
        if self.column is None:
            return (feat, *others)
        col = self.column[feat]
        keep = col >= 0
        return (col[keep], *(o[keep] for o in others))

    # -- pass 1 -------------------------------------------------------------------
    def update_sparse(self, rows: "torch.Tensor", feat: "torch.Tensor", values: "torch.Tensor", first_row: int, n_rows: int) -> None:
        """Merge one chunk of ``n_rows`` tokens (global rows ``first_row ...``) given
        its active ``(row, feature, value)`` triples (values > 0)."""
        s = self.settings
        rows, feat, values = rows.long(), feat.long(), values.float()
        self.count += torch.bincount(feat, minlength=self.d_sae)
        self.total.index_add_(0, feat, values.double())
        self.total_sq.index_add_(0, feat, values.double() ** 2)
        self.max.scatter_reduce_(0, feat, values, reduce="amax")
        col, r, v, gfeat = self._tracked_only(feat, rows, values, feat)
        gen = torch.Generator().manual_seed(_chunk_seed(s.seed, first_row))
        if s.examples:
            self.top_v, self.top_r = merge_topk_sparse(self.top_v, self.top_r, col, v, r)
        if s.examples + s.held_out:
            prio = _priorities(s.seed, r, gfeat)
            self.rnd_v, self.rnd_r = merge_topk_sparse(self.rnd_v, self.rnd_r, col, prio, r)
        if s.negatives and n_rows:
            F, m = self.n_features, s.negatives
            cand_f = torch.arange(F).repeat_interleave(m)
            cand_r = first_row + torch.randint(0, n_rows, (F * m,), generator=gen)
            prio = torch.rand(F * m, generator=gen)
            key = cand_f * (first_row + n_rows) + cand_r
            # drop rows where the feature is active, and a row drawn twice for one feature
            active = col * (first_row + n_rows) + r
            ok = ~torch.isin(key, active)
            sorted_key, order = torch.sort(key, stable=True)
            dup = torch.zeros_like(ok)
            dup[order[1:]] = sorted_key[1:] == sorted_key[:-1]
            ok &= ~dup
            self.neg_v, self.neg_r = merge_topk_sparse(self.neg_v, self.neg_r, cand_f[ok], prio[ok], cand_r[ok])
        self.tokens_seen += int(n_rows)

    def update(self, acts: "torch.Tensor", rows: "torch.Tensor") -> None:
        """:meth:`update_sparse` from a dense chunk ``acts [n, d_sae]`` at consecutive global ``rows``."""
        nz = (acts > 0).nonzero()
        self.update_sparse(rows[nz[:, 0]], nz[:, 1], acts[nz[:, 0], nz[:, 1]], int(rows[0]) if len(rows) else 0, len(rows))

    # -- pass 2 -------------------------------------------------------------------
    def update_histogram_sparse(self, feat: "torch.Tensor", values: "torch.Tensor", rows: "torch.Tensor | None" = None) -> None:
        """Count one chunk's active values into ``bins`` equal bins over ``(0, max]``; with
        their global ``rows``, also sample tokens per activation interval."""
        s = self.settings
        B = s.bins
        mx = self.max[feat.long()]
        r = rows.long() if rows is not None else torch.zeros_like(feat, dtype=torch.long)
        col, v, mx, r, gfeat = self._tracked_only(feat.long(), values.float(), mx, r, feat.long())
        b = (v * (B / mx)).floor().long().clamp_(0, B - 1)
        self.hist += torch.bincount(col * B + b, minlength=self.n_features * B).view(self.n_features, B)
        if rows is not None and s.intervals and s.per_interval and len(col):
            Q = s.intervals
            q = (v * (Q / mx)).floor().long().clamp_(0, Q - 1)
            prio = _priorities(s.seed + 7919, r, gfeat)
            self.iv_v, self.iv_r = merge_topk_sparse(self.iv_v, self.iv_r, col * Q + q, prio, r)

    def interval_rows(self) -> "torch.Tensor":
        """``[F, intervals * per_interval]`` sampled rows, weakest interval first (-1: none)."""
        s = self.settings
        return self.iv_r.view(self.n_features, s.intervals * s.per_interval)

    def tracked_max(self) -> "torch.Tensor":
        return self.max if self.tracked is None else self.max[self.tracked]

    def histogram_edges(self) -> "torch.Tensor":
        """``[F, bins + 1]`` bin edges of the tracked features (all zero for a dead feature)."""
        return self.tracked_max().unsqueeze(1) * torch.linspace(0, 1, self.settings.bins + 1).unsqueeze(0)

    # -- results ------------------------------------------------------------------
    def held_out(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        """``[F, held_out]`` random active rows not among the top examples (-1: none), and their priorities."""
        in_top = (self.rnd_r.unsqueeze(2) == self.top_r.unsqueeze(1)).any(2) & (self.rnd_r >= 0)
        pr = torch.where(in_top | (self.rnd_r < 0), NEG_INF, self.rnd_v)
        v, i = pr.topk(self.settings.held_out, dim=1)
        return torch.where(v > NEG_INF, self.rnd_r.gather(1, i), -1), v

    def split_examples(self) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """``(held_out rows, top rows, top values)``. A feature with fewer active tokens than
        ``examples + held_out`` would have no held-out examples left to score its label on:
        a random half of its active tokens (at most ``held_out``) is held out and removed from
        its top examples instead, so labels are never scored on the windows they came from.
        Its strongest activation is never among them: the top examples start at its maximum."""
        s = self.settings
        held_r, _ = self.held_out()
        top_v, top_r = self.top_v.clone(), self.top_r.clone()
        count = self.count if self.tracked is None else self.count[self.tracked]
        small = torch.nonzero((count < s.examples + s.held_out) & (count >= 2)).flatten()
        if not len(small) or not s.held_out or not s.examples:
            return held_r, top_r, top_v
        n_h = torch.clamp(count[small] // 2, max=s.held_out)
        strongest = top_r[small, :1]
        pr = torch.where((self.rnd_r[small] >= 0) & (self.rnd_r[small] != strongest), self.rnd_v[small], NEG_INF)
        v, i = pr.topk(s.held_out, dim=1)
        rows = torch.where((v > NEG_INF) & (torch.arange(s.held_out)[None, :] < n_h[:, None]), self.rnd_r[small].gather(1, i), -1)
        held_r = held_r.clone()
        held_r[small] = rows
        gone = (top_r[small].unsqueeze(2) == rows.unsqueeze(1)).any(2) & (top_r[small] >= 0)
        tv = torch.where(gone, NEG_INF, top_v[small])
        tv, order = tv.sort(dim=1, descending=True)
        top_v[small] = tv
        top_r[small] = torch.where(tv > NEG_INF, top_r[small].gather(1, order), -1)
        return held_r, top_r, top_v

    def mean(self) -> "torch.Tensor":
        return torch.where(self.count > 0, self.total / self.count.clamp_min(1), 0.0)

    def std(self) -> "torch.Tensor":
        n = self.count.clamp_min(1).double()
        var = (self.total_sq / n - (self.total / n) ** 2).clamp_min(0)
        return torch.where(self.count > 0, var.sqrt(), 0.0)

    # -- checkpoints --------------------------------------------------------------
    def state(self) -> dict[str, "torch.Tensor"]:
        out = {name: getattr(self, name) for name in self.STATE}
        out["counters"] = torch.tensor([self.tokens_seen], dtype=torch.long)
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        for name in self.STATE:
            if name in state:  # a checkpoint from before interval samples keeps the empty ones
                setattr(self, name, torch.as_tensor(state[name]).clone())
        self.tokens_seen = int(torch.as_tensor(state["counters"])[0])


def _empty(F: int, k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    return torch.full((F, k), NEG_INF), torch.full((F, k), -1, dtype=torch.long)


def _priorities(seed: int, rows: "torch.Tensor", feats: "torch.Tensor") -> "torch.Tensor":
    """Uniform [0, 1) sampling priorities fixed by ``(seed, global row, global feature)``:
    a feature's sampled examples do not depend on which other features are tracked."""
    x = rows.long() * 0x9E3779B1 + feats.long() * 0x85EBCA77 + (int(seed) * 0xC2B2AE3D + 0x27D4EB2F) % (2**61)
    for shift, mult in ((15, 0x2C1B3C6D), (12, 0x297A2D39), (15, 0x165667B1)):
        x = (x ^ (x >> shift)) * mult
    return (x & ((1 << 52) - 1)).double() / float(1 << 52)


def _chunk_seed(seed: int, first_row: int) -> int:
    return (int(seed) * 1_000_003 + int(first_row) * 7_919 + 12_345) % (2**63 - 1)
