"""The second example plugin package (plugins/saetool-textstats), installed with pip
and used through the real CLI: its metric in `steer`, its labeler in `interpret`."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from helpers import install_plugin_package, run_cli

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "saetool-textstats"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    site = install_plugin_package(PLUGIN_DIR, tmp_path_factory.mktemp("textstats"))
    assert (site / "saetool_textstats" / "plugin.py").is_file()
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "SAETOOL_LOAD_PLUGINS": None}


@pytest.mark.slow  # pip-installs the plugin package
def test_listed_by_saetool_plugins(plugin_env):
    proc = run_cli("plugins", "--json", env=plugin_env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["textstats"]["builtin"] is False and rows["textstats"]["version"] == "0.1.0"
    assert rows["textstats"]["registered"] == {"feature_labelers": ["token-class"], "completion_metrics": ["distinct-n"]}
    hidden = run_cli("plugins", "--json", env={**plugin_env, "SAETOOL_LOAD_PLUGINS": "csv"})
    assert "textstats" not in {r["name"] for r in json.loads(hidden.stdout)}


def test_metric_scores_steered_completions(plugin_env, smollm2_sae, tmp_path):
    vec = tmp_path / "f3.h5"
    made = run_cli("vector", "from-sae", str(smollm2_sae), "--feature", "3", "-o", str(vec))
    assert made.returncode == 0, made.stderr
    prompts = tmp_path / "p.txt"
    prompts.write_text("Tell me about the sea.\nName a colour.\n")
    out = tmp_path / "c.h5"
    proc = run_cli("steer", str(vec), "--prompts", str(prompts), "--alpha", "4", "--max-new-tokens", "8", "--metrics", "distinct-n", "-o", str(out), env=plugin_env)
    assert proc.returncode == 0, proc.stderr
    assert "distinct-n" in proc.stderr  # the metrics table
    from saetool.steer.completions import read_completions

    comp = read_completions(out)
    assert set(comp.metrics) == {"baseline", "steered"}
    for condition, texts in comp.texts.items():
        scores = comp.metrics[condition]["distinct-n"]
        assert len(scores) == 2
        for text, score in zip(texts, scores):
            words = re.findall(r"\w+(?:'\w+)?", text.lower())
            bigrams = list(zip(words, words[1:]))
            expected = len(set(bigrams)) / len(bigrams) if bigrams else math.nan
            assert score == pytest.approx(expected, nan_ok=True), (condition, text)


def test_labeler_labels_features_in_interpret(plugin_env, smollm2_acts, smollm2_sae, tmp_path):
    out = tmp_path / "f.h5"
    proc = run_cli("interpret", str(smollm2_acts), "--sae", str(smollm2_sae), "--top", "5", "--examples", "6", "--labeler", "token-class", "-o", str(out), env=plugin_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["labeler"] == "token-class"
    from saetool.interpret.store import read_features

    records = [r for r in read_features(out) if not r.dead]
    assert records
    classes = ("newline", "space", "number", "punctuation", "capitalised word", "word start", "word piece", "other")
    for record in records:
        assert record.label is not None and record.label.labeler == "token-class"
        assert record.label.details["class"] in classes
        assert record.label.score is None or 0.0 <= record.label.score <= 1.0
