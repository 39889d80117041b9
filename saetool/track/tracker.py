"""Tracks and events from the links between features of adjacent layers.

Between layers ``L`` and ``L+1`` the live features and their links form a
bipartite graph. Each connected component is one event: one feature to one
feature is a **continue**, one to several a **split**, several to one a
**merge**, several to several a **complex** event; a live feature of ``L``
with no link **dies**, a live feature of ``L+1`` with no link is **born**.

A **track** is a maximal chain of continues: one feature per layer, from the
layer where it starts (the first layer, a birth, or the product of a split,
merge or complex event) to the layer where it ends (the last layer, a death,
or the source of a split, merge or complex event). Every live feature of every
layer lies on exactly one track; ``parents``/``children`` record which tracks
a split or merge came from and went to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

EVENT_KINDS = ("continue", "split", "merge", "complex", "birth", "death")


@dataclass(frozen=True)
class Link:
    """A link between feature ``source`` of layer index ``step`` and feature ``target`` of ``step + 1``."""

    step: int
    source: int
    target: int
    cosine: float
    correlation: float


@dataclass
class Event:
    """What happened between layer index ``step`` and ``step + 1``: ``sources`` at
    ``step`` (none for a birth), ``targets`` at ``step + 1`` (none for a death)."""

    kind: str
    step: int
    sources: tuple[int, ...]
    targets: tuple[int, ...]
    links: tuple[Link, ...] = ()


@dataclass
class Track:
    """A feature followed through consecutive layers: ``features[i]`` at layer index ``start + i``."""

    id: int
    start: int
    features: list[int]
    cosines: list[float] = field(default_factory=list)  # between consecutive members
    correlations: list[float] = field(default_factory=list)
    start_event: str = "first"  # first | birth | split | merge | complex
    end_event: str = "last"  # last | death | split | merge | complex
    parents: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    score: float = 0.0

    @property
    def end(self) -> int:
        return self.start + len(self.features) - 1

    @property
    def length(self) -> int:
        return len(self.features)


@dataclass
class Graph:
    """What the tracker found: the layers, their live features, the links, tracks and events."""

    layers: list[int]
    hooks: list[str]
    widths: list[int]
    live: list[np.ndarray]  # per layer: live feature ids
    links: list[list[Link]]
    tracks: list[Track]
    events: list[Event]
    frequency: list[np.ndarray] | None = None  # per layer: share of tokens each feature fires on


def find_events(step: int, live_a: Sequence[int], live_b: Sequence[int], links: Sequence[Link]) -> list[Event]:
    """The events between two layers: connected components of the link graph, births and deaths."""
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def root(n: tuple[int, int]) -> tuple[int, int]:
        while parent.setdefault(n, n) != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for ln in links:
        ra, rb = root((0, ln.source)), root((1, ln.target))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[tuple[int, int], list[Link]] = {}
    for ln in links:
        groups.setdefault(root((0, ln.source)), []).append(ln)
    events: list[Event] = []
    for group in groups.values():
        src = tuple(sorted({ln.source for ln in group}))
        tgt = tuple(sorted({ln.target for ln in group}))
        kind = "continue" if len(src) == len(tgt) == 1 else "split" if len(src) == 1 else "merge" if len(tgt) == 1 else "complex"
        events.append(Event(kind, step, src, tgt, tuple(sorted(group, key=lambda x: (x.source, x.target)))))
    linked_a = {ln.source for ln in links}
    linked_b = {ln.target for ln in links}
    events += [Event("death", step, (int(i),), ()) for i in live_a if int(i) not in linked_a]
    events += [Event("birth", step, (), (int(j),)) for j in live_b if int(j) not in linked_b]
    order = {k: n for n, k in enumerate(EVENT_KINDS)}
    events.sort(key=lambda e: (order[e.kind], e.sources, e.targets))
    return events


def build_tracks(live: Sequence[Sequence[int]], links: Sequence[Sequence[Link]]) -> tuple[list[Track], list[Event]]:
    """Tracks and events for layers ``0..n-1``: ``live[i]`` are the live features of
    layer index ``i``, ``links[i]`` the links from ``i`` to ``i + 1``."""
    if len(links) != max(len(live) - 1, 0):
        raise ValueError(f"{len(live)} layers need {max(len(live) - 1, 0)} link lists (got {len(links)})")
    tracks: list[Track] = []
    open_track: dict[int, Track] = {}  # feature at the current layer -> its track
    for f in live[0] if live else ():
        open_track[int(f)] = _new(tracks, 0, int(f), "first")
    events: list[Event] = []
    for step, step_links in enumerate(links):
        found = find_events(step, live[step], live[step + 1], step_links)
        events += found
        nxt: dict[int, Track] = {}
        for ev in found:
            if ev.kind == "continue":
                t = open_track[ev.sources[0]]
                ln = ev.links[0]
                t.features.append(ev.targets[0])
                t.cosines.append(ln.cosine)
                t.correlations.append(ln.correlation)
                nxt[ev.targets[0]] = t
                continue
            ended = [open_track[s] for s in ev.sources]
            for t in ended:
                t.end_event = ev.kind
            for j in ev.targets:
                child = _new(tracks, step + 1, j, ev.kind)
                child.parents = [t.id for t in ended]
                for t in ended:
                    t.children.append(child.id)
                nxt[j] = child
        open_track = nxt
    return tracks, events


def _new(tracks: list[Track], start: int, feature: int, start_event: str) -> Track:
    t = Track(len(tracks), start, [feature], start_event=start_event)
    tracks.append(t)
    return t
