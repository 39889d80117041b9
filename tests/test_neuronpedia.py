"""export --format neuronpedia: a features artifact as SAEDashboard/Neuronpedia dashboard batches."""

from __future__ import annotations

import json

import pytest

from helpers import assert_clean_error, run_cli

#: NeuronpediaDashboardFeature.to_dict's keys (sae_dashboard/neuronpedia/neuronpedia_dashboard.py)
FEATURE_KEYS = {
    "feature_index", "neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1",
    "correlated_neurons_indices", "correlated_neurons_l1", "correlated_neurons_pearson",
    "correlated_features_indices", "correlated_features_l1", "correlated_features_pearson",
    "neg_str", "neg_values", "pos_str", "pos_values", "frac_nonzero",
    "freq_hist_data_bar_values", "freq_hist_data_bar_heights", "logits_hist_data_bar_heights", "logits_hist_data_bar_values",
    "n_prompts_total", "n_tokens_in_prompt", "dataset", "decoder_weights_dist", "activations",
}
ACTIVATION_KEYS = {"bin_min", "bin_max", "bin_contains", "tokens", "values"}


@pytest.fixture(scope="module")
def features(tiny_acts, tiny_sae, tmp_path_factory):
    from saetool.interpret.api import InterpretConfig, interpret

    config = InterpretConfig(top=12, examples=4, held_out=2, negatives=2, context=10, bins=8, neighbours=3, labeler="tokens", scorers=[], chunk_rows=512)
    return interpret(config, tiny_acts, tiny_sae, tmp_path_factory.mktemp("np") / "features.h5", progress=False).path


def test_batches_follow_the_dashboard_schema(features, tmp_path):
    from saetool.interpret.neuronpedia import export_neuronpedia
    from saetool.interpret.store import FeaturesFile

    run = export_neuronpedia(features, tmp_path / "np", model_id="tiny-gpt2", per_batch=5)
    with FeaturesFile(features) as ff:
        records = {r.index: r for r in ff.records()}
        d_sae = ff.d_sae
    assert sorted(p.name for p in (tmp_path / "np").iterdir()) == ["batch-0.json", "batch-1.json", "batch-2.json", "explanations.json", "run_settings.json", "skipped_indexes.json"]
    batches = [json.loads((tmp_path / "np" / f"batch-{i}.json").read_text()) for i in range(3)]
    assert [len(b["features"]) for b in batches] == [5, 5, 2]
    assert all((b["model_id"], b["layer"], b["sae_set"]) == ("tiny-gpt2", 1, "res-saetool") for b in batches)
    seen = []
    for f in (f for b in batches for f in b["features"]):
        assert set(f) == FEATURE_KEYS
        r = records[f["feature_index"]]
        seen.append(r.index)
        assert f["frac_nonzero"] == pytest.approx(r.density)
        assert sum(f["freq_hist_data_bar_heights"]) == sum(r.histogram_counts) and len(f["freq_hist_data_bar_values"]) == len(r.histogram_counts)
        assert f["correlated_features_indices"] == [i for i, _ in r.neighbours]
        assert f["n_tokens_in_prompt"] == 64 and f["n_prompts_total"] == run["n_prompts_total"] > 0
        assert len(f["neuron_alignment_indices"]) == 3 and all(0 <= i < 64 for i in f["neuron_alignment_indices"])
        tops = [a for a in f["activations"] if a["bin_min"] == -1]
        assert len(tops) == len(r.top_examples) and len(f["activations"]) == len(r.top_examples) + len(r.interval_examples)
        for a, ex in zip(tops, r.top_examples):
            assert set(a) == ACTIVATION_KEYS and len(a["tokens"]) == len(a["values"])
            kept = [i for i, t in enumerate(ex.token_ids) if t >= 0]
            assert a["values"][kept.index(ex.position)] == pytest.approx(ex.activation, abs=1e-3)  # the marked token's value
            assert "".join(a["tokens"]) == "".join(t for t, i in zip(ex.tokens, ex.token_ids) if i >= 0)
        for a in f["activations"][len(tops):]:
            assert 0 <= a["bin_min"] < a["bin_max"] <= r.max_activation + 1e-3 and 0 <= a["bin_contains"] <= 1
    skipped = json.loads((tmp_path / "np" / "skipped_indexes.json").read_text())["skipped_indexes"]
    assert sorted(seen + skipped) == list(range(d_sae))
    labels = json.loads((tmp_path / "np" / "explanations.json").read_text())["explanations"]
    assert {e["index"]: e["description"] for e in labels} == {i: r.label.text for i, r in records.items() if r.label}


def test_export_neuronpedia_cli(features, tiny_sae, tmp_path):
    proc = run_cli("export", str(features), "--format", "neuronpedia", "--set-name", "res-mine", "-o", str(tmp_path / "np"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "np" / "batch-0.json").read_text())["sae_set"] == "res-mine"
    assert_clean_error(run_cli("export", str(tiny_sae), "--format", "neuronpedia", "-o", str(tmp_path / "x")), "needs a 'features' artifact")
