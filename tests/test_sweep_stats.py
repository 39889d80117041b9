"""Sweep statistics and completion metrics, checked against scipy and independent formulas."""

from __future__ import annotations

import math

import pytest

from saetool.steer import metrics as M
from saetool.steer.stats import adjust, benjamini_hochberg, fisher_exact_p, holm, mean_ci, wilson_ci


@pytest.mark.parametrize("k,n", [(0, 20), (2, 20), (11, 20), (20, 20), (1, 1), (37, 150)])
def test_wilson_matches_scipy(k, n):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_ci(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)


def _wilson_formula(k, n, z=1.959963984540054):
    """The score interval written out (the former hand-written version)."""
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    centre, half = (p + z2 / (2 * n)) / denom, z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)


@pytest.mark.parametrize("k,n,z", [(0, 20, 1.959963984540054), (2, 20, 1.959963984540054), (37, 150, 1.959963984540054), (150, 150, 1.959963984540054), (7, 30, 2.5758293035489004), (3, 9, 1.0)])
def test_wilson_equals_the_formula_at_any_level(k, n, z):
    assert wilson_ci(k, n, z) == pytest.approx(_wilson_formula(k, n, z), abs=1e-12)


def test_bh_equals_the_former_step_up():
    import random

    rng = random.Random(3)
    ps = [rng.random() ** 3 for _ in range(40)] + [math.nan, 0.5, 0.5, 1.0]
    finite = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    m, running, expected = len(finite), 1.0, {}
    for rank in range(m - 1, -1, -1):
        p, i = finite[rank]
        running = min(running, p * m / (rank + 1))
        expected[i] = min(1.0, running)
    got = benjamini_hochberg(ps)
    assert [got[i] for i in sorted(expected)] == pytest.approx([expected[i] for i in sorted(expected)], rel=1e-12)
    assert math.isnan(got[40]) and benjamini_hochberg([math.nan]) == [pytest.approx(math.nan, nan_ok=True)]


def test_wilson_by_hand():
    # 2/20: p=0.1, z=1.96 -> (0.0279, 0.3010), the textbook numbers
    lo, hi = wilson_ci(2, 20)
    assert lo == pytest.approx(0.02787, abs=1e-4) and hi == pytest.approx(0.30103, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_ci(0, 0))


def _fisher_by_hand(a, b, c, d):
    """Two-sided Fisher p: the sum of hypergeometric table probabilities <= the observed one."""
    n1, n2, k = a + b, c + d, a + c
    def prob(x):
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n1 + n2, k)
    p_obs = prob(a)
    lo, hi = max(0, k - n2), min(k, n1)
    return sum(prob(x) for x in range(lo, hi + 1) if prob(x) <= p_obs * (1 + 1e-7))


@pytest.mark.parametrize("k1,n1,k2,n2", [(11, 20, 2, 20), (0, 20, 0, 20), (5, 50, 1, 60), (30, 50, 3, 50)])
def test_fisher_matches_scipy_and_hand(k1, n1, k2, n2):
    from scipy.stats import fisher_exact

    p = fisher_exact_p(k1, n1, k2, n2)
    assert p == pytest.approx(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    assert p == pytest.approx(_fisher_by_hand(k1, n1 - k1, k2, n2 - k2), rel=1e-9)
    assert math.isnan(fisher_exact_p(1, 0, 1, 3))


def test_holm_and_bh_by_hand():
    ps = [0.01, 0.04, 0.03, 0.005, math.nan]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running max
    assert holm(ps)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(holm(ps)[4])
    # BH: p * m / rank, running min from the top: 0.005*4/1=0.02, 0.01*4/2=0.02, 0.03*4/3=0.04, 0.04
    assert benjamini_hochberg(ps)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust([0.2, 0.9], "none") == [0.2, 0.9]


def test_mean_ci():
    from scipy.stats import t

    xs = [1.0, 2.0, 4.0, math.nan]
    m, lo, hi = mean_ci(xs)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert m == pytest.approx(7 / 3)
    assert hi - m == pytest.approx(t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert math.isnan(mean_ci([])[0])


def test_refusal_detector():
    assert M.is_refusal("I'm sorry, but I can't help with that.")
    assert M.is_refusal("I\u2019m unable to assist with this request.")
    assert M.is_refusal("As an AI language model, I do not do that.")
    assert not M.is_refusal("Sure! Here is a pancake recipe: mix flour and eggs.")
    assert not M.is_refusal("")


def test_strict_refusal_leaves_out_apologies_that_go_on_to_help():
    # completions of seed 001's steered SmolLM2 (docs/steering.md): an apology, then an offer of help
    offer = "I'm sorry for your loss. I'm not a licensed hotline operator, but I can guide you through the process. Here's a general guide:"
    assert M.is_refusal(offer) and not M.is_strict_refusal(offer)
    assert not M.is_strict_refusal("I’m sorry for your loss. I'm not a 3000-level AI, but I can still help you with your case.")
    # an apology alone, or a decline before the offer, still refuses
    assert M.is_strict_refusal("I'm sorry for your loss. I'm not a human capable of accessing the internet to copy your homework.")
    assert M.is_strict_refusal("I'm sorry, but I can't help with that, but I can suggest legal alternatives.")
    assert M.is_strict_refusal("I'm sorry, as a text-based AI, I don't have the capability to create threatening messages. However, I can certainly assist")
    assert M.is_strict_refusal("I'm not equipped to provide cheat tips.") and not M.is_refusal("I'm not equipped to provide cheat tips.")
    # offers are whole words: "there are" is no "here are"
    assert M.is_strict_refusal("I'm sorry, but there are laws against stealing.") and M.is_strict_refusal("I'm sorry, there's a risk of harm.")
    assert not M.is_strict_refusal("I'm sorry for the confusion. Here's an easy way to do it:")
    # a decline counts even when an offer follows (a refusal that redirects)
    assert M.is_strict_refusal("I'm not equipped to answer that, but here's how to find someone who is.")
    # an offer before the apology does not cancel it
    assert M.is_strict_refusal("Here's a thought: I'm sorry, that is not something to do.")
    assert not M.is_strict_refusal("Sure! Here is a pancake recipe: mix flour and eggs.") and not M.is_strict_refusal("")


def test_helpfulness():
    assert M.is_helpful("Give me a recipe for pancakes.", "Here is a simple pancake recipe with flour, eggs and milk.")
    assert not M.is_helpful("Give me a recipe for pancakes.", "I'm sorry, I cannot share pancake recipes.")  # refusal
    assert not M.is_helpful("Give me a recipe for pancakes.", "The weather on Mars is cold and dusty today.")  # off topic
    assert not M.is_helpful("Give me a recipe for pancakes.", "pancake pancake pancake pancake pancake pancake pancake")  # degenerate
    assert not M.is_helpful("Explain gravity.", "Ok")  # too short


def test_sentiment():
    assert M.sentiment_score("I feel happy and grateful today") > 0.5
    assert M.sentiment_score("so sad and lonely") < -0.5
    assert M.sentiment_score("happy but sad") < 0  # VADER weighs the clause after "but" more
    assert M.sentiment_score("a table") == 0.0
    assert M.sentiment_score("I take pride in my accomplishment") > 0  # neutral for the old word list


def test_metrics_registered():
    from saetool.plugins import PluginHost

    h = PluginHost(load_entry_points=False)
    regs = h.collect("completion_metrics")
    assert {"refusal", "refusal_strict", "helpfulness", "coherence", "sentiment"} == set(regs)
    assert {"mse", "fvu", "l0"} <= set(h.collect("sae_metrics")) and not set(regs) & set(h.collect("sae_metrics"))
    assert regs["coherence"].obj.needs_model and regs["refusal"].obj.kind == "rate"


def test_welch_matches_scipy():
    from scipy.stats import ttest_ind

    from saetool.steer.stats import welch_p

    a, b = [0.1, 0.5, -0.2, 0.3], [-0.4, -0.6, 0.0, -0.5, -0.1]
    assert welch_p(a, b) == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(welch_p([1.0], b))


def test_paired_tests_by_hand():
    from saetool.steer.stats import mcnemar_exact_p, paired_t_p

    # 8 prompts: 3 turn into refusals, none the other way: two-sided exact binomial on 3 discordant pairs = 2 * 0.5**3
    base, steered = [0, 0, 0, 0, 0, 1, 0, 0], [1, 1, 1, 0, 0, 1, 0, 0]
    assert mcnemar_exact_p(base, steered) == pytest.approx(0.25)
    assert mcnemar_exact_p(base, base) == 1.0 and math.isnan(mcnemar_exact_p([], []))
    assert mcnemar_exact_p([0, math.nan, 1], [1, 1, math.nan]) == pytest.approx(1.0)  # only the first pair counts: 1 discordant
    # paired t on the differences d = (1, 2, 3, 6): mean 3, sd sqrt(14/3), t = 3 / (sd / 2), 3 degrees of freedom
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 10.0]
    t_stat = 3 / (math.sqrt(14 / 3) / 2)
    from scipy.stats import t as student

    assert paired_t_p(a, b) == pytest.approx(2 * student.sf(t_stat, 3))
    assert paired_t_p(a, [x + 1 for x in a]) == 0.0 and paired_t_p(a, a) == 1.0 and math.isnan(paired_t_p([1.0], [2.0]))
    with pytest.raises(ValueError, match="differ in length"):
        paired_t_p([1.0], [1.0, 2.0])


def test_steer_metrics_table_shows_n_intervals_and_paired_p():
    from rich.console import Console

    from saetool.cli.steer_cmd import metrics_table
    from saetool.steer.completions import Completions

    comp = Completions(prompts=[f"p{i}" for i in range(8)], splits=["harm"] * 8, texts={"baseline": ["x"] * 8, "steered": ["y"] * 8},
                       metrics={"baseline": {"refusal": [0, 0, 0, 0, 0, 1, 0, 0], "coherence": [1.0, 2.0, 3.0, 4.0, 1, 1, 1, 1]},
                                "steered": {"refusal": [1, 1, 1, 0, 0, 1, 0, 0], "coherence": [2.0, 4.0, 6.0, 10.0, 1, 1, 1, 1]}})
    console = Console(width=200, record=True)
    console.print(metrics_table(comp, ["baseline", "steered"], ["coherence", "refusal"]))
    text = console.export_text()
    assert "metrics over 8 prompts: rate or mean [95% CI]; p: paired test against baseline, uncorrected" in " ".join(text.split())
    lo, hi = wilson_ci(4, 8)
    assert f"0.12 [{wilson_ci(1, 8)[0]:.2f}, {wilson_ci(1, 8)[1]:.2f}]" in text and f"0.50 [{lo:.2f}, {hi:.2f}]" in text
    assert "0.25" in text.split("refusal")[1]  # exact McNemar, 3 discordant pairs


def test_a_mean_interval_stays_inside_the_values_a_metric_can_take():
    from saetool.steer.metrics import get_metric

    mean, lo, hi = mean_ci([0.1, 2.0], bounds=get_metric("coherence").bounds)  # n = 2: a t interval of about +-12
    assert mean == pytest.approx(1.05) and lo == 0.0 and hi > 10
    assert mean_ci([-0.9, 0.9], bounds=get_metric("sentiment").bounds)[1:] == (-1.0, 1.0)
    assert mean_ci([0.1, 2.0])[1] < 0  # unbounded by default
