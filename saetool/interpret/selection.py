"""Which features a report shows, and the summary of all of them.

A report of the ``N`` most frequently active features shows the densest ones,
which are the least interpretable; the default here (``order="bands"``) samples
the ``N`` features across log10-density bands instead, so that rare, medium and
frequent features are all represented. Features active on more than
``dense_threshold`` of the tokens (default 10%) are *dense*: never sampled, but
counted and listed separately, like the dead ones (never active).

The summary is the log10 feature-density histogram over **all** features (as
sae-lens and Neuronpedia show it), with the dead and dense counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from saetool.errors import SaetoolError
from saetool.interpret.records import FeatureRecord

ORDERS = ("bands", "density", "max", "score", "index", "random")
#: A feature active on more than this fraction of tokens is dense (listed apart from the sample).
DENSE_THRESHOLD = 0.1
#: Width of one density band in decades (two bands per factor of ten).
BAND_DECADES = 0.5


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise SaetoolError(f"--order must be one of {', '.join(ORDERS)} (got {order!r})")
    return order


def select_features(count: "np.ndarray", max_act: "np.ndarray", n_tokens: int, *, top: int | None, order: str = "bands", dense_threshold: float = DENSE_THRESHOLD, seed: int = 0) -> "np.ndarray":
    """Feature ids to report, in report order.

    ``bands`` (and ``score``, whose order is only known after labelling): with
    ``top``, ``top`` live non-dense features sampled evenly across log10-density
    bands; without, every live non-dense feature; densest first either way.
    ``density``/``max``/``index``/``random``: every feature (dead and dense ones
    included) in that order, the first ``top`` of them (live ones only when there are).
    When every feature is dense or dead, ``bands`` falls back to ``density``.
    """
    check_order(order)
    count = np.asarray(count)
    ids = np.arange(len(count))
    density = count / max(1, n_tokens)
    rng = np.random.default_rng(seed)
    pool = ids[(count > 0) & (density <= dense_threshold)]
    if order in ("bands", "score") and len(pool):
        chosen = pool if top is None or top >= len(pool) else _sample_bands(pool, density, n_tokens, dense_threshold, top, rng)
        return chosen[np.lexsort((chosen, -density[chosen]))]
    if order in ("density", "bands", "score"):  # bands with every feature dense or dead: the densest
        ranked = np.lexsort((ids, -np.asarray(max_act), -count))
    elif order == "max":
        ranked = np.lexsort((ids, -np.asarray(max_act)))
    elif order == "random":
        ranked = rng.permutation(ids)
    else:
        ranked = ids
    if top is not None:
        live = ranked[count[ranked] > 0]
        ranked = (live if len(live) else ranked)[:top]
    return ranked


def report_order(records: Sequence[FeatureRecord], order: str) -> list[FeatureRecord]:
    """``records`` in report order: for ``score``, best label score first (unscored and unlabelled
    last, ties by id); for any other order, as selected."""
    if check_order(order) != "score":
        return list(records)

    def key(r: FeatureRecord) -> tuple[bool, float, int]:
        score = r.label.score if r.label is not None else None
        return score is None, -(score or 0.0), r.index

    return sorted(records, key=key)


def band_edges(n_tokens: int, dense_threshold: float) -> list[float]:
    """log10-density band edges from one token in ``n_tokens`` up to the dense threshold."""
    lo = math.log10(1 / max(1, n_tokens))
    hi = math.log10(max(dense_threshold, 1 / max(1, n_tokens)))
    n = max(1, math.ceil((hi - lo) / BAND_DECADES - 1e-9))
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _sample_bands(pool: "np.ndarray", density: "np.ndarray", n_tokens: int, dense_threshold: float, top: int, rng: Any) -> "np.ndarray":
    """``top`` of ``pool`` spread evenly over the density bands (a band with too few gives its share to the others)."""
    edges = band_edges(n_tokens, dense_threshold)
    band = np.clip(np.searchsorted(edges, np.log10(density[pool]), side="right") - 1, 0, len(edges) - 2)
    members = [rng.permutation(pool[band == b]) for b in range(len(edges) - 1)]
    quota = [0] * len(members)
    left = top
    while left > 0:
        open_bands = [b for b, m in enumerate(members) if len(m) > quota[b]]
        share = max(1, left // len(open_bands))
        for b in open_bands:
            take = min(share, len(members[b]) - quota[b], left)
            quota[b] += take
            left -= take
            if left == 0:
                break
    return np.concatenate([m[:q] for m, q in zip(members, quota)]).astype(np.int64)


@dataclass
class DensitySummary:
    """The log10 density histogram over all features, with the dead and dense ones."""

    d_sae: int
    n_tokens: int
    dense_threshold: float
    edges: list[float]  # log10 density bin edges
    counts: list[int]  # live features per bin
    dead: list[int] = field(default_factory=list)
    dense: list[tuple[int, float]] = field(default_factory=list)  # (feature, density), densest first

    @property
    def live(self) -> int:
        return self.d_sae - len(self.dead)

    def to_json(self) -> dict[str, Any]:
        return {
            "d_sae": self.d_sae,
            "n_tokens": self.n_tokens,
            "dense_threshold": self.dense_threshold,
            "log10_density_edges": self.edges,
            "log10_density_counts": self.counts,
            "dead": self.dead,
            "dense": [list(p) for p in self.dense],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DensitySummary":
        return cls(
            d_sae=int(data["d_sae"]),
            n_tokens=int(data["n_tokens"]),
            dense_threshold=float(data["dense_threshold"]),
            edges=[float(x) for x in data["log10_density_edges"]],
            counts=[int(x) for x in data["log10_density_counts"]],
            dead=[int(x) for x in data.get("dead", [])],
            dense=[(int(f), float(d)) for f, d in data.get("dense", [])],
        )


def density_summary(count: Sequence[int], n_tokens: int, dense_threshold: float = DENSE_THRESHOLD, bins_per_decade: int = 4) -> DensitySummary:
    """:class:`DensitySummary` of all features from their firing counts over ``n_tokens`` tokens."""
    count = np.asarray(count, np.int64)
    density = count / max(1, n_tokens)
    live = density > 0
    lo = math.floor(math.log10(1 / max(1, n_tokens)) * bins_per_decade) / bins_per_decade
    edges = list(np.round(np.arange(lo, 0 + 1e-9, 1 / bins_per_decade), 6))
    if len(edges) < 2:
        edges = [lo, 0.0]
    hist, _ = np.histogram(np.log10(density[live]), bins=edges) if live.any() else (np.zeros(len(edges) - 1, np.int64), None)
    dense_ids = np.flatnonzero(density > dense_threshold)
    dense_ids = dense_ids[np.lexsort((dense_ids, -density[dense_ids]))]
    return DensitySummary(
        d_sae=len(count),
        n_tokens=int(n_tokens),
        dense_threshold=float(dense_threshold),
        edges=[float(e) for e in edges],
        counts=[int(c) for c in hist],
        dead=[int(i) for i in np.flatnonzero(~live)],
        dense=[(int(i), float(density[i])) for i in dense_ids],
    )
