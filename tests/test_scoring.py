"""Label scores: chance levels, confidence intervals, fuzzing, the scorer hook and feature selection.

Features are constructed from real SmolLM2 tokenizations whose activations are
known exactly (e.g. "the token is ' India'"), so the right score is known.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from saetool.interpret.labelers import TokensLabeler
from saetool.interpret.records import Example, FeatureRecord, Label, LabelContext
from saetool.interpret.scoring import FuzzingScorer, balanced_accuracy_ci, fuzz_marks, mean_ci
from saetool.interpret.selection import band_edges, density_summary, report_order, select_features

TEXTS = [
    "India and Pakistan agreed to resume talks in Delhi next month.",
    "Exports from India rose by 12% last year, the ministry said.",
    "The World Bank said India would grow faster than China.",
    "Cricket fans in India celebrated the win over England.",
    "Shares in Tata rose after India cut interest rates.",
    "Police said the road would stay closed until Monday.",
    "The film won three awards at the festival in Berlin.",
    "Ministers met union leaders to discuss pay and pensions.",
    "Oil prices fell as supplies from Russia increased.",
    "The club signed a new striker from a Spanish team.",
    "Growth in India slowed in the third quarter.",
    "Voters in India go to the polls in April.",
    "Tea from India is sold across Europe.",
    "Airlines in India ordered new planes from Airbus.",
    "The prime minister of India visited Japan.",
    "Rain in India delayed the harvest by weeks.",
]


@pytest.fixture(scope="module")
def tok(saetool_cache):
    from transformers import AutoTokenizer

    from saetool.models.embedded import SMOLLM2

    return AutoTokenizer.from_pretrained(str(SMOLLM2.ensure_cached()))


def tokenize_all(tok, texts):
    return [[tok.decode([i]) for i in tok.encode(t, add_special_tokens=False)] for t in texts]


@pytest.fixture(scope="module")
def tokenized(tok):
    return tokenize_all(tok, TEXTS)


def constructed_feature(tokenized, active, *, width=8, index=0) -> FeatureRecord:
    """A feature whose activation at token ``i`` of text ``s`` is ``active(s, tokens, i)``
    (a float); windows centred on every token, split into top / held-out / negatives."""
    pos, neg = [], []
    for s, toks in enumerate(tokenized):
        values = [float(active(s, toks, i)) for i in range(len(toks))]
        for i in range(len(toks)):
            lo, hi = max(0, i - width), min(len(toks), i + 3)
            e = Example(activation=values[i], token_ids=list(range(lo, hi)), tokens=toks[lo:hi], position=i - lo, seq_index=s, token_position=i, values=values[lo:hi])
            (pos if values[i] > 0 else neg).append(e)
    rng = random.Random(index)
    rng.shuffle(pos)
    rng.shuffle(neg)
    top = sorted(pos[: len(pos) // 2], key=lambda e: -e.activation)
    return FeatureRecord(index=index, density=len(pos) / (len(pos) + len(neg)), max_activation=max(e.activation for e in pos), mean_activation=1.0, top_examples=top, held_out=pos[len(pos) // 2 :], negatives=neg[: len(pos)])


def test_tokens_label_of_a_token_feature_is_far_above_chance(tokenized):
    india = constructed_feature(tokenized, lambda s, t, i: 3.0 + s * 0.1 if t[i] == " India" else 0.0)
    assert len(india.held_out) >= 4 and len(india.negatives) >= 4
    label = TokensLabeler().label([india], LabelContext())[0]
    assert "India" in label.text
    det, fuzz = label.details["detection"], label.details["fuzzing"]
    assert label.score == det["score"] == 1.0 and fuzz["score"] == 1.0
    assert det["chance"] == fuzz["chance"] == 0.5
    assert det["ci95"][0] > 0.5 and fuzz["ci95"][0] > 0.5  # clearly above chance, by its own interval
    assert det["ci95"] == pytest.approx(list(balanced_accuracy_ci(1.0, det["n_positive"], 1.0, det["n_negative"])), abs=1e-6)


MARKET_TEXTS = [
    "The bond market and the oil market fell but the stock market rose.",
    "The car market was slow, the gold market calm and the stock market up.",
    "The housing market and the labour market cooled; the stock market did not.",
    "In every market, the fish market and the stock market had a bad day.",
    "The gold market and the art market lost while the stock market gained.",
    "Every market, the jobs market too, watched the stock market closely.",
    "The farm market and the export market shrank as the stock market moved.",
    "The metals market rose and the bread market held; the stock market fell.",
]


def test_tokens_label_of_a_token_after_a_token_is_the_bigram(tok):
    """The feature fires on " market" only after " stock": " market" alone is wrong on
    most of its occurrences in the top windows, so the label is the bigram."""
    texts = tokenize_all(tok, MARKET_TEXTS)
    feature = constructed_feature(texts, lambda s, t, i: 2.0 if t[i] == " market" and i and t[i - 1] == " stock" else 0.0, index=2)
    counts = dict(Counter(x for toks in texts for x in toks))
    label = TokensLabeler().label([feature], LabelContext(token_counts=counts, n_tokens=sum(counts.values())))[0]
    assert label.details["chosen_by"] == "balanced accuracy"
    assert [p["tokens"] for p in label.details["patterns"]] == [["stock", "market"]]  # compared in any case
    assert label.text.endswith('bigram "stock market" (any case)') and '"market"' not in label.text
    det = label.details["detection"]
    assert det["true_positive_rate"] == 1.0 and det["true_negative_rate"] == 1.0  # negatives include other markets


def test_tokens_label_does_not_name_a_frequent_unspecific_token(tok):
    """The feature fires on every " India" and, more strongly, on the first " the" of each
    text only: " the" is common in the top examples but silent on most of its occurrences there."""
    texts = tokenize_all(tok, [t.replace(" in ", " in the north of the east of the west of ") for t in TEXTS])

    def active(s, t, i):
        if t[i] == " India":
            return 1.0
        return 5.0 if t[i] == " the" and t.index(" the") == i else 0.0

    feature = constructed_feature(texts, active, index=4)
    assert feature.top_examples[0].token == " the"
    from saetool.interpret.labelers import fit_patterns, token_patterns

    tops = [e.token for e in feature.top_examples]
    assert tops.count(" the") >= 3 and tops.count(" India") >= 3
    assert (" the",) in [p.tokens for p in token_patterns(feature)]  # counting top tokens names it
    patterns = fit_patterns(feature)
    # " India" first; " the" only where the windows show it firing: after " in" ("in the north")
    assert [p.tokens for p in patterns] == [("india",), ("in", "the")]
    label = TokensLabeler().label([feature], LabelContext())[0]
    assert label.text == 'tokens: "India" | bigram "in the" (any case)'


def split_feature(tokenized, values, n_fit, *, index=0) -> FeatureRecord:
    """A feature with activations ``values[s][i]`` at token ``i`` of text ``s``: windows on the
    active tokens of the first ``n_fit`` texts are its top examples (what the label is fitted on),
    those of the other texts its held-out windows, and their silent tokens its negatives."""
    top, held, neg = [], [], []
    for s, (toks, vals) in enumerate(zip(tokenized, values)):
        for i, v in enumerate(vals):
            lo, hi = max(0, i - 8), min(len(toks), i + 3)
            e = Example(activation=v, token_ids=list(range(lo, hi)), tokens=toks[lo:hi], position=i - lo, seq_index=s, token_position=i, values=vals[lo:hi])
            if s >= n_fit:
                (held if v > 0 else neg).append(e)
            elif v > 0:
                top.append(e)
    n = sum(len(v) for v in values)
    density = sum(v > 0 for vals in values for v in vals) / n
    return FeatureRecord(index=index, density=density, max_activation=max(e.activation for e in top), mean_activation=1.0,
                         top_examples=sorted(top, key=lambda e: -e.activation), held_out=held, negatives=neg)


def test_tokens_label_names_a_token_the_feature_often_skips_when_it_carries_the_activations(tok):
    """The feature fires on every " stock" and on every third " market" (which third is not in
    the text): " market" carries about half the activations and is rare among silent tokens, so
    naming it raises the expected balanced accuracy although the feature skips most of its
    occurrences (the former rule, "fires on most occurrences", named " stock" alone)."""
    from saetool.interpret.labelers import PatternJudge, TokenPattern, fit_patterns
    from saetool.interpret.records import Label
    from saetool.interpret.scoring import apply_scorers

    texts = tokenize_all(tok, MARKET_TEXTS)
    markets = iter(range(1000))
    values = [[2.0 if t == " stock" or (t == " market" and next(markets) % 3 == 0) else 0.0 for t in toks] for toks in texts]
    feature = split_feature(texts, values, 6, index=6)
    assert [p.tokens for p in fit_patterns(feature)] == [("stock",), ("market",)]  # largest gain first
    counts = dict(Counter(x for toks in texts for x in toks))
    label = TokensLabeler().label([feature], LabelContext(token_counts=counts, n_tokens=sum(counts.values())))[0]
    assert label.text == 'tokens: "stock", "market" (any case)'
    det = label.details["detection"]
    assert det["true_positive_rate"] == 1.0 and det["true_negative_rate"] < 1.0  # some negatives are silent " market"s
    stock_only = apply_scorers(feature, Label(text='tokens: " stock"', labeler="tokens"), PatternJudge([TokenPattern((" stock",), 1)]))
    assert stock_only.details["detection"]["true_negative_rate"] == 1.0
    assert label.score > stock_only.score + 0.1


def test_tokens_label_stops_at_a_readable_length(tokenized):
    """A feature on every capitalised word (dozens of distinct tokens): the label names the
    12 that cover most activations, " India" (the commonest) first, shown as it reads."""
    from saetool.interpret.labelers import fit_patterns

    values = [[1.0 if t.strip()[:1].isupper() else 0.0 for t in toks] for toks in tokenized]
    feature = split_feature(tokenized, values, 12, index=8)
    patterns = fit_patterns(feature)
    assert len(patterns) == 12 and patterns[0].tokens == ("india",) and patterns[0].shown() == '"India"'
    assert len(fit_patterns(feature, max_items=3)) == 3


def test_tokens_label_compares_tokens_in_any_case_with_or_without_the_space(tokenized):
    """" India" and "India" (a text's first token) are one word to a reader: the folded label
    names it once and predicts both; the exact label needs both tokens."""
    from saetool.interpret.labelers import fit_patterns

    texts = [["India"] + toks[1:] if toks[0] == "India" else toks for toks in tokenized]
    assert any(t[0] == "India" for t in texts) and any(" India" in t for t in texts)
    values = [[1.0 if t.strip() == "India" else 0.0 for t in toks] for toks in texts]
    feature = split_feature(texts, values, 8, index=10)
    folded = fit_patterns(feature)
    assert [p.tokens for p in folded] == [("india",)]
    assert all(folded[0].ends_at(e.tokens, e.position) for e in feature.held_out)
    assert not any(folded[0].ends_at(e.tokens, e.position) for e in feature.negatives)
    exact = fit_patterns(feature, folded=False)
    assert sorted(p.tokens for p in exact) == [(" India",), ("India",)]


def test_fuzzing_is_at_chance_on_a_text_independent_feature(tokenized):
    """Activations drawn at random, independent of the text: any label's marks are no better
    than chance, and a judge that ignores the text scores exactly 0.5."""
    rng = random.Random(3)
    draws = {(s, i): (rng.random() < 0.3) * 2.0 for s, toks in enumerate(tokenized) for i in range(len(toks))}
    feature = constructed_feature(tokenized, lambda s, t, i: draws[(s, i)], index=5)

    class Constant:
        def __init__(self, answer):
            self.answer = answer

        def detect(self, windows):
            return [self.answer] * len(windows)

        def fuzz(self, windows, marks):
            return [self.answer] * len(windows)

    for answer in (True, False, 0.5):
        result = FuzzingScorer().score(feature, None, Constant(answer))
        assert result.score == 0.5 and result.chance == 0.5
        assert result.ci[0] < 0.5 < result.ci[1]
    label = TokensLabeler().label([feature], LabelContext())[0]
    fuzz = label.details["fuzzing"]
    assert fuzz["ci95"][0] <= 0.5 <= fuzz["ci95"][1]
    assert abs(fuzz["score"] - 0.5) <= 0.15


def test_fuzz_marks_are_the_activating_tokens_and_as_many_others():
    ex = Example(activation=2.0, token_ids=[1, 2, 3, 4, 5], tokens=list("abcde"), position=1, values=[0.0, 2.0, None, 1.5, 0.0])
    right, wrong = fuzz_marks(ex, random.Random(0))
    assert right == [1, 3] and sorted(wrong) == [0, 4]
    assert fuzz_marks(Example(activation=1.0, token_ids=[1], tokens=["a"], position=0, values=None), random.Random(0)) is None


def test_confidence_intervals_against_independent_computations():
    lo, hi = balanced_accuracy_ci(0.8, 10, 0.6, 10)
    p1, p2 = 9 / 12, 7 / 12  # one success and one failure added to each rate
    half = 1.959964 * 0.5 * np.sqrt(p1 * (1 - p1) / 12 + p2 * (1 - p2) / 12)
    assert (lo, hi) == pytest.approx(((p1 + p2) / 2 - half, (p1 + p2) / 2 + half), abs=1e-6)
    from scipy import stats

    xs = [0.5, 0.7, 0.9, 0.65, 0.8]
    mean, (a, b), n = mean_ci(xs + [None])
    want = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert n == 5 and mean == pytest.approx(np.mean(xs)) and (a, b) == pytest.approx(want)
    assert mean_ci([None]) == (None, None, 0)


def test_scorers_are_registered_through_the_hook(tokenized):
    from saetool.hookspecs import hookimpl
    from saetool.interpret.scoring import Detection, Scorer
    from saetool.plugins import PluginHost

    class Always(Scorer):
        name = "always-one"
        description = "test scorer"
        chance = 0.25

        def score(self, record, label, judge, *, limit=None, seed=0):
            return Detection(1.0, None, 1, 1, 1.0, 1.0, name=self.name)

    class Plugin:
        @staticmethod
        @hookimpl
        def register_scorers(register):
            register(Always())

    host = PluginHost(load_entry_points=False)
    host.pm.register(Plugin(), name="test-scorer")
    regs = host.collect("scorers")
    assert {"detection", "fuzzing", "always-one"} <= set(regs) and regs["detection"].plugin.startswith("saetool")
    feature = constructed_feature(tokenized, lambda s, t, i: 1.0 if t[i] == " India" else 0.0)
    assert regs["always-one"].obj.score(feature, None, None).score == 1.0
    only = TokensLabeler().label([feature], LabelContext(scorers=["detection"]))[0]
    assert "detection" in only.details and "fuzzing" not in only.details


def test_selection_samples_across_density_bands_and_lists_dense_and_dead():
    n_tokens = 10_000
    rng = np.random.default_rng(0)
    count = np.concatenate([np.zeros(20, int), rng.integers(1, 10, 200), rng.integers(10, 100, 200), rng.integers(100, 1000, 200), rng.integers(2000, 9000, 30)])
    ids = select_features(count, count * 1.0, n_tokens, top=40, order="bands", dense_threshold=0.1)
    density = count / n_tokens
    assert len(ids) == 40 and len(set(ids.tolist())) == 40
    assert (density[ids] > 0).all() and (density[ids] <= 0.1).all()  # no dead, no dense
    assert list(density[ids]) == sorted(density[ids], reverse=True)
    edges = band_edges(n_tokens, 0.1)
    bands = np.searchsorted(edges, np.log10(density[ids]), side="right") - 1
    per_band = np.bincount(bands.clip(0, len(edges) - 2), minlength=len(edges) - 1)
    assert per_band.min() >= 40 // (len(edges) - 1) - 1  # spread evenly, not the densest 40
    assert select_features(count, count * 1.0, n_tokens, top=5, order="density").tolist() == np.argsort(-count, kind="stable")[:5].tolist()
    s = density_summary(count, n_tokens, 0.1)
    assert len(s.dead) == 20 and len(s.dense) == 30 and sum(s.counts) == len(count) - 20
    assert s.dense[0][1] == max(density) and s.live == len(count) - 20
    all_dense = np.array([0, 5000, 6000, 7000])
    assert select_features(all_dense, all_dense * 1.0, n_tokens, top=2, order="bands").tolist() == [3, 2]
    with pytest.raises(Exception, match="--order"):
        select_features(count, count, n_tokens, top=5, order="loudest")


def test_each_order_selects_and_sorts_as_documented():
    count = np.array([0, 50, 7, 900, 7, 3, 0, 90])
    max_act = np.array([0.0, 2.0, 9.0, 1.0, 5.0, 9.0, 0.0, 4.0])
    n_tokens = 1000  # feature 3 is dense (90%), 0 and 6 are dead

    def pick(order, top=4, seed=0):
        return select_features(count, max_act, n_tokens, top=top, order=order, dense_threshold=0.1, seed=seed).tolist()

    assert pick("density") == [3, 7, 1, 2]  # dense ones included, ties by max activation
    assert pick("max") == [2, 5, 4, 7]  # ties by id
    assert pick("index") == [1, 2, 3, 4]  # live ones only
    assert pick("random", top=6) == pick("random", top=6) and sorted(pick("random", top=6)) == [1, 2, 3, 4, 5, 7]
    assert pick("random", top=6, seed=1) != pick("random", top=6)
    assert pick("bands", top=None) == pick("score", top=None) == [7, 1, 2, 4, 5]  # no dense, no dead; densest first
    scored = [FeatureRecord(index=i, density=0.1, max_activation=1.0, mean_activation=1.0) for i in (7, 1, 2, 4, 5)]
    for r, score in zip(scored, (0.6, None, 0.9, 0.6, "unlabelled")):
        r.label = None if score == "unlabelled" else Label(text=f"f{r.index}", labeler="tokens", score=score)
    assert [r.index for r in report_order(scored, "score")] == [2, 4, 7, 1, 5]  # best first, ties by id, unscored last
    assert [r.index for r in report_order(scored, "bands")] == [7, 1, 2, 4, 5]
