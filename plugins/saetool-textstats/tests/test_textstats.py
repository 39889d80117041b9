"""Tests for the saetool-textstats example plugin (run from this folder; no install needed)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

try:
    import saetool_textstats  # noqa: F401  (installed)
except ImportError:  # running from a checkout: use the package next to these tests
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saetool.interpret.records import Example, FeatureRecord, LabelContext
from saetool.steer.metrics import CompletionItem, MetricContext
from saetool_textstats import plugin
from saetool_textstats.labeler import TokenClassLabeler, token_class
from saetool_textstats.metric import DistinctN, distinct_ratio


def example(tokens: list[str], position: int, activation: float = 1.0) -> Example:
    return Example(activation=activation, token_ids=list(range(len(tokens))), tokens=tokens, position=position)


@pytest.mark.parametrize(
    "token, cls",
    [("\n", "newline"), (" ", "space"), (" 1984", "number"), ("3.5", "number"), (",", "punctuation"), (" —", "punctuation"),
     (" London", "capitalised word"), ("The", "capitalised word"), (" the", "word start"), ("ing", "word piece"), (" x2", "other")],
)
def test_token_class(token, cls):
    assert token_class(token) == cls


def test_distinct_ratio_counts_repeated_bigrams():
    assert distinct_ratio("The cat sat on the mat.") == 1.0
    assert distinct_ratio("go go go go") == pytest.approx(1 / 3)
    assert distinct_ratio("I can't, I can't stop") == pytest.approx(3 / 4)  # (i can't) twice
    assert math.isnan(distinct_ratio("hello"))


def test_metric_scores_each_completion():
    items = [CompletionItem("p", "a b a b a b"), CompletionItem("p", "one two three")]
    assert DistinctN().score(items, MetricContext()) == [pytest.approx(2 / 5), 1.0]
    assert DistinctN.kind == "mean"


def test_labeler_names_the_class_and_scores_it_on_held_out_windows():
    comma = [example([" the", ",", " and"], 1, 3.0), example([" one", ";", " two"], 1, 2.5), example([" a", "!"], 1, 2.0)]
    held_out = [example([" x", ".", " y"], 1), example(["(", " z"], 0)]
    negatives = [example([" cat", " sat"], 0), example([" on", " mat"], 1), example([" 42", " dogs"], 1)]
    record = FeatureRecord(7, 0.1, 3.0, 2.0, top_examples=comma, held_out=held_out, negatives=negatives)
    mixed = FeatureRecord(8, 0.1, 1.0, 1.0, top_examples=[example([" the"], 0), example(["ing"], 0), example([","], 0)])
    labels = TokenClassLabeler().label([record, mixed], LabelContext())
    assert labels[0].text == "punctuation (3/3)" and labels[0].labeler == "token-class"
    assert labels[0].score == 1.0 and labels[0].details["class"] == "punctuation"
    assert labels[1].text.startswith("mixed: ") and labels[1].score is None  # nothing held out: no score


def test_labeler_score_is_chance_when_the_class_does_not_predict():
    top = [example([" the"], 0), example([" a"], 0)]
    held_out = [example([" big"], 0), example(["ing"], 0)]
    negatives = [example([" red"], 0), example(["ed"], 0)]
    label = TokenClassLabeler().label([FeatureRecord(1, 0.2, 1.0, 1.0, top_examples=top, held_out=held_out, negatives=negatives)], LabelContext())[0]
    assert label.text == "word start (2/2)" and label.score == 0.5


def test_hooks_register_the_metric_and_the_labeler():
    from saetool.plugins import PluginHost

    host = PluginHost(load_entry_points=False)
    host.register_plugin(plugin, name="textstats")
    assert host.collect("completion_metrics")["distinct-n"].plugin == "textstats"
    assert host.collect("feature_labelers")["token-class"].plugin == "textstats"
    assert "distinct-n" not in host.collect("sae_metrics") and "token-class" not in host.collect("position_labelers")
    assert "refusal" in host.collect("completion_metrics")  # built-ins still there
