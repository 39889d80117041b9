"""Every example runs, at its smallest size, the way a user would run it (real CLI, real model)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "examples" / "workflows"
BIN = Path(sys.executable).parent


#: name -> command, run once each by the fixture below.
EXAMPLES = {
    **{script.stem: ["bash", str(script)] for script in sorted(WORKFLOWS.glob("seed*.sh"))},
    "pipeline_api": [sys.executable, str(REPO / "examples" / "pipeline_api.py"), "--num-tokens", "1024", "--steps", "40", "--out", "api"],
}


#: name -> extra environment: at SIZE=ci seed 001 chooses no cell (one prompt per cell), so it confirms the leading one, to run that code
EXAMPLE_ENV = {"seed001_steering_ladder": {"CONFIRM": "leading"}}


def _run(command: list[str], cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True)
    env = {**os.environ, "SIZE": "ci", "OUT": str(cwd / "out"), "SAETOOL": str(bin_dir / "saetool"), "PYTHON": sys.executable,
           "PATH": f"{bin_dir}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "160", **EXAMPLE_ENV.get(cwd.name, {})}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every example, run once at SIZE=ci in its own folder.

    The scripts' ``saetool`` commands run in children forked from one interpreter that
    imported torch and transformers once (tests/cli_server.py: about 3 CPU-seconds less
    per command, some 40 commands); ``SAETOOL_TEST_FRESH_CLI=1`` runs the installed
    ``saetool`` itself instead."""
    base = tmp_path_factory.mktemp("examples")
    if os.environ.get("SAETOOL_TEST_FRESH_CLI"):
        return {name: (_run(command, base / name, BIN), base / name) for name, command in EXAMPLES.items()}
    bin_dir = base / "bin"
    bin_dir.mkdir()
    socket_path = tempfile.mktemp(prefix="saetool-", suffix=".sock", dir="/tmp")  # short: AF_UNIX paths are at most 107 bytes
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "cli_server.py"), socket_path, str(bin_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        return {name: (_run(command, base / name, bin_dir), base / name) for name, command in EXAMPLES.items()}
    finally:
        server.kill()
        server.wait()
        Path(socket_path).unlink(missing_ok=True)


def example(ran, name: str) -> tuple[subprocess.CompletedProcess, Path]:
    proc, folder = ran[name]
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, folder


def test_every_workflow_is_listed_in_the_examples_readme():
    readme = (REPO / "examples" / "README.md").read_text()
    for script in sorted(WORKFLOWS.glob("*.sh")):
        assert f"workflows/{script.name}" in readme, script.name
    for seed in ("000", "001", "002", "003", "004"):
        assert list(WORKFLOWS.glob(f"seed{seed}_*.sh")), f"no example for seed {seed}"


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_seed000_mini_pipeline(ran):
    _, folder = example(ran, "seed000_mini_pipeline")
    out = folder / "out"
    check = json.loads((out / "check.json").read_text())
    assert check["verdict"] in ("SCALE UP", "FIX ISSUES FIRST") and check["criteria"] == "seed000"
    rows = {r["check"]: r for r in check["checks"]}
    for criterion in ("SAE reconstruction (cosine)", "common features at the transition", "steering effectiveness", "pipeline completeness"):
        assert rows[criterion]["passed"] in (True, False) and rows[criterion]["reason"], criterion
    assert rows["pipeline completeness"]["reason"].startswith("5 transition text(s)")  # the seed's five base prompts
    assert "at 5 transition token(s)" in rows["SAE reconstruction (cosine)"]["reason"]
    assert (out / "features.html").stat().st_size > 1000 and "Feature" in (out / "report.md").read_text()
    from saetool.artifacts.store import read_header

    assert read_header(out / "transitions.h5")["saetool_kind"] == "transitions"
    # the neutral control (the same bridge after neutral openings) is judged against, so the bridge word's features do not pass
    assert "control token(s)" in rows["common features at the transition"]["reason"]


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_seed001_steering_ladder(ran):
    _, folder = example(ran, "seed001_steering_ladder")
    proc, _ = example(ran, "seed001_steering_ladder")
    rows = json.loads((folder / "out.summary.json").read_text())
    assert {r["alpha"] for r in rows} == {0, 1.0} and all(r["n"] == 2 for r in rows)
    # both refusal detectors are scored (refusal_strict: docs/steering.md)
    assert all(r["refusal_strict_k"] is not None and 0 <= r["refusal_strict_k"] <= r["n"] for r in rows)
    best = json.loads((folder / "out" / "layer_comparison" / "best.json").read_text())
    # one prompt per cell: no refusal rise can be significant, so no best layer; level 3 is only planned, on the leading one
    assert best["best"] is None and best["leading"]["layer"] in (10, 15, 20) and "Best layer:" in proc.stderr
    err = " ".join(proc.stderr.split())
    assert "level 2 found no layer whose refusal rise is significant" in err and "picked no best cell" in err
    # CONFIRM=leading: level 2's leading cell on harm_confirm and against a random direction of its norm, prompt by prompt
    lead = best["leading"]
    assert f"the leading cell (layer {lead['layer']}, {lead['intervention']}, alpha {lead['alpha']:g}) (CONFIRM=leading" in err
    assert re.search(r"harm_confirm \(prompts no level read\): refusal \d+/1 at alpha 0 -> \d+/1 \(exact McNemar p [\d.e-]+\)", err)
    for split in ("harm_test", "harm_confirm"):
        for what in ("refusal", "refusal without apologies that then offer help"):
            assert re.search(rf"{split} {what}: \d+/1 against \d+/1, p [\d.e-]+", err), (split, what)
    import pandas as pd

    for name, splits in (("confirm", {"harm_confirm"}), ("random_control", {"harm_test", "harm_confirm", "benign"})):
        table = pd.read_csv(folder / "out" / name / "summary.csv")
        assert set(table["split"]) == splits and set(table["alpha"]) == {0, lead["alpha"]}, name
        assert set(table["layer"]) == {lead["layer"]} and set(table["intervention"]) == {lead["intervention"]}, name


def test_seed001_refuses_an_unknown_confirm_setting(tmp_path):
    env = {**os.environ, "CONFIRM": "chosen", "SIZE": "ci", "OUT": str(tmp_path / "out"), "SAETOOL": "false"}
    proc = subprocess.run(["bash", str(WORKFLOWS / "seed001_steering_ladder.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == "CONFIRM must be best or leading" and not (tmp_path / "out.summary.json").exists()


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_seed002_train_sae(ran):
    _, folder = example(ran, "seed002_train_sae")
    out = folder / "out"
    for sae in ("topk", "jumprelu"):
        metrics = json.loads((out / f"{sae}.eval.json").read_text())["metrics"]
        assert 0 < metrics["ce_loss_recovered"] <= 1.5 and metrics["l0"] > 0
    assert (out / "topk-saelens" / "cfg.json").is_file()


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_seed002_phase3(ran):
    _, folder = example(ran, "seed002_phase3")
    out = folder / "out"
    from saetool.track.store import read_tracks

    record = json.loads((out / "tracks.json").read_text().splitlines()[-1])
    assert record["kind"] == "tracks" and record["layers"] == list(range(30))
    tables, attrs = read_tracks(out / "tracks.h5")
    assert attrs["mode"] == "corpus" and attrs["settings"]["activations"]  # found the activations the SAEs were trained on
    assert sum(attrs["summary"]["tracks_spanning"].values()) == len(tables["tracks"]) > 0
    assert (out / "flow.png").read_bytes()[:4] == b"\x89PNG" and "features-L0.html#feature-" in (out / "tracks.html").read_text()
    tables, attrs = read_tracks(out / "compare.h5")
    assert attrs["mode"] == "text" and len(tables["compare"]) == 6 and set(tables["prompts"]["set"]) == {"truthful", "hallucinated"}
    # paired by line, each answer scored from where it differs from its pair (never the shared question)
    assert attrs["summary"]["pairing"] == {"paired": True, "tokens": "differing", "left_out": []} and set(tables["compare"]["test"]) == {"paired t"}
    prompts = tables["prompts"]
    assert len(prompts) == 102 and (prompts["first_scored"] > 8).all() and (prompts["n_scored"] < prompts["n_tokens"] / 2).all()
    assert attrs["summary"]["model_check"]["n"] == 51 and prompts["logprob"].notna().all()
    # counterbalanced: every answer is true in one pair and false in another, so the sets differ in truth, not in words
    answers = {name: sorted(line.split(" A: ")[1] for line in (REPO / "examples" / "prompts" / f"{name}.txt").read_text().splitlines()
                            if line and not line.startswith("#")) for name in ("truthful", "hallucinated")}
    assert answers["truthful"] == answers["hallucinated"] and len(answers["truthful"]) == 51


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_seed003_pathways(ran):
    _, folder = example(ran, "seed003_pathways")
    out = folder / "out"
    audit = json.loads((out / "audit.json").read_text())
    assert audit["ok"] is True
    steered = next(j for j in audit["joins"] if j["name"] == "selected features -> steered features")
    assert steered["joinable"] == 1  # the steered feature is one of the selected ones
    data = json.loads((out / "pathways.json").read_text())
    edges, controls = data["edges"], data["controls"]
    assert edges and all(e["target"].startswith("L12-") and e["source"].startswith("L6-") for e in edges)
    # per target with edges, other sources matched in activity (10 by default, fewer where fewer are active), replayed as the baseline
    with_edges = [t for t in data["targets"] if t["n_edges"]]
    assert with_edges and all(0 < t["n_control"] <= 10 and t["control_mean_abs_actual"] is not None for t in with_edges)
    assert len(controls) == sum(t["n_control"] for t in data["targets"])
    n_edges = {t["name"]: t["n_edges"] for t in data["targets"]}
    assert all(c["rank"] > n_edges[c["target"]] and c["matched_to"] in {e["source"] for e in edges if e["target"] == c["target"]} for c in controls)
    assert (out / "tokens.csv").read_text().startswith("token")
    assert (out / "steer-random.h5").exists()  # the random direction of the same norm, the control
    import h5py

    with h5py.File(out / "selection.h5", "r") as fh:  # benign prompts matched in length to the harmful ones: no length check needed
        chance, lengths = json.loads(fh.attrs["chance_max_abs_d_paired"]), json.loads(fh.attrs["mean_length"])
        pairing = json.loads(fh.attrs["pairing"])
        assert "chance_max_abs_d_same_length" not in fh.attrs and "d_paired" in fh
    with h5py.File(out / "benign.h5", "r") as fh:
        assert json.loads(fh.attrs["config"])["corpus"].endswith("benign_matched.txt")
    # the matched prompts pair line by line with the harmful ones: ranked by the paired d, its chance level from sign flips
    assert pairing["paired"] is True and pairing["pairs"] > 2
    assert set(chance) == {"6", "12"} and all(v > 0 for v in chance.values()) and abs(lengths["a"] - lengths["b"]) < 0.2


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_seed004_activation_samples(ran):
    proc, folder = example(ran, "seed004_activation_samples")
    out = folder / "out"
    summary = json.loads((out / "samples" / "collection_summary.json").read_text())
    assert summary["num_features_saved"] > 0 and len(list((out / "samples").glob("feature_*_samples.json"))) == summary["num_features_saved"]
    assert "decoder cosine" in proc.stderr and (out / "interpretability_report.md").is_file()
    assert (out / "samples" / "interpretability_report.md").read_text().startswith("# Interpretability report")
    assert len(list((out / "samples").glob("feature_*_distribution.png"))) == 1


@pytest.mark.slow  # runs every example script on SmolLM2 (the `ran` fixture)
def test_pipeline_api_script(ran):
    proc, folder = example(ran, "pipeline_api")
    assert "ce_loss_recovered" in proc.stdout
    for name in ("acts.h5", "sae.h5", "features.h5", "report.md", "steer.h5"):
        assert (folder / "api" / name).is_file(), name


def test_harmful_prompt_splits_are_disjoint_and_harm_confirm_stays_unread():
    """Seed 001 confirms its chosen cell on harm_confirm.txt: prompts that repeat none of the
    vector's (harm_train) or the choice's (harm_test), and that no ladder config reads."""
    prompts = REPO / "examples" / "prompts"
    sets = {name: [line.strip().lower() for line in (prompts / f"{name}.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
            for name in ("harm_train", "harm_test", "harm_confirm")}
    assert all(len(v) == len(set(v)) for v in sets.values()) and len(sets["harm_confirm"]) == 40
    assert not set(sets["harm_confirm"]) & (set(sets["harm_train"]) | set(sets["harm_test"])) and not set(sets["harm_train"]) & set(sets["harm_test"])
    assert not [p.name for p in (REPO / "examples" / "configs").glob("*.yaml") if "harm_confirm" in p.read_text()]
    assert "harm_confirm" in (REPO / "examples" / "workflows" / "seed001_steering_ladder.sh").read_text()
