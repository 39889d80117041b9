"""Labelled text sets for the ``probing`` eval (``register_probe_datasets`` hook).

A :class:`ProbeDataset` gives ``(text, class)`` pairs; the eval builds one
balanced binary task per class (that class against the others). Built-in:
``bbc-news`` (2,225 BBC News articles in 5 categories, shipped with saetool's
default corpus), and binary tasks of the ``sae-probes`` package
(:mod:`saetool.bench.sae_probes_data`).
"""

from __future__ import annotations

from typing import Iterator

from saetool.errors import SaetoolError
from saetool.plugins import host


class ProbeDataset:
    """Base class for probe datasets: ``name``, ``description`` and :meth:`examples`."""

    name: str = ""
    description: str = ""

    def examples(self) -> Iterator[tuple[str, str]]:
        """Every ``(text, class)`` pair, in a fixed order (the eval samples from them by seed)."""
        raise NotImplementedError


class BbcNewsTopics(ProbeDataset):
    name = "bbc-news"
    description = "BBC News topic: business, entertainment, politics, sport, tech (2,225 articles)"

    def examples(self) -> Iterator[tuple[str, str]]:
        source = host().get("corpus_sources", "bbc-news")
        for category in source.categories():
            for text in source.documents(category):
                yield text, category


def probe_datasets(names: list[str]) -> list[ProbeDataset]:
    """The registered datasets ``names`` (one-line error on an unknown one)."""
    known = host().collect("probe_datasets")
    out = []
    for name in names:
        if name not in known:
            raise SaetoolError(f"unknown probe dataset {name!r}", hint="choose from: " + ", ".join(known))
        out.append(known[name].obj)
    return out
