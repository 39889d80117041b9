"""``token-class``: label a feature by the kind of token it fires on.

Each activating token (the marked token of every top example) is put in one
class by :func:`token_class`: ``newline``, ``space``, ``number``,
``punctuation``, ``capitalised word``, ``word start`` (a lower-case word
after a space), ``word piece`` (letters continuing a word) or ``other``. The
label names the most common class and its share, e.g. ``punctuation (9/10)``,
or ``mixed: ...`` with the two most common when none has a majority.

Score: the detection balanced accuracy of "the marked token is of the
label's class" on the feature's held-out activating windows against its
non-activating ones (:func:`saetool.interpret.scoring.score_record`).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Sequence

from saetool.interpret.records import Example, FeatureRecord, Label, LabelContext, Labeler
from saetool.interpret.scoring import score_record

CLASSES = ("newline", "space", "number", "punctuation", "capitalised word", "word start", "word piece", "other")


def token_class(token: str) -> str:
    """The class of one decoded token string."""
    if "\n" in token:
        return "newline"
    stripped = token.strip()
    if not stripped:
        return "space"
    if any(ch.isdigit() for ch in stripped) and all(ch.isdigit() or ch in ".,:/-" for ch in stripped):
        return "number"
    if all(unicodedata.category(ch)[0] in "PS" for ch in stripped):
        return "punctuation"
    if stripped.isalpha():
        if token[0].isspace() or token == stripped and stripped[0].isupper():
            return "capitalised word" if stripped[0].isupper() else "word start"
        return "word piece"
    return "other"


def dominant_class(examples: Sequence[Example]) -> tuple[str | None, Counter]:
    """The most common class among the examples' marked tokens (ties: the order of :data:`CLASSES`)."""
    counts = Counter(token_class(e.token) for e in examples)
    if not counts:
        return None, counts
    best = max(counts.values())
    return next(c for c in CLASSES if counts.get(c) == best), counts


class TokenClassLabeler(Labeler):
    """Labels a feature by the class of token it fires on (no model needed)."""

    name = "token-class"
    description = "The kind of token a feature fires on (punctuation, numbers, word starts, ...), scored on held-out windows"

    def label(self, records: Sequence[FeatureRecord], ctx: LabelContext) -> list[Label]:  # noqa: ARG002
        labels = []
        for record in records:
            cls, counts = dominant_class(record.top_examples)
            if cls is None:
                labels.append(Label("no activating examples", self.name, None, {"classes": {}}))
                continue
            total = sum(counts.values())
            if counts[cls] * 2 > total:
                text = f"{cls} ({counts[cls]}/{total})"
            else:
                top = sorted(counts.items(), key=lambda kv: (-kv[1], CLASSES.index(kv[0])))[:2]
                text = "mixed: " + ", ".join(f"{c} {n}/{total}" for c, n in top)
            detection = score_record(record, lambda e, cls=cls: token_class(e.token) == cls)
            labels.append(Label(text, self.name, detection.score, {"class": cls, "classes": dict(counts), **detection.details()}))
        return labels
