"""``saetool check``: verdicts, exit codes, fixes and bad input."""

from __future__ import annotations

import json

import pytest

from tests.helpers import assert_clean_error, run_cli


def _evaluation(**metrics):
    from saetool.evaluate.api import Evaluation

    base = {"explained_variance": 0.9, "fvu": 0.1, "ce_loss_recovered": 0.95, "l0": 40.0, "dead_fraction": 0.02}
    base.update(metrics)
    return Evaluation(metrics=base, sae="s", hook="blocks.3.hook_resid_post", hook_out="blocks.3.hook_resid_post", d_in=576, d_sae=512, model="m", n_rows=10)


def test_rows_and_verdicts():
    from saetool.evaluate.check import FIX_FIRST, SCALE_UP, Thresholds, build_check

    th = Thresholds(min_ev=0.8, min_ce_recovered=0.8, l0_min=10, l0_max=100, max_dead=0.1)
    good = build_check(_evaluation(), th)
    assert good.verdict == SCALE_UP and good.exit_code == 0
    assert [r.passed for r in good.rows][:5] == [True, True, True, True, True]

    bad = build_check(_evaluation(l0=400.0, dead_fraction=0.5), th)
    assert bad.verdict == FIX_FIRST and bad.exit_code == 1
    failed = {r.check: r.fix for r in bad.rows if r.passed is False}
    assert set(failed) == {"L0 (active features/token)", "dead features (fraction)"}
    assert "sparsity coefficient" in failed["L0 (active features/token)"] and "lower k" in failed["L0 (active features/token)"]
    assert "AuxK" in failed["dead features (fraction)"]
    low = build_check(_evaluation(l0=2.0, explained_variance=0.5), th)
    fixes = {r.check: r.fix for r in low.rows if r.passed is False}
    assert "raise k" in fixes["L0 (active features/token)"] and "explained variance" in fixes
    # boundaries are inclusive; an unmeasured CE row is skipped, not failed
    edge = build_check(_evaluation(explained_variance=0.8, l0=100.0, dead_fraction=0.1, ce_loss_recovered=float("nan")), th)
    assert edge.verdict == SCALE_UP
    assert next(r for r in edge.rows if r.check == "CE loss recovered").passed is None


def test_parse_range():
    from saetool.errors import SaetoolError
    from saetool.evaluate.check import parse_range

    assert parse_range("5-200") == (5.0, 200.0)
    with pytest.raises(SaetoolError, match="MIN-MAX"):
        parse_range("5")


def test_fix_issues_first_exits_1(smollm2_sae, smollm2_acts):
    # k=16 TopK: L0 is 16 at most, outside 20-40; at most 0 dead features is also unlikely on 256 tokens
    proc = run_cli("check", str(smollm2_sae), str(smollm2_acts), "--no-model", "--num-tokens", "256", "--l0", "20-40", "--max-dead", "0", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == "FIX ISSUES FIRST"
    rows = {r["check"]: r for r in report["checks"]}
    assert rows["L0 (active features/token)"]["passed"] is False
    assert rows["L0 (active features/token)"]["value"] <= 16
    assert rows["CE loss recovered"]["passed"] is None
    assert rows["explained variance"]["passed"] is True
    assert "FIX ISSUES FIRST" in proc.stderr and "Recommended fixes" in proc.stderr and "raise k" in proc.stderr


def test_scale_up_on_saelens_folder_with_model_and_corpus(smollm2_sae, tmp_path):
    out = tmp_path / "lens"
    assert run_cli("export", str(smollm2_sae), "--format", "saelens", "-o", str(out)).returncode == 0
    proc = run_cli(
        "check", str(out), "--model", "smollm2-135m", "--corpus", "bbc-news", "--context-size", "64", "--num-tokens", "128",
        "--min-ev", "0.5", "--min-ce-recovered", "0.5", "--l0", "1-32", "--max-dead", "1", "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == "SCALE UP" and "SCALE UP" in proc.stderr
    ev = report["evaluation"]
    assert ev["model"] == "smollm2-135m" and ev["corpus"] == "bbc-news" and ev["activations"] is None
    assert ev["n_positions"] == 2 * 62 and ev["n_rows"] > 100  # 2 windows; rows skip special tokens
    m = ev["metrics"]
    assert max(m["ce_loss_clean"], m["ce_loss_sae"]) < m["ce_loss_zero"]  # on 124 positions a good SAE may even beat clean
    assert abs(m["ce_loss_sae"] - m["ce_loss_clean"]) < 0.5 * (m["ce_loss_zero"] - m["ce_loss_clean"])
    assert all(r["passed"] in (True, None) for r in report["checks"])


def test_bad_input_exits_2(smollm2_sae, smollm2_acts, tiny_gpt2_dir, tmp_path):
    from tests.test_evaluate import _tiny_sae_artifact

    wrong = tmp_path / "wrong.h5"
    _tiny_sae_artifact(wrong, d_in=100, hook="blocks.3.hook_resid_post")
    assert_clean_error(run_cli("check", str(wrong), str(smollm2_acts), "--no-model"), "d_in=100")
    assert_clean_error(run_cli("check", str(smollm2_sae), "--model", str(tiny_gpt2_dir), "--corpus", "bbc-news"), "blocks.3.hook_resid_post")
    assert_clean_error(run_cli("check", str(smollm2_sae), str(smollm2_acts), "--l0", "50-10"), "--l0")


# -- --criteria seed000 (issue 17) ---------------------------------------------------------------------
TRANSITION_TEXTS = [
    "I lost my job and felt awful. However, a friend helped me find a new one.",
    "The rain ruined our trip. However, the hotel was lovely.",
    "Everything went wrong today. However, nobody was hurt.",
    "I failed the exam twice. However, I passed it on the third try.",
    "My phone broke this morning. However, the repair was cheap.",
    "We missed the last train home. However, a kind driver gave us a lift.",
]


@pytest.fixture(scope="module")
def seed000_set(tiny_gpt2_dir, tmp_path_factory):
    """Ordinary-text activations and an SAE trained on them (tiny GPT-2), and the transitions through the CLI."""
    folder = tmp_path_factory.mktemp("seed000")
    model = str(tiny_gpt2_dir)
    acts, sae, trans = folder / "acts.h5", folder / "sae.h5", folder / "transitions.h5"
    for args in (("extract", "--model", model, "--layers", "1", "--num-tokens", "2048", "--context-size", "64", "-o", str(acts)),
                 ("train", str(acts), "--arch", "topk", "--d-sae", "128", "--k", "8", "--batch-size", "256", "--steps", "150", "-o", str(sae))):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
    texts = folder / "texts.txt"
    texts.write_text("\n".join(TRANSITION_TEXTS) + "\n")
    proc = run_cli("transitions", "--sae", str(sae), "--texts", str(texts), "-o", str(trans))
    assert proc.returncode == 0, proc.stderr
    return {"acts": acts, "sae": sae, "transitions": trans, "folder": folder}


NEUTRAL_TEXTS = [
    "The train leaves at nine. However, the bus is faster.",
    "We moved the meeting to Tuesday. However, the room is the same.",
    "The report has ten pages. However, the summary has one.",
    "The shop opens at eight. However, the bakery opens at seven.",
]


@pytest.mark.slow  # the CLI end to end on the tiny model
def test_cli_seed000_specific_features_against_a_control(seed000_set, tmp_path):
    """With a control in the transitions (the same bridge after neutral text), a common
    feature must also be min_lift times as common at the transition as at the control's
    tokens: against a control that is the transitions themselves none is; against neutral
    text the count matches an independent computation, with each feature's Fisher p."""
    import shutil

    import h5py
    import torch
    from scipy import stats

    from saetool.analysis.transitions import read_transitions
    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.io import load_sae

    s = seed000_set
    base = ["check", str(s["sae"]), str(s["acts"]), "--no-model", "--criteria", "seed000", "--num-tokens", "2048", "--json", "--min-lift", "1.5"]
    same, neutral = tmp_path / "same.txt", tmp_path / "neutral.txt"
    same.write_text("\n".join(TRANSITION_TEXTS) + "\n")
    neutral.write_text("\n".join(NEUTRAL_TEXTS) + "\n")
    for control, out in ((same, tmp_path / "t_same.h5"), (neutral, tmp_path / "t_neutral.h5")):
        proc = run_cli("transitions", "--sae", str(s["sae"]), "--texts", str(s["folder"] / "texts.txt"), "--control", str(control), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
    plain = {r["check"]: r for r in json.loads(run_cli(*base, "--transitions", str(s["transitions"])).stdout)["checks"]}["common features at the transition"]
    row = {r["check"]: r for r in json.loads(run_cli(*base, "--transitions", str(tmp_path / "t_same.h5")).stdout)["checks"]}["common features at the transition"]
    assert row["value"] == 0 and not row["passed"] and "vs share at the 6 control token(s)" in row["reason"]
    assert "the features at the transition are those of its words" in row["fix"]
    assert "no control" in plain["reason"] and "transitions --control" in plain["reason"]

    sae = load_sae(s["sae"])
    data = read_transitions(tmp_path / "t_neutral.h5")
    with torch.no_grad():
        on = (sae.encode(torch.from_numpy(data["activations"])) > 0).double()
        on_c = (sae.encode(torch.from_numpy(data["control"]["activations"])) > 0).double()
        with ActivationsFile(s["acts"]) as acts:
            density = (sae.encode(acts.read("blocks.1.hook_resid_post")) > 0).double().mean(0)
    share, count = on.mean(0), on.sum(0)
    n = len(on)
    # a control whose activations are zeroed: the candidates the SAE leaves silent there pass with an infinite lift
    silent = tmp_path / "t_silent.h5"
    shutil.copy(tmp_path / "t_neutral.h5", silent)
    with h5py.File(silent, "r+") as fh:
        fh["control/activations"][...] = 0.0
    for name in ("t_neutral.h5", "t_silent.h5"):
        with torch.no_grad():
            on_c = (sae.encode(torch.from_numpy(read_transitions(tmp_path / name)["control"]["activations"])) > 0).double()
        share_c, n_c = on_c.mean(0), len(on_c)
        report = json.loads(run_cli(*base, "--transitions", str(tmp_path / name)).stdout, parse_constant=_no_constant)  # strict JSON
        row = {r["check"]: r for r in report["checks"]}["common features at the transition"]
        candidates = torch.nonzero((share >= 0.5) & (count >= 2) & (share >= 1.5 * density)).flatten().tolist()
        p = [stats.fisher_exact([[int(count[i]), n - int(count[i])], [int(on_c[:, i].sum()), n_c - int(on_c[:, i].sum())]], alternative="greater")[1]
             for i in candidates]
        q = stats.false_discovery_control(p, method="bh") if p else []
        keep = {i for i, qi in zip(candidates, q) if qi < 0.05 and share[i] >= 1.5 * share_c[i]}
        found = report["details"]["specific_features"]
        assert {r["feature"] for r in found} == keep
        if name == "t_silent.h5":  # never active at the control: an infinite lift, null in the JSON
            assert found and any(r["control_count"] == 0 and r["control_lift"] is None for r in found)
        assert row["value"] in (len(keep), "inconclusive") and f"over the {len(candidates)} feature(s) tested" in row["reason"]
        assert [r["control_q"] for r in found] == sorted(r["control_q"] for r in found)
        for r in found:
            i = r["feature"]
            assert r["control_count"] == int(on_c[:, i].sum()) and r["control_q"] == pytest.approx(q[candidates.index(i)])
            assert f"{r['name']} ({r['share']:.0%} vs {r['control_share']:.0%} at the control" in row["reason"] or found.index(r) >= 3


def _no_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_seed000_features_against_the_control_on_known_codes():
    """against_control on hand-made codes: Fisher's one-sided p per feature, Benjamini-Hochberg
    over the candidates, the lift, an infinite lift as null in the JSON, and too few samples
    to show anything."""
    import torch
    from scipy import stats

    from saetool.artifacts.jsonable import finite
    from saetool.evaluate.criteria import Seed000Thresholds, against_control, specific_features

    def codes(active_counts, n):  # feature j active in the first active_counts[j] of n samples
        return torch.tensor([[1.0 if s < c else 0.0 for c in active_counts] for s in range(n)])

    th = Seed000Thresholds(min_share=0.5, min_lift=2.0, level=0.05)
    # features: 0 specific (10/10 vs 0/10), 1 the bridge word (10/10 vs 10/10), 2 lift 2 but weak (6/10 vs 3/10),
    # 3 rare on ordinary text but never at the transition, 4 common everywhere (fails against the density)
    f, fc = codes([10, 10, 6, 0, 10], 10), codes([0, 10, 3, 0, 10], 10)
    density = torch.tensor([0.01, 0.01, 0.01, 0.001, 0.9])
    candidates = specific_features(f, density, th, 15)
    assert [r["feature"] for r in candidates] == [0, 1, 2]
    test = against_control(candidates, f, fc, th)
    p = [stats.fisher_exact(t, alternative="greater")[1] for t in ([[10, 0], [0, 10]], [[10, 0], [10, 0]], [[6, 4], [3, 7]])]
    q = stats.false_discovery_control(p, method="bh")
    assert [r["feature"] for r in test.found] == [0] and test.tested == 3 and test.uncorrected == 1
    assert test.found[0]["control_p"] == pytest.approx(p[0]) and test.found[0]["control_q"] == pytest.approx(q[0])
    assert test.found[0]["control_lift"] == float("inf") and finite(test.found)[0]["control_lift"] is None
    assert test.min_p == pytest.approx(p[0])
    # three samples each: the smallest p is 1/20 = 0.05, not below 0.05
    small = against_control(specific_features(codes([3], 3), torch.tensor([0.01]), th, 15), codes([3], 3), codes([0], 3), th)
    assert small.found == [] and small.min_p == pytest.approx(0.05) and small.tested == 1


def test_seed000_steering_names_the_condition_and_corrects_for_two(tmp_path):
    """With a steered and a prompted condition, either may show the effect: each paired p is
    Holm-adjusted over the two, and the row says which condition worked (a prompt suffix is not
    the steering vector)."""
    from scipy import stats

    from saetool.artifacts.provenance import build_provenance
    from saetool.evaluate.criteria import steering_effect
    from saetool.steer.completions import write_completions

    base = [-0.5, -0.4, -0.6, -0.5, -0.3, -0.45]
    steered = [-0.45, -0.5, -0.5, -0.45, -0.35, -0.4]  # no effect
    prompted = [0.5, 0.6, 0.4, 0.55, 0.7, 0.5]
    n = len(base)
    path = write_completions(tmp_path / "two.h5", prompts=[f"p{i}" for i in range(n)], splits=[""] * n,
                             texts={c: ["x"] * n for c in ("baseline", "steered", "prompted")},
                             metrics={"baseline": {"sentiment": base}, "steered": {"sentiment": steered}, "prompted": {"sentiment": prompted}},
                             settings={"alpha": 8.0, "intervention": "add"}, provenance=build_provenance())
    works, reason, info = steering_effect(path, 0.05)
    p_s, p_p = stats.ttest_rel(steered, base).pvalue, stats.ttest_rel(prompted, base).pvalue
    holm_p = sorted([min(1, 2 * min(p_s, p_p)), min(1, max(2 * min(p_s, p_p), max(p_s, p_p)))])
    cond = {c["condition"]: c for c in info["conditions"]}
    assert works and cond["prompted"]["works"] and not cond["steered"]["works"]
    assert sorted([cond["steered"]["p_holm"], cond["prompted"]["p_holm"]]) == pytest.approx(holm_p)
    assert f"prompted sentiment +{sum(prompted) / n - sum(base) / n:.3f} vs baseline (paired p {p_p:.3g}, Holm {cond['prompted']['p_holm']:.3g} over 2 conditions, n 6)" in reason


def _steer_result(path, baseline, steered):
    from saetool.artifacts.provenance import build_provenance
    from saetool.steer.completions import write_completions

    n = len(baseline)
    return write_completions(path, prompts=[f"p{i}" for i in range(n)], splits=[""] * n, texts={"baseline": ["x"] * n, "steered": ["y"] * n},
                             metrics={"baseline": {"sentiment": baseline}, "steered": {"sentiment": steered}},
                             settings={"alpha": 8.0, "intervention": "add"}, provenance=build_provenance())


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_cli_seed000_criteria_each_with_a_reason(seed000_set, tmp_path):
    import numpy as np
    import torch
    from scipy import stats

    from saetool.analysis.transitions import read_transitions
    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.io import load_sae

    s = seed000_set
    works = _steer_result(tmp_path / "works.h5", [-0.5, -0.4, -0.6, -0.5, -0.3, -0.45], [0.5, 0.6, 0.4, 0.55, 0.7, 0.5])
    base = ["check", str(s["sae"]), str(s["acts"]), "--no-model", "--criteria", "seed000", "--num-tokens", "2048", "--json"]
    proc = run_cli(*base, "--transitions", str(s["transitions"]), "--steering", str(works), "--min-cosine", "0.5", "--min-lift", "1.5")
    report = json.loads(proc.stdout)
    rows = {r["check"]: r for r in report["checks"]}
    assert report["criteria"] == "seed000"
    # independent: cosine at the transition tokens, and transition-specific features against their density on ordinary text
    sae = load_sae(s["sae"])
    x = torch.from_numpy(read_transitions(s["transitions"])["activations"])
    with torch.no_grad():
        f = sae.encode(x)
        cos = torch.nn.functional.cosine_similarity(x.double(), sae.decode(f).double(), dim=-1).mean().item()
        with ActivationsFile(s["acts"]) as acts:
            density = (sae.encode(acts.read("blocks.1.hook_resid_post")) > 0).double().mean(0).numpy()
    share = (f > 0).double().mean(0).numpy()
    specific = int(((share >= 0.5) & ((f > 0).sum(0).numpy() >= 2) & (share >= 1.5 * density)).sum())
    cosine_row = rows["SAE reconstruction (cosine)"]
    assert cosine_row["value"] == pytest.approx(cos, rel=1e-5) and cosine_row["passed"] == (cos > 0.5)
    assert "at 6 transition token(s)" in cosine_row["reason"]
    common = rows["common features at the transition"]
    assert common["value"] == specific and common["passed"] == (specific >= 2) and "specific to the transition" in common["reason"]
    steering = rows["steering effectiveness"]
    p = stats.ttest_rel([0.5, 0.6, 0.4, 0.55, 0.7, 0.5], [-0.5, -0.4, -0.6, -0.5, -0.3, -0.45]).pvalue  # the same prompts: paired, as steer tests
    assert steering["passed"] is True and f"paired p {p:.3g}, n 6)" in steering["reason"] and "sentiment +1.000" in steering["reason"]
    assert steering["value"] == "works (steered)"  # which condition showed it
    assert "(over the " in cosine_row["reason"] and " activation rows: " in cosine_row["reason"]  # the larger sample's cosine beside it
    assert rows["pipeline completeness"]["passed"] is True and rows["pipeline completeness"]["reason"].startswith("6 transition text(s), 6 labeled")
    four = [rows[k]["passed"] for k in ("SAE reconstruction (cosine)", "common features at the transition", "steering effectiveness", "pipeline completeness")]
    assert report["verdict"] == ("SCALE UP" if all(four) else "FIX ISSUES FIRST") and proc.returncode == (0 if all(four) else 1)
    assert "explained variance" in rows and rows["explained variance"]["passed"] is None  # the default profile's numbers, as information
    assert "reason" in proc.stderr and "seed000 criteria" in proc.stderr
    # --only-turning: the samples are the texts that turn by VADER, and the completeness row says so
    turning = tmp_path / "turning.h5"
    proc = run_cli("transitions", "--sae", str(s["sae"]), "--texts", str(s["folder"] / "texts.txt"), "--only-turning", "-o", str(turning))
    assert proc.returncode == 0, proc.stderr
    kept = read_transitions(turning)
    n_turn = int(((kept["sentiment"][:, 0] < 0) & (kept["sentiment"][:, 1] > 0)).sum())
    assert kept["n_samples"] == n_turn < 6 and f"{n_turn} of 6 (the {n_turn} kept: --only-turning)" in " ".join(proc.stderr.split())
    filtered = {r["check"]: r for r in json.loads(run_cli(*base, "--transitions", str(turning)).stdout)["checks"]}
    row = filtered["pipeline completeness"]
    assert row["value"] == f"6 texts, {n_turn} turning" and row["passed"] is (n_turn >= 5)  # the 5 transitions asked for count the texts that turn
    assert row["reason"].startswith(f"6 transition text(s), 6 labeled, {n_turn} kept: those that turn from negative to positive")
    # check --only-turning on the unfiltered transitions: the same samples, without generating again
    same = {r["check"]: r for r in json.loads(run_cli(*base, "--transitions", str(s["transitions"]), "--only-turning").stdout)["checks"]}
    for name in ("SAE reconstruction (cosine)", "common features at the transition", "pipeline completeness"):
        assert same[name]["value"] == filtered[name]["value"], name
    assert same["SAE reconstruction (cosine)"]["reason"].startswith(f"cosine {filtered['SAE reconstruction (cosine)']['value']:.3f} at {n_turn} transition token(s)")
    proc = run_cli("check", str(s["sae"]), str(s["acts"]), "--no-model", "--only-turning")
    assert proc.returncode == 2 and "belong to --criteria seed000" in proc.stderr

    # "common" that fires everywhere is not specific: an impossible lift leaves none; no steering effect fails
    flat = _steer_result(tmp_path / "flat.h5", [0.1, -0.1, 0.0, 0.2, -0.2, 0.0], [0.0, 0.1, -0.1, 0.1, -0.1, 0.05])
    proc = run_cli(*base, "--transitions", str(s["transitions"]), "--steering", str(flat), "--min-lift", "1e9")
    rows = {r["check"]: r for r in json.loads(proc.stdout)["checks"]}
    assert proc.returncode == 1 and rows["common features at the transition"]["value"] == 0
    assert rows["steering effectiveness"]["passed"] is False and rows["steering effectiveness"]["value"] == "not shown"
    # two prompts cannot show an effect: inconclusive, not "no effect"
    tiny = _steer_result(tmp_path / "tiny.h5", [-0.5, -0.4], [0.5, 0.6])
    row = {r["check"]: r for r in json.loads(run_cli(*base, "--steering", str(tiny)).stdout)["checks"]}["steering effectiveness"]
    assert row["value"] == "inconclusive" and "n 2: too few prompts for any result to reach p < 0.05" in row["reason"] and "steer more prompts" in row["fix"]
    # without the optional inputs the criteria are not measured, each saying what to pass
    proc = run_cli(*base)
    report = json.loads(proc.stdout)
    rows = {r["check"]: r for r in report["checks"]}
    assert proc.returncode == 1 and report["verdict"] == "FIX ISSUES FIRST"
    assert "not measured: pass --transitions" in rows["common features at the transition"]["reason"]
    assert "not measured: pass --steering" in rows["steering effectiveness"]["reason"]
    assert "over 2048 activation rows" in rows["SAE reconstruction (cosine)"]["reason"]
    assert "missing --transitions and --steering" in rows["pipeline completeness"]["reason"]
    # a sweep's summary.csv as the steering result: its best cell, significant or not
    import pandas as pd

    summary = pd.DataFrame([
        {"split": "harm_test", "layer": 15, "intervention": "add", "alpha": a, "is_baseline": a == 0, "status": "ok", "n": 50, "refusal_rate": r,
         "refusal_delta": r - 0.1, "refusal_p_adj": pv, "helpfulness_delta": 0.0, "helpfulness_p_adj": 1.0}
        for a, r, pv in ((0.0, 0.1, np.nan), (1.0, 0.6, 0.001))
    ] + [{"split": "benign", "layer": 15, "intervention": "add", "alpha": a, "is_baseline": a == 0, "status": "ok", "n": 60, "refusal_rate": 0.0,
          "refusal_delta": 0.0, "refusal_p_adj": 1.0, "helpfulness_delta": 0.0, "helpfulness_p_adj": 1.0} for a in (0.0, 1.0)])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    proc = run_cli(*base, "--steering", str(tmp_path / "summary.csv"))
    row = {r["check"]: r for r in json.loads(proc.stdout)["checks"]}["steering effectiveness"]
    assert row["passed"] is True and "best cell layer 15 add alpha 1" in row["reason"]
    assert_clean_error(run_cli("check", str(s["sae"]), str(s["acts"]), "--no-model", "--criteria", "seed001"), "unknown --criteria")
    assert_clean_error(run_cli("check", str(s["sae"]), str(s["acts"]), "--no-model", "--steering", str(works)), "--criteria seed000")
    assert_clean_error(run_cli(*base, "--level", "0"), "--level must be a probability")
