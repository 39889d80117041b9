"""``saetool check``: verdicts, exit codes, fixes and bad input."""

from __future__ import annotations

import json

import pytest

from tests.helpers import assert_clean_error, run_cli


def _evaluation(**metrics):
    from saetool.evaluate.api import Evaluation

    base = {"explained_variance": 0.9, "normalized_mse": 0.1, "ce_loss_recovered": 0.95, "l0": 40.0, "dead_fraction": 0.02}
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
    assert ev["metrics"]["ce_loss_clean"] < ev["metrics"]["ce_loss_sae"] < ev["metrics"]["ce_loss_zero"]
    assert all(r["passed"] in (True, None) for r in report["checks"])


def test_bad_input_exits_2(smollm2_sae, smollm2_acts, tiny_gpt2_dir, tmp_path):
    from tests.test_evaluate import _tiny_sae_artifact

    wrong = tmp_path / "wrong.h5"
    _tiny_sae_artifact(wrong, d_in=100, hook="blocks.3.hook_resid_post")
    assert_clean_error(run_cli("check", str(wrong), str(smollm2_acts), "--no-model"), "d_in=100")
    assert_clean_error(run_cli("check", str(smollm2_sae), "--model", str(tiny_gpt2_dir), "--corpus", "bbc-news"), "blocks.3.hook_resid_post")
    assert_clean_error(run_cli("check", str(smollm2_sae), str(smollm2_acts), "--l0", "50-10"), "--l0")
