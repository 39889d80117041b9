"""Activation samples (seed 004): the vectorised running top-k equals brute force;
stored contexts; the export folder layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from saetool.errors import SaetoolError
from saetool.train import SampleSettings, TrainConfig, train_sae
from saetool.interpret.samples_view import export_samples_dir
from saetool.train.samples import SampleCollector, read_samples
from saetool.train.source import ActivationSource
from saetool.train.sparse import SparseCodes
from saetool.train.synthetic import sparse_dictionary_data, write_activations

HOOK = "blocks.0.hook_resid_post"


def brute_force(acts: torch.Tensor, rows: torch.Tensor, m: int, threshold: float) -> list[list[tuple[int, float]]]:
    """Per feature, the m (row, value) pairs with the largest values above threshold."""
    out = []
    for f in range(acts.shape[1]):
        col = acts[:, f]
        keep = torch.nonzero(col > threshold).flatten()
        order = keep[torch.argsort(col[keep], descending=True)][:m]
        out.append([(int(rows[i]), float(col[i])) for i in order])
    return out


def collected(c: SampleCollector) -> list[list[tuple[int, float]]]:
    return [[(int(r), float(v)) for r, v in zip(c.rows[f], c.values[f]) if r >= 0] for f in range(c.d_sae)]


def test_running_topk_equals_brute_force_over_all_tokens():
    g = torch.Generator().manual_seed(0)
    n, d_sae, m = 3000, 40, 7
    acts = torch.rand(n, d_sae, generator=g) * (torch.rand(n, d_sae, generator=g) < 0.05)
    acts[:, 3] = 0  # a feature that never fires
    rows = torch.randperm(10**6, generator=g)[:n]
    c = SampleCollector(d_sae, SampleSettings(per_feature=m, threshold=0.2))
    for i in range(0, n, 256):  # dense and sparse batches alike
        batch = acts[i : i + 256]
        if i % 512:
            nz = torch.nonzero(batch)
            batch = SparseCodes(nz[:, 0], nz[:, 1], batch[nz[:, 0], nz[:, 1]], len(batch))
        c.update(batch, rows[i : i + 256])
    assert collected(c) == brute_force(acts, rows, m, 0.2)
    above = acts > 0.2
    assert torch.equal(c.count, above.sum(0))
    assert torch.allclose(c.total.float(), (acts * above).sum(0), rtol=1e-5)
    assert torch.equal(c.max, acts.max(0).values)
    assert c.collections == 12 and c.tokens_seen == n
    assert c.chosen_features().tolist()[0] == int(torch.argmax(above.sum(0)))
    assert 3 not in c.chosen_features().tolist()


def test_a_token_seen_twice_is_kept_once_with_its_newer_value():
    c = SampleCollector(2, SampleSettings(per_feature=3, threshold=0.0))
    c.update(torch.tensor([[0.9, 0.1], [0.5, 0.2]]), torch.tensor([10, 11]))
    c.update(torch.tensor([[0.7, 0.3], [0.6, 0.0]]), torch.tensor([10, 12]))
    assert collected(c)[0] == [(10, pytest.approx(0.7)), (12, pytest.approx(0.6)), (11, pytest.approx(0.5))]
    assert collected(c)[1] == [(10, pytest.approx(0.3)), (11, pytest.approx(0.2))]


def test_samples_collected_while_training_equal_brute_force_and_export(tmp_path):
    x, _ = sparse_dictionary_data(4000, 12, 24, active=3, seed=4)
    token_ids = np.arange(4000) % 997 + 3
    path = write_activations(tmp_path / "acts.h5", {HOOK: x}, context_size=25, token_ids=token_ids)
    settings = SampleSettings(every=1, per_feature=5, context=8, threshold=0.05, features=10)
    cfg = TrainConfig(arch="topk", d_sae=32, k=3, lr=0.0, batch_size=100, steps=25, shuffle_buffer=400, val_fraction=0.1, samples=settings)
    result = train_sae(cfg, [path], tmp_path / "sae.h5", progress=False)  # lr 0: the SAE stays as initialised

    with ActivationSource([path], batch_size=100, shuffle_buffer=400, val_fraction=0.1, seed=0) as src:  # the same stream
        stream = src.batches()
        rows = torch.cat([next(stream).rows for _ in range(25)])
    with torch.no_grad():
        acts = result.sae.encode(x[rows])
    reference = brute_force(acts, rows, 5, 0.05)
    stored = read_samples(tmp_path / "sae.h5")
    a = stored.arrays
    counts = (acts > 0.05).sum(0)
    expected_features = sorted(range(32), key=lambda f: (-int(counts[f]), -float(acts[:, f].max()), f))[:10]
    assert a["feature_idx"].tolist() == expected_features
    for i, feat in enumerate(a["feature_idx"].tolist()):
        valid = ~np.isnan(a["values"][i])
        got_rows = a["row"][i][valid].tolist()
        assert got_rows == [r for r, _ in reference[feat]]
        assert np.allclose(a["values"][i][valid], [v for _, v in reference[feat]], rtol=1e-4)
        assert a["activation_count"][i] == int(counts[feat])
        for j in np.flatnonzero(valid):
            row = a["row"][i, j]
            assert a["token_ids"][i, j] == token_ids[row]
            assert a["seq_index"][i, j] == row // 25 and a["position"][i, j] == row % 25
            ctx = a["context_tokens"][i, j]
            assert ctx[a["context_position"][i, j]] == token_ids[row]
            start = row - a["context_position"][i, j]
            assert ctx.tolist() == token_ids[start : start + 8].tolist()

    from saetool.models.embedded import SMOLLM2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(SMOLLM2.ensure_cached()))
    out = export_samples_dir(tmp_path / "sae.h5", tmp_path / "exported", tokenizer=tokenizer)
    summary = json.loads((out / "collection_summary.json").read_text())
    assert summary["num_features_saved"] == 10 and summary["total_features"] == 32
    assert summary["max_samples_per_feature"] == 5 and summary["sample_context_size"] == 8
    files = sorted(p.name for p in out.glob("feature_*_samples.json"))
    assert files == sorted(f"feature_{f:05d}_samples.json" for f in expected_features)
    record = json.loads((out / files[0]).read_text())
    assert set(record) == {"statistics", "top_samples"}
    assert set(record["statistics"]) == {"feature_idx", "max_activation", "mean_activation", "num_samples", "activation_count"}
    sample = record["top_samples"][0]
    assert {"feature_idx", "activation_value", "tokens", "text", "position", "context_tokens", "context_text"} <= set(sample)
    assert sample["text"] == tokenizer.decode(sample["tokens"], skip_special_tokens=True)
    values = [s["activation_value"] for s in record["top_samples"]]
    assert values == sorted(values, reverse=True)


def test_export_without_samples_is_a_clean_error(tmp_path):
    x, _ = sparse_dictionary_data(600, 8, 16, seed=1)
    path = write_activations(tmp_path / "acts.h5", {HOOK: x})
    train_sae(TrainConfig(arch="topk", d_sae=16, k=2, batch_size=64, steps=5), [path], tmp_path / "sae.h5", progress=False)
    with pytest.raises(SaetoolError, match="has no stored samples"):
        export_samples_dir(tmp_path / "sae.h5", tmp_path / "out")


def test_stored_samples_are_the_final_sae_activations_and_round_trip_through_features(tmp_path):
    """Trained with a real learning rate, the collector saw earlier SAEs; the stored values are
    the final SAE's at the stored tokens, and the exported folder (seed 004's file names) reads
    back through `saetool features`."""
    from tests.helpers import assert_clean_error, run_cli

    x, _ = sparse_dictionary_data(3000, 12, 24, active=3, seed=5)
    path = write_activations(tmp_path / "acts.h5", {HOOK: x}, context_size=25, token_ids=np.arange(3000) % 997 + 3)
    settings = SampleSettings(every=1, per_feature=4, context=8, threshold=0.05, features=6)
    cfg = TrainConfig(arch="topk", d_sae=32, k=3, lr=3e-2, batch_size=100, steps=20, shuffle_buffer=400, val_fraction=0.1, samples=settings)
    result = train_sae(cfg, [path], tmp_path / "sae.h5", progress=False)
    stored = read_samples(tmp_path / "sae.h5")
    a = stored.arrays
    with torch.no_grad():
        final = result.sae.encode(x).numpy()
    for i, feat in enumerate(a["feature_idx"].tolist()):
        valid = ~np.isnan(a["values"][i])
        assert valid.any() and (a["values"][i][valid] > 0.05).all() and (a["row"][i][~valid] == -1).all()
        np.testing.assert_allclose(a["values"][i][valid], final[a["row"][i][valid], feat], rtol=1e-5)
        assert list(a["values"][i][valid]) == sorted(a["values"][i][valid], reverse=True)
        assert a["max_activation"][i] == pytest.approx(np.nanmax(a["values"][i]))
    out = export_samples_dir(tmp_path / "sae.h5", tmp_path / "samples", tokenizer=None)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["collection_summary.json", "interpretability_report.md"] + [f"feature_{f:05d}_samples.json" for f in a["feature_idx"].tolist()])
    summary = json.loads((out / "collection_summary.json").read_text())
    assert summary["values_from"] == "final SAE" and summary["statistics_from"] == "collection steps"
    # each provenance field says what it means, in the file itself
    assert set(summary["notes"]) == {"values_from", "statistics_from", "dropped_samples", "dropped_features"}
    assert "sample_activation_threshold" in summary["notes"]["dropped_samples"]
    report = (out / "interpretability_report.md").read_text()
    first = int(a["feature_idx"][0])
    assert f"## Feature {first}" in report and "final SAE" in report
    for source in (out, tmp_path / "sae.h5"):
        proc = run_cli("features", "report", str(source), "--feature", str(first), "--json")
        assert proc.returncode == 0, proc.stderr
        rec = json.loads(proc.stdout)
        valid = ~np.isnan(a["values"][0])
        assert [e["activation"] for e in rec["top_examples"]] == pytest.approx(a["values"][0][valid].tolist(), rel=1e-6)
    n_stored = int((~np.isnan(a["values"][0])).sum())
    note = f"the max, histogram and std over the {n_stored} stored top samples"  # not the feature's whole distribution
    proc = run_cli("features", "report", str(out), "--feature", str(first))
    assert proc.returncode == 0 and note in proc.stderr and "sample values from the final SAE" in proc.stderr
    png = tmp_path / "dist.png"
    proc = run_cli("features", "distribution", str(out), str(first), "--png", str(png))
    assert proc.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and note in proc.stderr
    assert "std" in proc.stderr and f"over the {n_stored} stored samples, mean" in " ".join(proc.stderr.split())  # the two populations said apart
    proc = run_cli("features", "compare", str(out), str(first), str(int(a["feature_idx"][1])), "--json")
    W = result.sae.W_dec.detach().float()
    want = float(torch.nn.functional.cosine_similarity(W[first], W[int(a["feature_idx"][1])], dim=0))
    assert json.loads(proc.stdout)["cosine"] == pytest.approx(want, abs=1e-5)
    assert_clean_error(run_cli("features", "report", str(tmp_path), "--feature", "0"), "without collection_summary.json")


def test_samples_where_the_final_sae_is_silent_are_dropped(tmp_path, capsys):
    """A token collected with an earlier SAE where the final SAE's activation is at or below the
    threshold is no sample of the feature: dropped, and a feature left with none with it."""
    import copy

    import h5py

    from saetool.train.samples import write_samples

    x, _ = sparse_dictionary_data(1500, 12, 24, active=3, seed=6)
    path = write_activations(tmp_path / "acts.h5", {HOOK: x}, context_size=25, token_ids=np.arange(1500) % 997 + 3)
    settings = SampleSettings(every=1, per_feature=4, context=8, threshold=0.05, features=6)
    cfg = TrainConfig(arch="relu", d_sae=32, lr=0.0, batch_size=100, steps=6, shuffle_buffer=400, val_fraction=0.1, samples=settings)
    result = train_sae(cfg, [path], tmp_path / "sae.h5", progress=False)
    collector = result.samples
    chosen = collector.chosen_features().tolist()
    final = copy.deepcopy(result.sae)  # the "final" SAE: the first chosen feature silenced, the second weakened
    with torch.no_grad():
        final.b_enc[chosen[0]] -= 1e4
        top = collector.values[chosen[1]][collector.rows[chosen[1]] >= 0].sort(descending=True).values
        final.b_enc[chosen[1]] -= float(top[0] + top[1]) / 2 - settings.threshold  # only its strongest sample stays above the threshold
        acts = final.encode(x).numpy()
    with ActivationSource([path], batch_size=100, shuffle_buffer=400, val_fraction=0.1, seed=0) as src, h5py.File(tmp_path / "s.h5", "w") as fh:
        write_samples(fh, collector, src, sae=final)
        g = fh["samples"]
        stored = {int(f): (g["row"][i], g["values"][i]) for i, f in enumerate(g["feature_idx"][()])}
        dropped_samples, dropped_features = int(g.attrs["dropped_samples"]), int(g.attrs["dropped_features"])
    want_dropped = 0
    for f in chosen:
        rows = [int(r) for r in collector.rows[f].tolist() if r >= 0]
        keep = [r for r in rows if acts[r, f] > 0.05]
        want_dropped += len(rows) - len(keep)
        if not keep:
            assert f not in stored
            continue
        got_rows, got_values = stored[f]
        assert sorted(got_rows[got_rows >= 0].tolist()) == sorted(keep)
        np.testing.assert_allclose(got_values[got_rows >= 0], acts[got_rows[got_rows >= 0], f], rtol=1e-5)
    assert chosen[0] not in stored and 0 < len(stored[chosen[1]][0][stored[chosen[1]][0] >= 0]) < 4
    assert (dropped_samples, dropped_features) == (want_dropped, 1)
    collected = int((collector.rows[chosen] >= 0).sum())
    err = " ".join(capsys.readouterr().err.split())
    assert f"{want_dropped} of {collected} collected tokens fell to or below the threshold 0.05 and were left out, and 1 feature with them" in err
