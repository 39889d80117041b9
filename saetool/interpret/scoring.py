"""Scoring labels: how well a label predicts where its feature fires (after delphi's scorers).

A labeler gives, per feature, a :class:`Judge`: something that reads windows
(never their activations) and answers questions about them from the label
alone. Scorers (``register_scorers`` hook; built-ins ``detection`` and
``fuzzing``) ask the questions and compare the answers with the truth:

* ``detection``: does the feature fire on the marked token of this window?
  Asked of held-out activating windows (not among those the label was made
  from) and of random windows where the feature is 0.
* ``fuzzing``: in this held-out activating window, are the marked tokens the
  ones the label describes? Each window is shown twice, once with its
  activating tokens marked and once with as many non-activating tokens marked
  at random.

Every score is a balanced accuracy (mean of the true-positive and
true-negative rates at threshold 0.5) with its **chance level** (0.5: a judge
that ignores the text, or always says yes, gets exactly 0.5) and a 95%
**confidence interval** (Agresti-Caffo: each rate with one success and one
failure added, normal approximation); the AUROC too when the judge gives
probabilities. :func:`mean_ci` summarises a score over many features.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from saetool.errors import SaetoolError
from saetool.interpret.records import Example, FeatureRecord, Label
from saetool.plugins import host

# Deferred imports: scipy (about 1 s, through saetool.steer.stats) only for mean_ci's t quantile; `saetool plugins` loads the
# scorers without it.

Predictor = Callable[[Example], "bool | float"]
BatchPredictor = Callable[[Sequence[Example]], Sequence["bool | float"]]


#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054


@dataclass
class Detection:
    """A balanced-accuracy score (detection, fuzzing or a plugin's) and what it was computed from."""

    balanced_accuracy: float | None
    auroc: float | None
    n_positive: int
    n_negative: int
    true_positive_rate: float | None
    true_negative_rate: float | None
    name: str = "detection"
    chance: float = 0.5

    @property
    def score(self) -> float | None:
        """The label's score: the balanced accuracy (``None`` without both classes)."""
        return self.balanced_accuracy

    @property
    def ci(self) -> tuple[float, float] | None:
        """95% confidence interval of the balanced accuracy (Agresti-Caffo), or ``None``."""
        if self.balanced_accuracy is None or self.true_positive_rate is None or self.true_negative_rate is None:
            return None
        return balanced_accuracy_ci(self.true_positive_rate, self.n_positive, self.true_negative_rate, self.n_negative)

    def details(self) -> dict[str, Any]:
        """JSON-ready fields for :attr:`Label.details`."""
        ci = self.ci
        out: dict[str, Any] = {
            "metric": f"{self.name} balanced accuracy",
            "chance": self.chance,
            "ci95": None if ci is None else [_round(ci[0]), _round(ci[1])],
            "score": _round(self.balanced_accuracy),
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "true_positive_rate": _round(self.true_positive_rate),
            "true_negative_rate": _round(self.true_negative_rate),
        }
        if self.auroc is not None:
            out["auroc"] = _round(self.auroc)
        return out


def balanced_accuracy_ci(tpr: float, n_pos: int, tnr: float, n_neg: int, z: float = Z95) -> tuple[float, float]:
    """Agresti-Caffo interval of ``(tpr + tnr) / 2``: each rate with one success and one failure
    added (so an all-correct small sample does not get a zero-width interval), clipped to [0, 1]."""
    p1 = (tpr * n_pos + 1) / (n_pos + 2)
    p2 = (tnr * n_neg + 1) / (n_neg + 2)
    centre = (p1 + p2) / 2
    half = z * 0.5 * math.sqrt(p1 * (1 - p1) / (n_pos + 2) + p2 * (1 - p2) / (n_neg + 2))
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: Sequence[float | None]) -> tuple[float | None, tuple[float, float] | None, int]:
    """``(mean, 95% interval, n)`` of the scores that are not ``None``: the Student t interval of
    :func:`saetool.steer.stats.mean_ci`, none below two scores. Scores lie in [0, 1], and so does
    the interval: a few scattered scores give a wide one, clipped there."""
    from saetool.steer.stats import mean_ci as t_interval

    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None, 0
    mean, lo, hi = t_interval(xs, bounds=(0.0, 1.0))
    return mean, (None if math.isnan(lo) else (lo, hi)), len(xs)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy booleans too


def balanced_accuracy(positive_predictions: Sequence[bool], negative_predictions: Sequence[bool]) -> float | None:
    """Mean of the fraction of positives predicted positive and negatives predicted negative."""
    if not positive_predictions or not negative_predictions:
        return None
    tpr = sum(bool(p) for p in positive_predictions) / len(positive_predictions)
    tnr = sum(not p for p in negative_predictions) / len(negative_predictions)
    return (tpr + tnr) / 2


def auroc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float | None:
    """Area under the ROC curve: P(a random positive scores above a random negative), ties half.

    Computed from ranks (the Mann-Whitney U statistic over ``n_pos * n_neg``).
    """
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    if not n_pos or not n_neg:
        return None
    pooled = sorted([(float(s), 1) for s in positive_scores] + [(float(s), 0) for s in negative_scores])
    rank_sum, i = 0.0, 0
    while i < len(pooled):  # average ranks over runs of tied scores
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(label for _, label in pooled[i:j])
        i = j
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def detection_score(
    predict: Predictor | None,
    positives: Sequence[Example],
    negatives: Sequence[Example],
    *,
    predict_batch: BatchPredictor | None = None,
    threshold: float = 0.5,
) -> Detection:
    """Score a predictor on activating (``positives``) and non-activating (``negatives``) windows.

    Give ``predict`` (one example at a time) or ``predict_batch`` (all
    examples in one call, e.g. to batch an LLM). Nothing is predicted when
    either side is empty: the score is then ``None``.
    """
    n_pos, n_neg = len(positives), len(negatives)
    if not n_pos or not n_neg:
        return Detection(None, None, n_pos, n_neg, None, None)
    examples = list(positives) + list(negatives)
    if predict_batch is not None:
        raw = list(predict_batch(examples))
    elif predict is not None:
        raw = [predict(example) for example in examples]
    else:
        raise ValueError("give predict or predict_batch")
    if len(raw) != len(examples):
        raise ValueError(f"the predictor returned {len(raw)} predictions for {len(examples)} examples")
    probabilistic = any(not _is_bool(p) for p in raw)
    values = [float(p) for p in raw]
    decisions = [v >= threshold for v in values]
    pos, neg = decisions[:n_pos], decisions[n_pos:]
    tpr = sum(pos) / n_pos
    tnr = sum(not d for d in neg) / n_neg
    area = auroc(values[:n_pos], values[n_pos:]) if probabilistic else None
    return Detection((tpr + tnr) / 2, area, n_pos, n_neg, tpr, tnr)


def score_record(record: FeatureRecord, predict: Predictor | None = None, *, predict_batch: BatchPredictor | None = None, limit: int | None = None) -> Detection:
    """:func:`detection_score` on a record's ``held_out`` and ``negatives`` (the first ``limit`` of each)."""
    positives = record.held_out[:limit] if limit is not None else record.held_out
    negatives = record.negatives[:limit] if limit is not None else record.negatives
    return detection_score(predict, positives, negatives, predict_batch=predict_batch)


# -- judges and scorers ---------------------------------------------------------------------------
class Judge(Protocol):
    """What a labeler's label says about windows (activations are never shown to it).

    ``detect``: for each window, whether (or how likely) the feature fires on
    its marked token. ``fuzz``: for each window and list of token positions,
    whether the marked tokens are the ones the label describes.
    """

    def detect(self, windows: Sequence[Example]) -> Sequence["bool | float"]: ...

    def fuzz(self, windows: Sequence[Example], marks: Sequence[Sequence[int]]) -> Sequence["bool | float"]: ...


class Scorer:
    """Base class for label scorers (``register_scorers`` hook).

    ``score`` returns a :class:`Detection` (a balanced accuracy with its
    ``chance`` level and confidence interval), or ``None`` when the record has
    too little data. ``limit`` caps the windows of each kind.
    """

    name: str = ""
    description: str = ""
    chance: float = 0.5

    def score(self, record: FeatureRecord, label: Label, judge: Judge, *, limit: int | None = None, seed: int = 0) -> Detection | None:
        raise NotImplementedError


class DetectionScorer(Scorer):
    name = "detection"
    description = "Does the feature fire on the marked token? Held-out activating windows vs windows where it is 0"

    def score(self, record: FeatureRecord, label: Label, judge: Judge, *, limit: int | None = None, seed: int = 0) -> Detection | None:
        return score_record(record, predict_batch=judge.detect, limit=limit)


def fuzz_marks(example: Example, rng: random.Random) -> tuple[list[int], list[int]] | None:
    """``(right, wrong)`` marks of a window: its activating tokens, and as many of its
    non-activating tokens drawn at random; ``None`` without per-token values or when
    either kind of token is missing."""
    if example.values is None or len(example.values) != len(example.tokens):
        return None
    right = [i for i, v in enumerate(example.values) if v is not None and v > 0]
    other = [i for i, v in enumerate(example.values) if v is not None and not v > 0]
    if not right or len(other) < len(right):
        return None
    return right, sorted(rng.sample(other, len(right)))


class FuzzingScorer(Scorer):
    name = "fuzzing"
    description = "Are the marked tokens the ones the label describes? Each held-out window with its activating tokens marked, and with as many other tokens marked at random"

    def score(self, record: FeatureRecord, label: Label, judge: Judge, *, limit: int | None = None, seed: int = 0) -> Detection | None:
        rng = random.Random(seed * 1_000_003 + record.index)
        windows, right, wrong = [], [], []
        for ex in record.held_out[:limit] if limit is not None else record.held_out:
            marks = fuzz_marks(ex, rng)
            if marks is not None:
                windows.append(ex)
                right.append(marks[0])
                wrong.append(marks[1])
        if not windows:
            return None
        raw = list(judge.fuzz(windows + windows, right + wrong))
        if len(raw) != 2 * len(windows):
            raise ValueError(f"the judge returned {len(raw)} answers for {2 * len(windows)} marked windows")
        return _from_predictions(raw, len(windows), name=self.name)


def _from_predictions(raw: Sequence["bool | float"], n_pos: int, *, name: str, threshold: float = 0.5) -> Detection:
    """Balanced accuracy of answers whose first ``n_pos`` should be yes and the rest no."""
    n_neg = len(raw) - n_pos
    values = [float(p) for p in raw]
    decisions = [v >= threshold for v in values]
    tpr = sum(decisions[:n_pos]) / n_pos
    tnr = sum(not d for d in decisions[n_pos:]) / n_neg
    probabilistic = any(not _is_bool(p) for p in raw)
    area = auroc(values[:n_pos], values[n_pos:]) if probabilistic else None
    return Detection((tpr + tnr) / 2, area, n_pos, n_neg, tpr, tnr, name=name)


#: Scorers run by default, in this order; the first gives :attr:`Label.score`.
DEFAULT_SCORERS = ("detection", "fuzzing")


def parse_scorers(spec: "str | Sequence[str] | None") -> list[str]:
    """Scorer names from ``"detection,fuzzing"`` (checked against the registered ones)."""
    names = list(DEFAULT_SCORERS) if spec is None else [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    known = host().collect("scorers")
    for n in names:
        if n not in known:
            raise SaetoolError(f"unknown scorer {n!r}", hint="choose from: " + ", ".join(sorted(known)))
    return names


def apply_scorers(record: FeatureRecord, label: Label, judge: Judge, names: Sequence[str] | None = None, *, limit: int | None = None, seed: int = 0, extra: dict[str, Any] | None = None) -> Label:
    """Run the scorers on ``label``: each result under ``label.details[name]`` (with
    ``extra`` fields), and ``label.score`` the first scorer's value (detection by default)."""
    first = True
    for name in names if names is not None else DEFAULT_SCORERS:
        scorer = host().get("scorers", name)
        result = scorer.score(record, label, judge, limit=limit, seed=seed)
        if result is not None:
            result.chance = getattr(scorer, "chance", result.chance)
            label.details[name] = {**result.details(), **(extra or {})}
        if first:
            label.score = None if result is None else result.score
            first = False
    return label
