"""Detection scoring: how well a label tells activating windows from non-activating ones.

A predictor looks at one :class:`~saetool.interpret.records.Example` (never
at its activation) and says whether the feature fires there: ``True``/``False``
or a probability. :func:`detection_score` runs it over a feature's held-out
activating windows (positives) and its non-activating windows (negatives) and
reports the balanced accuracy (mean of the true-positive and true-negative
rates, 0.5 = chance) at threshold 0.5, plus the AUROC when the predictor gives
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from saetool.interpret.records import Example, FeatureRecord

Predictor = Callable[[Example], "bool | float"]
BatchPredictor = Callable[[Sequence[Example]], Sequence["bool | float"]]


@dataclass
class Detection:
    """A detection score and what it was computed from."""

    balanced_accuracy: float | None
    auroc: float | None
    n_positive: int
    n_negative: int
    true_positive_rate: float | None
    true_negative_rate: float | None

    @property
    def score(self) -> float | None:
        """The label's score: the balanced accuracy (``None`` without both classes)."""
        return self.balanced_accuracy

    def details(self) -> dict[str, Any]:
        """JSON-ready fields for :attr:`Label.details`."""
        out: dict[str, Any] = {
            "metric": "detection balanced accuracy",
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "true_positive_rate": _round(self.true_positive_rate),
            "true_negative_rate": _round(self.true_negative_rate),
        }
        if self.auroc is not None:
            out["auroc"] = _round(self.auroc)
        return out


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
