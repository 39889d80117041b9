"""``saetool audit``: schema checks, counts and joins over real artifacts on disk."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from saetool.analysis.audit import audit
from saetool.analysis.select import write_selection
from saetool.artifacts.provenance import build_provenance
from saetool.steer.completions import write_completions
from tests.helpers import assert_clean_error, run_cli


def _selection(path, features, *, d_sae=512, model="smollm2-135m"):
    """A selection artifact written by the real writer for the given (layer, id) pairs."""
    n = len(features)
    table = pd.DataFrame(
        {
            "name": [f"L{layer}-{i}" for layer, i in features],
            "layer": np.array([layer for layer, _ in features], dtype=np.int32),
            "feature": np.array([i for _, i in features], dtype=np.int64),
            "rank": np.arange(1, n + 1, dtype=np.int32),
            "d": np.linspace(2.0, 1.0, n),
            "mean_a": np.ones(n),
            "mean_b": np.zeros(n),
            "std_a": np.ones(n),
            "std_b": np.ones(n),
            "n_a": np.full(n, 100, dtype=np.int64),
            "n_b": np.full(n, 80, dtype=np.int64),
        }
    )
    layers = sorted({layer for layer, _ in features})
    attrs = {"unit": "token", "top": n, "model": model, "layers": layers, "saes": {}, "d_sae": {str(layer): d_sae for layer in layers}}
    return write_selection(path, table, attrs=attrs, provenance=build_provenance(model=model))


def _steer_log(path, feature, *, conditions=("baseline", "steered"), n=4, layer=3, empty=0):
    texts = {c: [f"{c} text {i}" if i >= empty else "" for i in range(n)] for c in conditions}
    settings = {"model": "smollm2-135m", "layer": layer, "feature": feature, "hook": f"blocks.{layer}.hook_resid_post"}
    return write_completions(path, prompts=[f"prompt {i}" for i in range(n)], splits=["harm_test"] * n, texts=texts, settings=settings, provenance=build_provenance(model="smollm2-135m"))


@pytest.fixture()
def good_set(smollm2_sae, smollm2_acts, tmp_path):
    sel = _selection(tmp_path / "sel.h5", [(3, 5), (3, 17), (3, 200), (3, 311)])
    logs = [_steer_log(tmp_path / f"steer-{f}.h5", f, empty=1 if f == 17 else 0) for f in (5, 17, 99)]
    return [sel, smollm2_sae, smollm2_acts, *logs]


def test_clean_set_passes_with_counts_and_joins(good_set, tmp_path):
    out = tmp_path / "audit.json"
    proc = run_cli("audit", *map(str, good_set), "--conditions", "baseline,steered", "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report == json.loads(out.read_text())
    assert report["ok"] and report["n_failed_checks"] == 0 and report["n_files"] == 6
    kinds = [f["kind"] for f in report["files"]]
    assert kinds == ["selection", "sae", "activations", "completions", "completions", "completions"]
    joins = {j["name"]: j for j in report["joins"]}
    steered = joins["selected features -> steered features"]
    selected = {"L3-5", "L3-17", "L3-200", "L3-311"}
    assert steered["joinable"] == len(selected & {"L3-5", "L3-17", "L3-99"}) == 2
    assert steered["n_left"] == 4 and steered["n_right"] == 3 and set(steered["unmatched"]) == {"L3-200", "L3-311"}
    assert joins["selected features -> SAEs"]["joinable"] == 4
    assert joins["selected features -> activations"]["joinable"] == 4
    layer3 = report["counts"]["per_layer"]["3"]
    assert layer3 == {"selected_features": 4, "saes": 1, "activation_tokens": 2048, "completions": 3}
    assert report["counts"]["per_condition"] == {"baseline": 11, "steered": 11}  # one empty completion each
    assert "all checks passed" in proc.stderr


def test_strict_joins_and_missing_conditions_fail(good_set, tmp_path):
    report = audit(good_set, strict=True)
    assert not report["ok"]
    failed = [j["name"] for j in report["joins"] if not j["ok"]]
    assert failed == ["selected features -> steered features"]
    odd = _steer_log(tmp_path / "steer-odd.h5", 5, conditions=("baseline", "clamped"))
    report = audit([*good_set, odd], expect_conditions=["steered"])
    checks = {c["check"]: c for c in report["checks"]}
    assert not checks["same conditions in every completions artifact"]["ok"]
    assert not checks["condition 'steered' everywhere"]["ok"] and "steer-odd.h5" in checks["condition 'steered' everywhere"]["detail"]


def test_out_of_range_feature_and_broken_files_fail_without_crashing(smollm2_sae, tmp_path):
    sel = _selection(tmp_path / "sel.h5", [(3, 5), (3, 600)])  # the SAE has 512 features
    junk = tmp_path / "notes.txt"
    junk.write_text("not an artifact")
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(shutil.copyfile(smollm2_sae, tmp_path / "full.h5").read_bytes()[:4000])
    no_d = tmp_path / "no_d.h5"
    shutil.copy(sel, no_d)
    with h5py.File(no_d, "r+") as fh:
        del fh["d"]
    no_attr = tmp_path / "no_attr.h5"
    shutil.copy(sel, no_attr)
    with h5py.File(no_attr, "r+") as fh:
        del fh.attrs["unit"]
    alien = tmp_path / "alien.h5"
    with h5py.File(alien, "w") as fh:
        fh.attrs["saetool_kind"] = "hologram"
        fh.attrs["schema_version"] = 1
    missing = tmp_path / "missing.h5"
    files = [sel, smollm2_sae, junk, truncated, no_d, no_attr, alien, missing]
    proc = run_cli("audit", *map(str, files))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    by_path = {f["path"]: f for f in report["files"]}

    def failed(path):
        return {c["check"]: c["detail"] for c in by_path[str(path)]["checks"] if not c["ok"]}

    assert "feature ids in range" in failed(sel) and "L3-600" in failed(sel)["feature ids in range"]
    assert failed(smollm2_sae) == {}
    assert "not an HDF5 file" in failed(junk)["readable"]
    assert "readable" in failed(truncated)
    assert "'d'" in failed(no_d)["readable"]
    assert "'unit'" in failed(no_attr)["readable"]  # refused on opening, like no_d
    assert "unknown artifact kind 'hologram'" in failed(alien)["readable"]
    assert "does not exist" in failed(missing)["readable"]
    sae_join = next(j for j in report["joins"] if j["name"] == "selected features -> SAEs")
    assert not sae_join["ok"] and sae_join["joinable"] == 1 and "L3-600" in sae_join["detail"]
    assert report["n_failed_checks"] == sum(not c["ok"] for f in report["files"] for c in f["checks"]) + sum(not j["ok"] for j in report["joins"]) + sum(not c["ok"] for c in report["checks"])


def test_models_must_agree(tiny_sae, tmp_path):
    sel = _selection(tmp_path / "sel.h5", [(1, 1)], d_sae=256, model="gemma3-270m")
    report = audit([sel, tiny_sae])
    check = next(c for c in report["checks"] if c["check"] == "one model")
    assert not check["ok"] and "gemma3-270m" in check["detail"]
    assert not report["ok"]


def test_failed_steer_cell_and_no_join(tmp_path):
    log = _steer_log(tmp_path / "s.h5", 42)
    with h5py.File(log, "r+") as fh:
        fh.attrs["status"] = "error"
        fh.attrs["error"] = "NaN activations at alpha 64"
    sel = _selection(tmp_path / "sel.h5", [(3, 1), (3, 2)])
    report = audit([sel, log])
    status = next(c for c in report["files"][1]["checks"] if c["check"] == "status")
    assert not status["ok"] and "NaN activations" in status["detail"]
    join = report["joins"][0]
    assert join["joinable"] == 0 and not join["ok"]


def test_usage_errors_exit_2(tmp_path):
    assert_clean_error(run_cli("audit"), "missing argument")  # typer's usage error
    sel = _selection(tmp_path / "sel.h5", [(3, 1)])
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    assert_clean_error(run_cli("audit", str(sel), "-o", str(existing)), "already exists")


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_steering_through_a_vector_from_sae_joins_selected_to_steered(tiny_gpt2_dir, tmp_path):
    """vector from-sae -> steer -> audit (issue 17): the completions record the SAE and
    feature, so the selected feature joins the steered one; the vector says `from-sae`."""
    import torch

    from saetool.sae.config import SAEConfig
    from saetool.sae.io import write_sae_artifact
    from saetool.sae.model import build_sae
    from saetool.steer.completions import read_completions
    from saetool.steer.vectors import read_vector

    model = str(tiny_gpt2_dir)
    g = torch.Generator().manual_seed(0)
    cfg = SAEConfig(arch="relu", d_in=64, d_sae=16, hook="blocks.1.hook_resid_post", activation="relu", model=model)
    sae = build_sae(cfg, {"W_enc": torch.randn(64, 16, generator=g), "b_enc": torch.zeros(16), "W_dec": torch.randn(16, 64, generator=g), "b_dec": torch.zeros(64)})
    sae_path = write_sae_artifact(tmp_path / "sae.h5", sae, provenance=build_provenance(model=model, hooks=[cfg.hook]))
    sel = _selection(tmp_path / "sel.h5", [(1, 5), (1, 9)], d_sae=16, model=model)
    vec = tmp_path / "v.h5"
    assert run_cli("vector", "from-sae", str(sae_path), "--feature", "5", "-o", str(vec)).returncode == 0
    assert read_vector(vec).method == "from-sae"
    with h5py.File(vec) as fh:
        assert fh.attrs["method"] == "from-sae"
    prompts = tmp_path / "p.txt"
    prompts.write_text("Hello there\nHow are you\n")
    out = tmp_path / "steer.h5"
    proc = run_cli("steer", str(vec), "--model", model, "--no-chat", "--prompts", str(prompts), "--max-new-tokens", "2", "--metrics", "refusal", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    settings = read_completions(out).settings
    assert settings["feature"] == 5 and settings["feature_layer"] == 1 and settings["sae"] == str(sae_path)
    proc = run_cli("audit", str(sel), str(sae_path), str(out))
    assert proc.returncode == 0, proc.stderr
    joins = {j["name"]: j for j in json.loads(proc.stdout)["joins"]}
    steered = joins["selected features -> steered features"]
    assert steered["joinable"] == 1 and steered["unmatched"] == ["L1-9"]
