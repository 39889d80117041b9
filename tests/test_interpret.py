"""``saetool interpret``: statistics and examples against a dense brute-force computation,
the features artifact, the ``features`` commands, the pipe, and bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from saetool.interpret.report import interval_shares
from tests.helpers import assert_clean_error, run_cli

K = 8


def _dense(acts_path, sae_path, hook):
    """Every feature activation ``[n_tokens, d_sae]`` computed in one go, and the token ids."""
    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.io import load_sae

    sae = load_sae(str(sae_path), "cpu")
    with ActivationsFile(acts_path) as acts:
        x = acts.read(hook)
        tokens = acts.token_ids()
        seqs, seq_index, positions = acts.sequences(), acts.seq_index(), acts.positions()
    with torch.no_grad():
        f = sae.encode(x).float()
    return {"f": f, "tokens": tokens, "seqs": seqs, "seq_index": seq_index, "positions": positions, "W_dec": sae.W_dec.detach().float(), "hook": hook}


def _interpret(acts_path, sae_path, folder):
    from saetool.interpret.api import InterpretConfig, interpret

    config = InterpretConfig(examples=K, held_out=5, negatives=4, context=12, bins=16, intervals=4, neighbours=6, labeler=None, chunk_rows=300)
    return interpret(config, acts_path, sae_path, folder / "features.h5", progress=False)


@pytest.fixture(scope="module")
def dense(smollm2_acts, smollm2_sae):
    return _dense(smollm2_acts, smollm2_sae, "blocks.3.hook_resid_post")


@pytest.fixture(scope="module")
def result(smollm2_acts, smollm2_sae, tmp_path_factory):
    return _interpret(smollm2_acts, smollm2_sae, tmp_path_factory.mktemp("interpret"))


@pytest.fixture(scope="module")
def tiny_dense(tiny_acts, tiny_sae):
    return _dense(tiny_acts, tiny_sae, "blocks.1.hook_resid_post")


@pytest.fixture(scope="module")
def tiny_result(tiny_acts, tiny_sae, tmp_path_factory):
    return _interpret(tiny_acts, tiny_sae, tmp_path_factory.mktemp("interpret_tiny"))


#: The checks that hold for any model run on both: the tiny random GPT-2 (fast tier) and SmolLM2 (slow).
BOTH_MODELS = pytest.mark.parametrize("model", ["tiny", pytest.param("smollm2", marks=pytest.mark.slow)])


def _run(request, model):
    """``(result, dense)`` of the interpret run on ``model`` (``tiny`` or ``smollm2``)."""
    prefix = "tiny_" if model == "tiny" else ""
    return request.getfixturevalue(prefix + "result"), request.getfixturevalue(prefix + "dense")


@BOTH_MODELS
def test_statistics_match_dense(model, request):
    result, dense = _run(request, model)
    f = dense["f"]
    n, d_sae = f.shape
    assert result.d_sae == d_sae == (256 if model == "tiny" else 512) and result.n_tokens == n
    active = f > 0
    density = active.double().mean(0)
    mean = torch.where(active, f, 0).double().sum(0) / active.sum(0).clamp_min(1)
    assert [r.index for r in result.records] == list(range(d_sae))
    assert result.dead == int((active.sum(0) == 0).sum())
    assert result.dead > 0 or model == "tiny"  # SmolLM2's SAE has dead features; the tiny one may have none
    got = {name: np.array([getattr(r, name) for r in result.records]) for name in ("density", "max_activation", "mean_activation")}
    np.testing.assert_allclose(got["density"], density.numpy(), rtol=0, atol=0)
    np.testing.assert_array_equal(got["max_activation"], f.max(0).values.clamp_min(0).numpy())
    np.testing.assert_allclose(got["mean_activation"], mean.numpy(), rtol=1e-5)
    assert [r.dead for r in result.records] == (active.sum(0) == 0).tolist()


@BOTH_MODELS
def test_top_examples_equal_brute_force_topk(model, request):
    result, dense = _run(request, model)
    f, tokens = dense["f"], dense["tokens"]
    where = {(int(s), int(p)): i for i, (s, p) in enumerate(zip(dense["seq_index"], dense["positions"]))}
    checked = 0
    for r in result.records:
        # a feature with fewer than K + 5 active tokens has half of them held out, and removed from the top
        held = {where[(e.seq_index, e.token_position)] for e in r.held_out}
        top_v, top_i = f[:, r.index].topk(K)
        want = [v for v, i in zip(top_v.tolist(), top_i.tolist()) if v > 0 and i not in held]
        assert [e.activation for e in r.top_examples] == pytest.approx(want, rel=0, abs=0)
        for e in r.top_examples:
            # the example's window holds the activating token at the marked position
            row = int(np.flatnonzero((dense["seq_index"] == e.seq_index) & (dense["positions"] == e.token_position))[0])
            assert f[row, r.index].item() == e.activation
            assert e.token_ids[e.position] == tokens[row]
            assert dense["seqs"][e.seq_index][e.token_position] == tokens[row]
            assert len(e.token_ids) == 12 and e.tokens[e.position] == e.token
            checked += 1
    assert checked > 1000


@BOTH_MODELS
def test_shading_values_equal_the_activations(model, request):
    """Every token of every shown window carries the feature's activation there, equal to the
    dense encoding (tokens left out of extraction, e.g. BOS, have none)."""
    result, dense = _run(request, model)
    f = dense["f"]
    where = {(int(s), int(p)): i for i, (s, p) in enumerate(zip(dense["seq_index"], dense["positions"]))}
    checked = 0
    for r in result.records[::5]:
        for e in r.top_examples + r.held_out + r.interval_examples:
            assert e.values is not None and len(e.values) == len(e.tokens)
            assert e.values[e.position] == e.activation
            first = e.token_position - e.position
            for j, v in enumerate(e.values):
                row = where.get((e.seq_index, first + j))
                if row is None:
                    assert v is None
                else:
                    assert v == pytest.approx(f[row, r.index].item(), rel=1e-5, abs=1e-6)
                    checked += 1
        for e in r.interval_examples:  # weak to strong, each in its interval of (0, max]
            assert 0 < e.activation <= r.interval_edges[-1] + 1e-6
        assert [e.activation > 0 for e in r.interval_examples] == [True] * len(r.interval_examples)
    assert checked > 5000


def test_logit_effects_against_the_model_weights(result, smollm2):
    """W_U (g * d): the unembedding, the final RMSNorm's weight g and the raw decoder row d,
    read straight from the model's parameters."""
    from saetool.sae.io import load_sae

    hf = smollm2.model
    W_U = hf.lm_head.weight.detach().float()
    g = hf.model.norm.weight.detach().float()
    sae = load_sae(_sae_of(result.path), "cpu")
    tok = smollm2.tokenizer
    for r in result.records[:40:7]:
        if r.dead:
            continue
        logits = W_U @ (g * sae.W_dec.detach()[r.index].float())
        top = logits.topk(10)
        bottom = (-logits).topk(10)
        assert [t for t, _ in r.logits_positive] == [tok.decode([i]) for i in top.indices.tolist()]
        assert [t for t, _ in r.logits_negative] == [tok.decode([i]) for i in bottom.indices.tolist()]
        np.testing.assert_allclose([v for _, v in r.logits_positive], top.values.numpy(), rtol=1e-4)
        np.testing.assert_allclose([v for _, v in r.logits_negative], (-bottom.values).numpy(), rtol=1e-4)


def test_logit_effects_of_layernorm_and_rmsnorm_models_against_their_formulas():
    """Through a LayerNorm (GPT-2's ln_f, with a bias) the decoder row is centred before the
    scale, W_U (g * (d - mean d)) as TransformerLens's fold_ln has it; through an RMSNorm
    (Llama's g, Gemma's 1 + w) it is only scaled. Rows with a large mean tell the two apart."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from saetool.interpret.logits import directions_to_logits

    gen = torch.Generator().manual_seed(0)
    d_model, vocab = 48, 300
    W_U = torch.randn(vocab, d_model, generator=gen)
    d = torch.randn(4, d_model, generator=gen) + torch.tensor([0.0, 0.4, 2.0, -3.0])[:, None]
    layer_norm, llama, gemma = torch.nn.LayerNorm(d_model), LlamaRMSNorm(d_model), Gemma3RMSNorm(d_model)
    with torch.no_grad():
        for p in (layer_norm.weight, layer_norm.bias, llama.weight, gemma.weight):
            p.copy_(torch.rand(d_model, generator=gen) * 2 - 0.5)
    for norm, scaled in (
        (layer_norm, (d - d.mean(-1, keepdim=True)) * layer_norm.weight.detach()),
        (llama, d * llama.weight.detach()),
        (gemma, d * (1 + gemma.weight.detach())),
    ):
        got = directions_to_logits(d, norm, W_U)
        torch.testing.assert_close(got, scaled @ W_U.T, rtol=1e-4, atol=1e-4)


def _sae_of(features_path):
    from saetool.interpret.store import FeaturesFile

    with FeaturesFile(features_path) as ff:
        return next(p["path"] for p in ff.provenance["parents"] if p["kind"] == "sae")


@BOTH_MODELS
def test_held_out_and_negatives(model, request):
    result, dense = _run(request, model)
    f = dense["f"]
    where = {(int(s), int(p)): i for i, (s, p) in enumerate(zip(dense["seq_index"], dense["positions"]))}
    n_held = 0
    for r in result.records:
        n_active = int((f[:, r.index] > 0).sum())
        top_rows = {where[(e.seq_index, e.token_position)] for e in r.top_examples}
        held_rows = [where[(e.seq_index, e.token_position)] for e in r.held_out]
        small = n_active < K + 5  # too few for both: a random half held out, the rest the top examples
        assert len(held_rows) == (min(5, n_active // 2) if small else min(5, max(0, n_active - len(top_rows))))
        assert len(set(held_rows)) == len(held_rows) and not set(held_rows) & top_rows
        if n_active:  # the top examples start at the feature's maximum, small features too
            assert r.top_examples[0].activation == pytest.approx(f[:, r.index].max().item(), rel=1e-5)
        for e, row in zip(r.held_out, held_rows):
            assert e.activation == pytest.approx(f[row, r.index].item(), rel=1e-5) and e.activation > 0
        neg_rows = [where[(e.seq_index, e.token_position)] for e in r.negatives]
        assert len(neg_rows) == 4 and all(f[row, r.index].item() == 0 for row in neg_rows)
        n_held += len(held_rows)
    assert n_held > 1000


@BOTH_MODELS
def test_histogram_and_common_tokens(model, request):
    result, dense = _run(request, model)
    f = dense["f"]
    for r in result.records[:64]:
        col = f[:, r.index]
        vals = col[col > 0].double().numpy()
        assert sum(r.histogram_counts) == len(vals) and len(r.histogram_counts) == 16
        if len(vals):
            ref, _ = np.histogram(vals, bins=16, range=(0, r.max_activation))
            assert np.abs(ref - np.array(r.histogram_counts)).sum() <= 2  # float rounding at bin edges only
            assert r.histogram_edges[-1] == pytest.approx(r.max_activation)
            # each interval's share of the activations (16 bins split the 4 intervals evenly: exact)
            shares, exact = interval_shares(r)
            quarter = np.minimum((vals / r.max_activation * 4).astype(int), 3)
            assert exact and np.abs(np.array(shares) - np.bincount(quarter, minlength=4) / len(vals)).max() <= 2 / len(vals)
            counts: dict[str, int] = {}
            for e in r.top_examples:
                counts[e.token] = counts.get(e.token, 0) + 1
            assert r.top_tokens[0][1] == max(counts.values())
            assert sum(c for _, c in r.top_tokens) <= len(r.top_examples)


@BOTH_MODELS
def test_neighbours_match_cosine_matrix(model, request):
    result, dense = _run(request, model)
    W = dense["W_dec"]
    Wn = W / W.norm(dim=1, keepdim=True)
    cos = Wn @ Wn.T
    cos.fill_diagonal_(float("-inf"))
    want_v, want_i = cos.topk(6, dim=1)
    for r in result.records[::7]:
        assert [i for i, _ in r.neighbours] == want_i[r.index].tolist()
        np.testing.assert_allclose([c for _, c in r.neighbours], want_v[r.index].numpy(), atol=1e-5)


@BOTH_MODELS
def test_read_features_round_trip(model, request):
    result, dense = _run(request, model)
    from saetool.interpret.records import FeatureRecord
    from saetool.interpret.store import FeaturesFile, read_features

    back = read_features(result.path, [3, 1])
    assert [r.index for r in back] == [3, 1]
    assert back[1].to_json() == result.records[1].to_json()
    assert FeatureRecord.from_json(back[0].to_json()) == back[0]
    with FeaturesFile(result.path) as ff:
        assert ff.d_sae == result.d_sae == dense["f"].shape[1] and ff.hook == dense["hook"]
        parents = ff.provenance["parents"]
        assert {p["kind"] for p in parents} == {"activations", "sae"}
        assert ff.sae_sha256 == next(p["sha256"] for p in parents if p["kind"] == "sae")
        with pytest.raises(Exception, match="out of range"):
            ff.check_features([result.d_sae])


def test_subset_and_top(smollm2_acts, smollm2_sae, result, tmp_path):
    from saetool.interpret.api import InterpretConfig, interpret

    sub = interpret(InterpretConfig(features=[7, 3, 300], examples=K, context=12, labeler=None, chunk_rows=300, held_out=5, negatives=4, bins=16, neighbours=6), smollm2_acts, smollm2_sae, tmp_path / "sub.h5", progress=False)
    full = {r.index: r for r in result.records}
    assert [r.index for r in sub.records] == [7, 3, 300]
    for r in sub.records:
        assert r.density == full[r.index].density and r.max_activation == full[r.index].max_activation
        assert [e.activation for e in r.top_examples] == [e.activation for e in full[r.index].top_examples]
        assert r.histogram_counts == full[r.index].histogram_counts
    top = interpret(InterpretConfig(top=5, order="density", examples=2, labeler=None), smollm2_acts, smollm2_sae, tmp_path / "top.h5", progress=False)
    densest = sorted(result.records, key=lambda r: (-r.density, -r.max_activation, r.index))[:5]
    assert [r.index for r in top.records] == [r.index for r in densest]


@pytest.mark.slow  # five CLI processes per model
@BOTH_MODELS
def test_features_commands(model, request):
    result, dense = _run(request, model)
    path = str(result.path)
    proc = run_cli("features", "distribution", path, "10", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["count"] == int((dense["f"][:, 10] > 0).sum()) and sum(data["counts"]) == data["count"]
    proc = run_cli("features", "similar", path, "10", "--top", "3", "--json")
    assert [n["feature"] for n in json.loads(proc.stdout)["neighbours"]] == [i for i, _ in result.records[10].neighbours[:3]]
    proc = run_cli("features", "compare", path, "10", "11", "--json")
    W = dense["W_dec"]
    want = float(torch.nn.functional.cosine_similarity(W[10], W[11], dim=0))
    assert json.loads(proc.stdout)["cosine"] == pytest.approx(want, abs=1e-5)
    proc = run_cli("features", "report", path, "--feature", "10", "--json", "--examples", "3")
    rec = json.loads(proc.stdout)
    assert rec["index"] == 10 and len(rec["top_examples"]) == min(3, len(result.records[10].top_examples))
    proc = run_cli("features", "distribution", path, "10")
    assert proc.returncode == 0 and proc.stdout == "" and "feature 10: active on" in proc.stderr
    assert_clean_error(run_cli("features", "report", path, "--feature", str(result.d_sae)), "out of range")


@pytest.mark.slow  # extract runs SmolLM2 (the default model) in a subprocess
def test_pipe_extract_train_interpret(tmp_path):
    extract = run_cli("extract", "--hooks", "blocks.1.hook_resid_post", "-n", "512", "--context-size", "32", "-o", str(tmp_path / "a.h5"))
    assert extract.returncode == 0, extract.stderr
    train = run_cli("train", "--d-sae", "64", "--k", "4", "--steps", "30", "-b", "128", "--val-fraction", "0.1", "-o", str(tmp_path / "s.h5"), input=extract.stdout)
    assert train.returncode == 0, train.stderr
    proc = run_cli("interpret", "--examples", "3", "--held-out", "4", "--top", "10", "-o", str(tmp_path / "f.h5"), input=train.stdout)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["kind"] == "features" and manifest["n_features"] == 10 and manifest["d_sae"] == 64
    assert "features reported" in proc.stderr
    from saetool.interpret.store import FeaturesFile

    with FeaturesFile(manifest["path"]) as ff:
        assert ff.hook == "blocks.1.hook_resid_post" and ff.n_tokens == 512
        assert str(tmp_path / "a.h5") in [p["path"] for p in ff.provenance["parents"]]
        scores = [r.label.score for r in ff.records() if r.label and r.label.score is not None]
        # labels chosen from the windows' per-token activations, not by counting top tokens (that is
        # the fallback when every activation in the top windows is inside a scoring window)
        chosen = Counter(r.label.details["chosen_by"] for r in ff.records() if r.label and r.label.details.get("patterns"))
        assert chosen["balanced accuracy"] > chosen["frequency"], chosen
    # the mean detection score of the reported labels, with its interval and chance level, in the manifest and on stderr
    det = manifest["scores"]["detection"]
    assert det["n"] == len(scores) > 1 and det["mean"] == pytest.approx(float(np.mean(scores))) and det["chance"] == 0.5
    assert det["ci95"][0] <= det["mean"] <= det["ci95"][1]
    assert f"mean detection score {det['mean']:.2f} (95% CI" in proc.stderr


def test_token_counts_of_the_corpus(smollm2_acts):
    from saetool.artifacts.activations import ActivationsFile
    from saetool.interpret.api import _decode_each, _tokenizer, token_counts

    with ActivationsFile(smollm2_acts) as acts:
        tok = _tokenizer(acts.model)
        counts = token_counts(acts, tok, chunk_rows=100)  # several chunks
        ids = acts.token_ids()
    expected = Counter(_decode_each(tok, ids))
    assert counts == dict(expected) and sum(counts.values()) == len(ids)


def test_bad_inputs(smollm2_acts, smollm2_sae, result, tmp_path):
    from saetool.train.synthetic import write_activations

    wrong_d = write_activations(tmp_path / "d.h5", {"blocks.3.hook_resid_post": torch.randn(64, 100)})
    wrong_hook = write_activations(tmp_path / "h.h5", {"blocks.5.hook_resid_post": torch.randn(64, 576)})
    out = tmp_path / "out.h5"
    assert_clean_error(run_cli("interpret", str(wrong_d), "--sae", str(smollm2_sae), "-o", str(out)), "d_in=576")
    assert_clean_error(run_cli("interpret", str(wrong_hook), "--sae", str(smollm2_sae), "-o", str(out)), "blocks.3.hook_resid_post", "blocks.5.hook_resid_post")
    assert_clean_error(run_cli("interpret", str(smollm2_acts), "--sae", str(smollm2_sae), "--features", "3,512", "-o", str(out)), "out of range")
    assert_clean_error(run_cli("interpret", str(smollm2_acts), "--sae", str(smollm2_sae), "--labeler", "nope", "-o", str(out)), "nope")
    assert_clean_error(run_cli("interpret", str(smollm2_acts), "--sae", str(smollm2_sae), "--labeler", "transition-words", "-o", str(out)), "labels positions")
    assert_clean_error(run_cli("interpret", str(smollm2_acts), "--sae", str(smollm2_sae), "--labeler", "llm", "--labeler-option", "api_key=abc", "-o", str(out)), "secret")
    assert_clean_error(run_cli("interpret", str(smollm2_acts), "-o", str(out)), "no SAE")
    # a features artifact with an SAE it did not come from
    other = tmp_path / "other.h5"
    other.write_bytes(smollm2_sae.read_bytes())
    with __import__("h5py").File(other, "r+") as fh:
        fh["weights/b_enc"][0] += 1.0
    assert_clean_error(run_cli("interpret", str(result.path), "--sae", str(other)), "was not made from")
    assert_clean_error(run_cli("features", "similar", str(result.path), "3", "--sae", str(other)), "was not made from")
    assert not out.exists() and not list(tmp_path.glob("out.h5*"))
    ok = run_cli("interpret", str(result.path), "--sae", str(smollm2_sae))
    assert ok.returncode == 0, ok.stderr


def test_sparse_merge_equals_dense_merge():
    from saetool.sae.features import batch_topk, merge_topk, merge_topk_sparse

    gen = torch.Generator().manual_seed(3)
    F, k = 37, 6
    dense_v, dense_r = torch.full((F, k), float("-inf")), torch.full((F, k), -1, dtype=torch.long)
    sparse_v, sparse_r = dense_v.clone(), dense_r.clone()
    for c in range(12):
        n = int(torch.randint(1, 90, (1,), generator=gen))
        acts = torch.rand(n, F, generator=gen) * (torch.rand(n, F, generator=gen) < 0.1)
        rows = torch.arange(c * 100, c * 100 + n)
        v, r = batch_topk(acts, rows, k, threshold=0.0)
        dense_v, dense_r = merge_topk(dense_v, dense_r, v, r, k)
        nz = acts.nonzero()
        sparse_v, sparse_r = merge_topk_sparse(sparse_v, sparse_r, nz[:, 1], acts[nz[:, 0], nz[:, 1]], rows[nz[:, 0]])
        assert torch.equal(sparse_v, dense_v) and torch.equal(sparse_r, dense_r)
    assert (dense_r >= 0).sum() > F * k // 2


def test_labeler_fallback_report_and_browser(smollm2_acts, smollm2_sae, tmp_path):
    out, report, html = tmp_path / "f.h5", tmp_path / "report.md", tmp_path / "browser.html"
    proc = run_cli(
        "interpret", str(smollm2_acts), "--sae", str(smollm2_sae), "--features", "3,10", "--examples", "5", "-o", str(out),
        "--labeler", "llm", "--labeler-option", "url=http://user:sekrit1@127.0.0.1:9/v1?token=sekrit2", "--report", str(report), "--html", str(html),
    )
    assert proc.returncode == 0, proc.stderr
    assert "labeler llm failed" in proc.stderr and "tokens label" in proc.stderr
    assert "sekrit" not in proc.stderr + proc.stdout and b"sekrit" not in out.read_bytes()  # credentials in the URL are never stored
    manifest = json.loads(proc.stdout)
    assert manifest["labeler"] == "tokens" and manifest["report"] == str(report)
    from saetool.interpret.store import read_features

    records = read_features(out)
    assert [r.index for r in records] == [3, 10]
    assert all(r.label is not None and r.label.labeler == "tokens" for r in records if not r.dead)
    assert "10" in report.read_text() and html.stat().st_size > 1000
    text = run_cli("features", "report", str(out), "--feature", "10")
    assert text.returncode == 0 and text.stdout == "" and "10" in text.stderr, text.stderr
    both = run_cli("features", "compare", str(out), "3", "10")
    assert both.returncode == 0 and "3" in both.stderr and "10" in both.stderr, both.stderr


def test_model_and_corpus_mode_runs_the_model_for_the_sae_hook(smollm2_sae, tmp_path):
    out = tmp_path / "f.h5"
    proc = run_cli("interpret", "--sae", str(smollm2_sae), "--model", "smollm2-135m", "--corpus", "kjv", "-n", "256", "--context-size", "64",
                   "--top", "3", "--labeler", "none", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from saetool.interpret.store import FeaturesFile

    with FeaturesFile(out) as ff:
        assert ff.n_tokens == 256 and ff.hook == "blocks.3.hook_resid_post" and len(ff.index) == 3
        assert int(ff.stats()["count"].sum()) > 0
    assert_clean_error(run_cli("interpret", "--sae", str(smollm2_sae), "--model", "smollm2-135m", "-o", str(tmp_path / "g.h5")), "--corpus")
    assert not list(tmp_path.glob("g.h5*"))


def test_json_dir_writes_seed_002_interpretations(result, tmp_path):
    proc = run_cli("interpret", str(result.path), "--json-dir", str(tmp_path / "interp"), "--show", "0")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "interp" / "layer_3_interpretations.json").read_text())
    assert data["layer"] == 3 and data["hook"] == "blocks.3.hook_resid_post" and data["n_features"] == 512
    assert data["dead_features"] == [r.index for r in result.records if r.dead]
    r = result.records[10]
    feat = data["features"]["10"]
    assert feat["feature_id"] == 10 and feat["is_dead"] == r.dead and feat["activation_frequency"] == r.density
    assert [e["activation"] for e in feat["top_examples"]] == [e.activation for e in r.top_examples]
    assert [e["text"] for e in feat["top_examples"]] == [e.text for e in r.top_examples]
    assert feat["common_tokens"] == [[t, c] for t, c in r.top_tokens]
    (tmp_path / "file").write_text("x")
    assert_clean_error(run_cli("interpret", str(result.path), "--json-dir", str(tmp_path / "file")), "is not a folder")


def test_json_dir_never_replaces_an_input_or_an_existing_file(tiny_result, tmp_path, capsys):
    """--json-dir's file is an output like -o and --report: checked before anything is written (issue 16, class 4).
    Run in-process (the check is the command's, before any work)."""
    from saetool.cli.main import main

    def cli(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main([*args, "--show", "0"])
        return exc.value.code, capsys.readouterr().err.strip()

    jdir = tmp_path / "j"
    jdir.mkdir()
    target = jdir / "layer_1_interpretations.json"
    target.write_text("precious")
    assert cli("interpret", str(tiny_result.path), "--json-dir", str(jdir), "--report", str(tmp_path / "r.md")) == (
        2, f"error: output {target} already exists; pass --overwrite to replace it, or choose another --json-dir")
    assert target.read_text() == "precious" and not (tmp_path / "r.md").exists()
    target.write_bytes(tiny_result.path.read_bytes())  # the features artifact itself, named as --json-dir would name its file
    code, err = cli("interpret", str(target), "--json-dir", str(jdir), "--overwrite")
    assert code == 2 and err.startswith(f"error: --json-dir {target} is also an input")
    assert target.read_bytes() == tiny_result.path.read_bytes()
    assert cli("interpret", str(tiny_result.path), "--json-dir", str(jdir), "--overwrite")[0] == 0
    assert json.loads(target.read_text())["hook"] == "blocks.1.hook_resid_post"

def test_an_sae_alone_is_interpreted_on_the_activations_it_trained_on(smollm2_acts, smollm2_sae, tmp_path):
    """interpret --sae SAE without ACTS or a pipe reads the activations the SAE's provenance names."""
    from saetool.artifacts.store import read_header

    out = tmp_path / "f.h5"
    proc = run_cli("interpret", "--sae", str(smollm2_sae), "--top", "5", "--labeler", "none", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    parents = {p["kind"]: p["path"] for p in read_header(out)["provenance"]["parents"]}
    assert Path(parents["activations"]).resolve() == Path(smollm2_acts).resolve()


def test_reports_on_an_sae_that_missed_its_reconstruction_target_say_so(tiny_acts, tiny_sae, tmp_path):
    """An SAE whose training checklist missed its FVU target: interpret warns once on stderr and the report
    and the HTML page lead with the warning; an SAE that met it (or no saetool artifact) gets none."""
    import shutil

    import h5py

    bad = tmp_path / "bad.h5"
    shutil.copy(tiny_sae, bad)
    with h5py.File(bad, "r+") as fh:
        training = json.loads(fh.attrs["training"])
        training["checklist"] = [{"key": "fvu", "name": "FVU (held-out)", "value": 0.61, "target": "< 0.3", "passed": False}]
        fh.attrs["training"] = json.dumps(training)
    from saetool.sae.quality import quality_warning

    said = "the SAE missed its training checklist's reconstruction target (FVU 0.61 for < 0.3)"
    assert quality_warning(tiny_sae) is None and quality_warning(tmp_path / "no-such.h5") is None and quality_warning(bad).startswith(said)
    report, html = tmp_path / "r.md", tmp_path / "r.html"
    proc = run_cli("interpret", str(tiny_acts), "--sae", str(bad), "--labeler", "none", "--top", "4", "--report", str(report), "--html", str(html),
                   "-o", str(tmp_path / "features.h5"))
    assert proc.returncode == 0, proc.stderr
    assert said in " ".join(proc.stderr.split())
    lines = report.read_text().splitlines()
    assert lines[2].startswith("- **warning**: " + said.replace("<", "\\<") + ": the features of a poorly trained dictionary")  # markdown-escaped
    page = html.read_text()
    data = json.loads(page.split('<script type="application/json" id="saetool-data">')[1].split("</script>")[0])
    assert list(data["meta"])[0] == "warning" and data["meta"]["warning"].startswith(said)
