"""``distinct-n``: how repetitive a completion is (Li et al., 2016, "distinct-2").

The score of a completion is the number of distinct word bigrams divided by
the number of bigrams (1.0: no bigram repeats; near 0: a loop such as
"the the the ..."). Completions with fewer than two words score NaN, which
saetool's summaries leave out. Steering that breaks generation into loops
lowers it.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from saetool.steer.metrics import CompletionItem, Metric, MetricContext

_WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)


def distinct_ratio(text: str, n: int = 2) -> float:
    """Distinct word n-grams over all word n-grams of ``text`` (NaN with none)."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else math.nan


class DistinctN(Metric):
    """Distinct word bigrams / all bigrams of a completion (higher: less repetitive)."""

    name = "distinct-n"
    description = "Distinct word bigrams over all bigrams of a completion (1 = no repetition)"
    kind = "mean"
    higher_is_better = True

    def __init__(self, n: int = 2) -> None:
        self.n = n

    def score(self, items: Sequence[CompletionItem], ctx: MetricContext) -> list[float]:  # noqa: ARG002
        return [distinct_ratio(item.completion, self.n) for item in items]
