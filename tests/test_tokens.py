"""``saetool tokens``: token associations between two text sets with the real
SmolLM2 tokenizer; chi-square, BH and the smoothed odds ratio against scipy."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats.contingency import odds_ratio

from saetool.analysis.stats import benjamini_hochberg, chi2_2x2, log_odds_dirichlet
from saetool.analysis.token_stats import TokensConfig, associations, read_associations
from tests.helpers import assert_clean_error, run_cli

REFUSALS = [
    "I cannot help with that request.",
    "I'm sorry, but I cannot do that.",
    "Sorry, I cannot assist with this.",
    "I cannot provide that information.",
    "Unfortunately I cannot answer.",
    "I cannot and will not help.",
    "As an assistant I cannot do this.",
    "I cannot share those details.",
]
ANSWERS = [
    "Sure, here is how you bake bread.",
    "Sure! Here are the steps you need.",
    "Here is a recipe for you.",
    "Of course, here you go: mix the flour.",
    "Sure, the capital of France is Paris.",
    "Here is a short poem about the sea.",
    "Sure thing, here is the list.",
    "Here are three ideas for dinner.",
]
REFUSALS, ANSWERS = REFUSALS * 3, ANSWERS * 3  # 24 texts a side: enough for " cannot" to pass BH


@pytest.fixture(scope="module")
def tokenizer(saetool_cache):
    from transformers import AutoTokenizer

    from saetool.models.embedded import SMOLLM2

    return AutoTokenizer.from_pretrained(str(SMOLLM2.ensure_cached()))


def test_chi2_closed_form_matches_scipy():
    rng = np.random.default_rng(1)
    n_a, n_b = 900, 1300
    ya = np.r_[rng.integers(0, 60, 200), 0, 3, 900]
    yb = np.r_[rng.integers(0, 60, 200), 5, 0, 0]
    for yates in (True, False):
        stat, p = chi2_2x2(ya, yb, n_a, n_b, yates=yates)
        for i in range(len(ya)):
            table = [[ya[i], n_a - ya[i]], [yb[i], n_b - yb[i]]]
            ref = stats.chi2_contingency(table, correction=yates)
            assert stat[i] == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12)
            assert p[i] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(size=300), rng.uniform(0, 1e-4, 20), 0.5, 0.5, 1.0]
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    assert benjamini_hochberg(np.array([])).size == 0
    # the former hand-written step-up (p * m / rank, running minimum from the top, capped at 1) gives the same numbers
    order = np.argsort(p)
    by_hand = np.empty(p.size)
    by_hand[order] = np.minimum(np.minimum.accumulate((p[order] * p.size / np.arange(1, p.size + 1))[::-1])[::-1], 1.0)
    np.testing.assert_allclose(benjamini_hochberg(p), by_hand, rtol=1e-12)


def test_add_alpha_log_odds_is_the_smoothed_table_odds_ratio():
    """With a flat prior alpha per token, delta is the log sample odds ratio of
    the table [[y_a+α, n_a+α0-y_a-α], [y_b+α, n_b+α0-y_b-α]] (scipy; it takes
    integer tables, so α = 1, add-one smoothing)."""
    ya = np.array([10, 0, 3, 40, 7])
    yb = np.array([2, 6, 3, 55, 0])
    alpha = 1
    delta, z = log_odds_dirichlet(ya, yb, np.full(5, alpha))
    a0 = alpha * 5
    for i in range(5):
        table = [[ya[i] + alpha, ya.sum() + a0 - ya[i] - alpha], [yb[i] + alpha, yb.sum() + a0 - yb[i] - alpha]]
        assert delta[i] == pytest.approx(np.log(odds_ratio(table, kind="sample").statistic), rel=1e-12)
    assert delta[0] > 0 > delta[1] and z[0] > 0 > z[1]
    assert abs(delta[2]) < 0.5


def test_cli_counts_pvalues_and_q_against_independent_computation(tokenizer, tmp_path):
    fa, fb = tmp_path / "refusals.txt", tmp_path / "answers.txt"
    fa.write_text("\n".join(REFUSALS) + "\n\n")
    fb.write_text("\n".join(ANSWERS) + "\n")
    out, csv = tmp_path / "tok.h5", tmp_path / "tok.csv"
    proc = run_cli("tokens", str(fa), str(fb), "--min-count", "3", "--alpha", "0.05", "-e", str(csv), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout.strip().splitlines()[-1])
    assert manifest["kind"] == "token-associations" and manifest["model"] == "smollm2-135m"

    ca, cb = Counter(), Counter()
    for texts, counter in ((REFUSALS, ca), (ANSWERS, cb)):
        for t in texts:
            counter.update(tokenizer.encode(t, add_special_tokens=False))
    n_a, n_b = sum(ca.values()), sum(cb.values())
    tested = sorted(t for t in set(ca) | set(cb) if ca[t] + cb[t] >= 3)

    table = read_associations(out)
    assert table.attrs["n_tokens_a"] == n_a and table.attrs["n_tokens_b"] == n_b
    assert sorted(table["token_id"]) == tested
    by_id = table.set_index("token_id")
    p_ref = []
    for t in tested:
        assert by_id.loc[t, "count_a"] == ca[t] and by_id.loc[t, "count_b"] == cb[t]
        ref = stats.chi2_contingency([[ca[t], n_a - ca[t]], [cb[t], n_b - cb[t]]])  # scipy's default: Yates
        assert by_id.loc[t, "p"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert by_id.loc[t, "token"] == tokenizer.decode([t])
        p_ref.append(ref.pvalue)
    q_ref = stats.false_discovery_control(np.array(p_ref))
    np.testing.assert_allclose(by_id.loc[tested, "q"], q_ref, rtol=1e-9)
    assert (by_id.loc[tested, "significant"] == (q_ref <= 0.05)).all()

    cannot = tokenizer.encode(" cannot", add_special_tokens=False)
    assert len(cannot) == 1
    row = by_id.loc[cannot[0]]
    assert row["token"] == " cannot" and row["count_a"] == 24 and row["count_b"] == 0
    assert row["log_odds"] > 0 and row["significant"]
    assert (table["z"].diff().dropna() <= 0).all()  # sorted from most typical of a to most typical of b
    assert table["log_odds"].iloc[-1] < 0
    exported = pd.read_csv(csv, keep_default_na=False)
    assert list(exported["token_id"]) == list(table["token_id"])
    assert "' cannot'*" in proc.stderr  # the stderr table marks significant tokens
    # over texts: how many texts of each set hold the token, Fisher's exact test (scipy), BH
    held_a, held_b = (Counter(t for text in texts for t in set(tokenizer.encode(text, add_special_tokens=False))) for texts in (REFUSALS, ANSWERS))
    nt_a, nt_b = len(REFUSALS), len(ANSWERS)
    pt_ref = [stats.fisher_exact([[held_a[t], nt_a - held_a[t]], [held_b[t], nt_b - held_b[t]]]).pvalue for t in tested]
    assert list(by_id.loc[tested, "texts_a"]) == [held_a[t] for t in tested] and list(by_id.loc[tested, "texts_b"]) == [held_b[t] for t in tested]
    np.testing.assert_allclose(by_id.loc[tested, "p_texts"], pt_ref, rtol=1e-9)
    np.testing.assert_allclose(by_id.loc[tested, "q_texts"], stats.false_discovery_control(np.array(pt_ref)), rtol=1e-9)
    assert row["texts_a"] == 24 and row["texts_b"] == 0 and row["significant_texts"]


def test_a_token_repeated_within_one_text_is_significant_over_tokens_but_not_over_texts(tmp_path):
    """One degenerate text saying a word forty times: the chi-square over tokens counts each
    occurrence as evidence; over texts it is one text of twenty."""
    fa, fb = tmp_path / "a.txt", tmp_path / "b.txt"
    fa.write_text("\n".join(["The river was calm today."] * 19 + ["banana " * 40]) + "\n")
    fb.write_text("\n".join(["The river was calm today."] * 20) + "\n")
    out = tmp_path / "t.h5"
    proc = run_cli("tokens", str(fa), str(fb), "--min-count", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    table = read_associations(out)
    banana = table[table["token"].str.strip() == "banana"].iloc[0]
    assert banana["count_a"] >= 39 and banana["significant"] and banana["q"] < 1e-6
    assert banana["texts_a"] == 1 and banana["texts_b"] == 0 and not banana["significant_texts"] and banana["p_texts"] == pytest.approx(1.0)
    assert table.attrs["n_significant_texts_a"] == 0 and table.attrs["n_significant_a"] >= 1
    assert "over texts" in " ".join(proc.stderr.split())


def test_over_texts_the_direction_is_the_share_of_texts_not_the_token_count(tmp_path):
    """A token in most texts of a, but repeated in two texts of b more often than a uses it all
    told: over tokens typical of b, over texts of a, and counted there."""
    fa, fb = tmp_path / "a.txt", tmp_path / "b.txt"
    fa.write_text("\n".join(["We ate an apple at noon."] * 15 + ["The river was calm today."] * 5) + "\n")
    fb.write_text("\n".join([" apple" * 30] * 2 + ["The river was calm today."] * 18) + "\n")
    out = tmp_path / "t.h5"
    proc = run_cli("tokens", str(fa), str(fb), "--min-count", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    table = read_associations(out)
    apple = table[table["token"] == " apple"].iloc[0]
    assert apple["count_b"] > apple["count_a"] and apple["log_odds"] < 0  # over tokens: b
    assert apple["texts_a"] == 15 and apple["texts_b"] == 2 and apple["significant_texts"]  # over texts: a
    sig = table[table["significant_texts"]]
    assert table.attrs["n_significant_texts_a"] == int((sig["texts_a"] > sig["texts_b"]).sum()) >= 1  # both sets hold 20 texts
    assert table.attrs["n_significant_texts_b"] == int((sig["texts_a"] < sig["texts_b"]).sum())
    assert "' apple'*" in proc.stderr and "' apple'*+" not in proc.stderr  # listed on b's side, where over texts it is not typical


def test_dirichlet_prior_shrinks_towards_zero(tokenizer):
    ca = Counter({1: 8, 2: 1, 3: 20})
    cb = Counter({1: 0, 2: 9, 3: 20})
    from saetool.analysis.token_stats import TokenCounts

    sa, sb = (TokenCounts(c, sum(c.values()), Counter({t: min(n, 1) for t, n in c.items()}), 1) for c in (ca, cb))
    weak = associations(sa, sb, TokensConfig(min_count=1, prior_strength=1.0)).set_index("token_id")
    strong = associations(sa, sb, TokensConfig(min_count=1, prior_strength=500.0)).set_index("token_id")
    assert weak.loc[1, "log_odds"] > strong.loc[1, "log_odds"] > 0
    assert weak.loc[2, "log_odds"] < strong.loc[2, "log_odds"] < 0
    # the prior does not move the chi-square test
    assert weak.loc[1, "p"] == strong.loc[1, "p"]


def test_completions_baseline_vs_steered(tmp_path):
    from saetool.artifacts.provenance import build_provenance
    from saetool.steer.completions import write_completions

    path = write_completions(
        tmp_path / "steer.h5", prompts=[f"p{i}" for i in range(24)], splits=[None] * 24,
        texts={"baseline": ANSWERS, "steered": REFUSALS}, settings={"model": "smollm2-135m", "layer": 3, "feature": 7},
        provenance=build_provenance(model="smollm2-135m"),
    )
    out = tmp_path / "t.h5"
    proc = run_cli("tokens", "--completions", str(path), "--a", "baseline", "--b", "steered", "--min-count", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    table = read_associations(out)
    assert table.attrs["labels"] == ["baseline", "steered"]
    cannot = table[table["token"] == " cannot"].iloc[0]
    assert cannot["count_b"] == 24 and cannot["log_odds"] < 0 and cannot["significant"]
    assert "tokens over-represented in steered" in proc.stderr


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_input_is_a_clean_error(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("\n".join(ANSWERS))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    special = tmp_path / "special.txt"
    special.write_text("<|endoftext|>\n<|im_end|><|im_start|>\n")
    out = tmp_path / "t.h5"
    assert_clean_error(run_cli("tokens", str(empty), str(good), "-o", str(out)), "empty")
    assert_clean_error(run_cli("tokens", str(good), str(special), "-o", str(out)), "tokenise to nothing")
    assert not out.exists()


def test_bad_completions_and_options(tmp_path):
    from saetool.analysis.token_stats import TextSet, token_associations, texts_from_completions
    from saetool.artifacts.provenance import build_provenance
    from saetool.errors import SaetoolError
    from saetool.steer.completions import write_completions

    path = write_completions(tmp_path / "c.h5", prompts=["a", "b"], splits=[None] * 2, texts={"baseline": ["hi there", "ok"], "steered": ["", " "]}, provenance=build_provenance())
    with pytest.raises(SaetoolError, match="no condition 'clamped'"):
        texts_from_completions(path, "baseline", "clamped")
    with pytest.raises(SaetoolError, match="only empty completions"):
        texts_from_completions(path, "baseline", "steered")
    sets = (TextSet("a", ["hello"], "x"), TextSet("b", ["world"], "y"))
    for bad, match in (({"alpha": 1.5}, "--alpha"), ({"min_count": 0}, "--min-count"), ({"prior": "flat"}, "--prior")):
        with pytest.raises(SaetoolError, match=match):
            token_associations(*sets, tmp_path / "o.h5", config=TokensConfig(**bad))
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_a_sweep_cell_is_compared_with_its_splits_baseline(tmp_path):
    """tokens --completions CELL.h5 (issue 17): the cell holds only `steered`; the baseline
    comes from the split's shared baseline.h5; the sign convention is printed and stored."""
    from saetool.artifacts.provenance import build_provenance
    from saetool.steer.completions import write_completions

    cells = tmp_path / "run" / "cells" / "harm_test"
    cells.mkdir(parents=True)
    common = {"sweep": "smoke_test", "fingerprint": "abc"}

    def cell(name, cond, texts, **extra):
        settings = {**common, "cell": {"split": "harm_test", "layer": None if cond == "baseline" else 15, "intervention": None, "alpha": None}, **extra}
        return write_completions(cells / name, prompts=[f"p{i}" for i in range(24)], splits=["harm_test"] * 24, texts={cond: texts},
                                 settings=settings, provenance=build_provenance(model="smollm2-135m"), overwrite=True)

    cell("baseline.h5", "baseline", ANSWERS)
    steered = cell("L15_add_a1.h5", "steered", REFUSALS)
    out = tmp_path / "t.h5"
    proc = run_cli("tokens", "--completions", str(steered), "--a", "steered", "--b", "baseline", "--min-count", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    table = read_associations(out)
    cannot = table[table["token"] == " cannot"].iloc[0]
    assert cannot["count_a"] == 24 and cannot["count_b"] == 0 and cannot["log_odds"] > 0 and cannot["significant"]
    assert table.attrs["sources"]["baseline"] == f"{cells / 'baseline.h5'}:baseline"
    assert table.attrs["log_odds_sign"].startswith("log_odds > 0: more frequent in steered than in baseline")
    assert "log_odds > 0: more frequent in steered" in " ".join(proc.stderr.split())
    # a baseline from another sweep is refused, and a missing one is named
    cell("baseline.h5", "baseline", ANSWERS, fingerprint="other")
    assert_clean_error(run_cli("tokens", "--completions", str(steered), "-o", str(tmp_path / "u.h5")), "another sweep")
    (cells / "baseline.h5").unlink()
    assert_clean_error(run_cli("tokens", "--completions", str(steered), "-o", str(tmp_path / "u.h5")), "baseline", "does not exist")
