"""A planted ground truth for ``track``: activations of several "layers" in which
known features continue, split, merge, are born and die, by construction.

Each token draws independent **roots** (each on with probability ``p``, with a
magnitude in [0.5, 1.5)) and a random bit per root. A planted feature of a layer
is a root as a whole, or one half of it (the tokens where its bit is 0 or 1),
written along its own unit direction. A root seen whole at one layer and as its
two halves at the next is a split (the reverse a merge); a root missing at a
layer has no feature there (birth, death). Directions drift a little from layer
to layer (cosine about 0.97), and a half's direction is its root's plus an
orthogonal part (cosine about 0.82 to the whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from saetool.sae.features import unit_rows

if TYPE_CHECKING:
    from saetool.track.tracker import Event

WHOLE, HALVES, ABSENT = "whole", "halves", "absent"

#: Root -> its form at layers 0, 1, 2 (three layers, two steps, every kind of event at both steps).
SCHEDULE: dict[str, tuple[str, ...]] = {
    **{f"persist{i}": (WHOLE, WHOLE, WHOLE) for i in range(6)},
    "split0a": (WHOLE, HALVES, HALVES),
    "split0b": (WHOLE, HALVES, HALVES),
    "merge0a": (HALVES, WHOLE, WHOLE),
    "merge0b": (HALVES, WHOLE, WHOLE),
    "split1": (WHOLE, WHOLE, HALVES),
    "merge1": (HALVES, HALVES, WHOLE),
    "birth0": (ABSENT, WHOLE, WHOLE),
    "birth1": (ABSENT, ABSENT, WHOLE),
    "death0": (WHOLE, ABSENT, ABSENT),
    "death1": (WHOLE, WHOLE, ABSENT),
}


@dataclass
class Planted:
    """The planted features of each layer (``features[L][i] = (root, half or None)``,
    ``directions[L]`` their unit rows) and the events between adjacent layers as
    ``(kind, step, sources, targets)`` over indices into ``features``."""

    features: list[list[tuple[str, int | None]]]
    directions: list["torch.Tensor"]
    events: set[tuple[str, int, frozenset[int], frozenset[int]]]


def _features(schedule: dict[str, tuple[str, ...]], layer: int) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for root, forms in schedule.items():
        if forms[layer] == WHOLE:
            out.append((root, None))
        elif forms[layer] == HALVES:
            out += [(root, 0), (root, 1)]
    return out


def _events(schedule: dict[str, tuple[str, ...]], feats: list[list[tuple[str, int | None]]]) -> set:
    events = set()
    for step in range(len(feats) - 1):
        index_a = {f: i for i, f in enumerate(feats[step])}
        index_b = {f: i for i, f in enumerate(feats[step + 1])}
        for root, forms in schedule.items():
            a, b = forms[step], forms[step + 1]
            src = [index_a[f] for f in index_a if f[0] == root]
            tgt = [index_b[f] for f in index_b if f[0] == root]
            if a == ABSENT and b == ABSENT:
                continue
            if a == ABSENT:
                events |= {("birth", step, frozenset(), frozenset([j])) for j in tgt}
            elif b == ABSENT:
                events |= {("death", step, frozenset([i]), frozenset()) for i in src}
            elif a == b == WHOLE:
                events.add(("continue", step, frozenset(src), frozenset(tgt)))
            elif a == b == HALVES:
                for half in (0, 1):
                    events.add(("continue", step, frozenset([index_a[(root, half)]]), frozenset([index_b[(root, half)]])))
            else:
                events.add(("split" if a == WHOLE else "merge", step, frozenset(src), frozenset(tgt)))
    return events


def planted_layers(
    n_tokens: int = 8192, d: int = 32, *, p: float = 0.08, noise: float = 0.02, drift: float = 0.25, spread: float = 0.7, seed: int = 0,
    schedule: dict[str, tuple[str, ...]] | None = None,
) -> tuple[list["torch.Tensor"], Planted]:
    """``(activations per layer [n_tokens, d], planted truth)`` (see the module docstring)."""
    schedule = schedule or SCHEDULE
    n_layers = len(next(iter(schedule.values())))
    g = torch.Generator().manual_seed(seed)
    roots = list(schedule)
    n = len(roots)
    if 2 * n <= d:  # orthonormal roots and offsets: the SAEs' task is easy, the tracker's is what is measured
        q, _ = torch.linalg.qr(torch.randn(d, 2 * n, generator=g))
        base, offset = q.T[:n].clone(), q.T[n:].clone()
    else:
        base = torch.randn(n, d, generator=g)
        offset = torch.randn(n, d, generator=g)
        offset -= (offset * base).sum(1, keepdim=True) / (base * base).sum(1, keepdim=True) * base
        base /= base.norm(dim=1, keepdim=True)
        offset /= offset.norm(dim=1, keepdim=True)
    on = (torch.rand(n_tokens, len(roots), generator=g) < p).float()
    magnitude = 0.5 + torch.rand(n_tokens, len(roots), generator=g)
    half = torch.randint(0, 2, (n_tokens, len(roots)), generator=g)
    feats = [_features(schedule, layer) for layer in range(n_layers)]
    layers, directions = [], []
    for layer in range(n_layers):
        root_dir = base + drift * torch.randn(len(roots), d, generator=g) / d**0.5
        root_dir /= root_dir.norm(dim=1, keepdim=True)
        rows, codes = [], []
        for root, h in feats[layer]:
            r = roots.index(root)
            direction = root_dir[r] if h is None else root_dir[r] + (spread if h == 0 else -spread) * offset[r]
            rows.append(direction / direction.norm())
            code = on[:, r] * magnitude[:, r]
            codes.append(code if h is None else code * (half[:, r] == h).float())
        dirs = torch.stack(rows)
        x = torch.stack(codes, dim=1) @ dirs + noise * torch.randn(n_tokens, d, generator=g)
        layers.append(x)
        directions.append(dirs)
    return layers, Planted(feats, directions, _events(schedule, feats))


def match_features(decoder: "torch.Tensor", directions: "torch.Tensor", live: "Sequence[int]", min_cosine: float = 0.9) -> dict[int, int]:
    """SAE feature -> the planted feature whose direction its decoder row matches (cosine >= ``min_cosine``); live features only."""
    cos = (unit_rows(decoder) @ directions.T).numpy()
    return {int(i): int(cos[i].argmax()) for i in live if cos[i].max() >= min_cosine}


def precision_recall(events: "Sequence[Event]", matches: "Sequence[dict[int, int]]", planted: Planted, *, kinds: "Sequence[str] | None" = None) -> tuple[float, float]:
    """Precision and recall of the recovered ``events`` against the planted ones (SAE ids mapped by ``matches``;
    an event with an unmatched feature is wrong). ``kinds`` restricts both sides to those kinds."""
    found = set()
    for n, e in enumerate(events):
        try:
            found.add((e.kind, e.step, frozenset(matches[e.step][i] for i in e.sources), frozenset(matches[e.step + 1][j] for j in e.targets)))
        except KeyError:
            found.add(("unmatched", n, frozenset(), frozenset()))
    truth = set(planted.events)
    if kinds is not None:
        found = {e for e in found if e[0] in kinds or (e[0] == "unmatched" and events[e[1]].kind in kinds)}
        truth = {e for e in truth if e[0] in kinds}
    hit = len(found & truth)
    return (hit / len(found) if found else 1.0), (hit / len(truth) if truth else 1.0)
