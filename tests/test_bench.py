"""saetool bench: the random floor, the core eval (evaluate's numbers), the artifact, resume, table/CSV/JSON."""

from __future__ import annotations

import json

import pytest
import torch

from saetool.bench.api import run_bench
from saetool.bench.config import BenchConfig
from saetool.bench.random_sae import random_like
from saetool.bench.store import read_bench
from saetool.sae.io import load_sae


def test_random_floor_keeps_shape_mean_and_scale_but_not_features(tiny_sae):
    sae = load_sae(tiny_sae)
    rnd = random_like(sae, seed=3)
    assert rnd.cfg == sae.cfg and rnd.W_dec.shape == sae.W_dec.shape
    assert torch.equal(rnd.b_dec, sae.b_dec)
    norms = rnd.W_dec.norm(dim=1)
    assert torch.allclose(norms, sae.W_dec.norm(dim=1).median().expand_as(norms), rtol=1e-5)
    # tied: encoding a decoder row reads mostly that latent
    assert torch.equal(random_like(sae, seed=3).W_dec, rnd.W_dec) and not torch.equal(random_like(sae, seed=4).W_dec, rnd.W_dec)
    cos = torch.nn.functional.normalize(rnd.W_dec, dim=1) @ torch.nn.functional.normalize(sae.W_dec, dim=1).T
    assert cos.max(dim=1).values.mean() < 0.6


def test_core_reuses_evaluate_and_beats_the_floor(tiny_sae, tiny_acts, tmp_path):
    from saetool.evaluate.api import EvalConfig, evaluate_sae

    config = BenchConfig(evals=["core"], num_tokens=1024, options={"core": {"model": "false"}})
    res = run_bench([tiny_sae], config, tmp_path / "b.h5", acts=tiny_acts, progress=False)
    assert res.names == ["sae", "random"]
    ev = evaluate_sae(tiny_sae, tiny_acts, EvalConfig(num_tokens=1024, use_model=False))
    for name, value in ev.metrics.items():
        assert res.value("sae", "core", name) == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert res.value("sae", "core", "fvu") < 0.5 < res.value("random", "core", "fvu")
    stored = read_bench(tmp_path / "b.h5")
    assert stored.results[("sae", "core")].metrics == res.results[("sae", "core")].metrics
    assert stored.saes[1]["random_of"] == "sae"
    assert {c["name"]: c["better"] for c in stored.cards["core"]}["fvu"] == "lower"


def test_resume_skips_finished_results_and_refuses_other_settings(tiny_sae, tiny_acts, tmp_path):
    import shutil

    import h5py

    from saetool.errors import SaetoolError

    out = tmp_path / "b.h5"
    config = BenchConfig(evals=["core"], num_tokens=512, options={"core": {"model": "false"}})
    first = run_bench([tiny_sae], config, out, acts=tiny_acts, progress=False)
    partial = tmp_path / "b.h5.partial"
    shutil.copy(out, partial)
    with h5py.File(partial, "r+") as fh:  # as if killed before the random floor's result
        fh.attrs["complete"] = False
        del fh["results/1"]
        fh["results/0/core"].attrs["result"] = json.dumps({**first.results[("sae", "core")].to_dict(), "seconds": 123.0})
    again = run_bench([tiny_sae], config, out, acts=tiny_acts, overwrite=True, resume=True, progress=False)
    assert again.results[("sae", "core")].seconds == 123.0  # kept, not recomputed
    assert again.results[("random", "core")].metrics == first.results[("random", "core")].metrics
    shutil.copy(out, partial)
    other = BenchConfig(evals=["core"], num_tokens=256, options={"core": {"model": "false"}})
    with pytest.raises(SaetoolError, match="num_tokens"):
        run_bench([tiny_sae], other, out, acts=tiny_acts, overwrite=True, resume=True, progress=False)


def test_bad_options_fail_before_work(tiny_sae, tiny_acts, tmp_path):
    from saetool.errors import SaetoolError

    for options, needle in (({"core": {"nope": "1"}}, "no option 'nope'"), ({"core": {"num_tokens": "x"}}, "must be a int")):
        with pytest.raises(SaetoolError, match=needle):
            run_bench([tiny_sae], BenchConfig(evals=["core"], options=options), tmp_path / "b.h5", acts=tiny_acts, progress=False)
    with pytest.raises(SaetoolError, match="unknown eval 'cor'"):
        run_bench([tiny_sae], BenchConfig(evals=["cor"]), tmp_path / "b.h5", acts=tiny_acts, progress=False)
    other_hook = _write(_planted_sae(torch.eye(64), hook="blocks.0.hook_resid_post"), tmp_path / "other.h5")
    with pytest.raises(SaetoolError, match="different hooks"):
        run_bench([tiny_sae, other_hook], BenchConfig(evals=["stability"]), tmp_path / "b.h5", progress=False)
    with pytest.raises(SaetoolError, match="no activations and no model"):
        run_bench([other_hook], BenchConfig(evals=["core"]), tmp_path / "b.h5", progress=False)
    assert not (tmp_path / "b.h5").exists()


def test_without_acts_the_bench_extracts_from_the_model(tiny_sae, tiny_gpt2_dir, tmp_path):
    config = BenchConfig(evals=["core"], model=str(tiny_gpt2_dir), num_tokens=256, context_size=32, options={"core": {"model": "false"}})
    res = run_bench([tiny_sae], config, tmp_path / "b.h5", progress=False)
    assert res.results[("sae", "core")].details["n_rows"] == 256  # the rows extract stored


def test_cli_writes_table_csv_json_and_plots(tiny_sae, tiny_acts, tmp_path):
    import csv

    from tests.helpers import assert_clean_error, run_cli

    proc = run_cli("bench", str(tiny_sae), "--acts", str(tiny_acts), "--evals", "core", "-O", "core.model=false", "-n", "512",
                   "--csv", str(tmp_path / "b.csv"), "--plots", str(tmp_path / "plots"), "--json", "-o", str(tmp_path / "b.h5"))
    assert proc.returncode == 0, proc.stderr
    assert "bench core" in proc.stderr and "fvu" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "bench" and [s["name"] for s in doc["saes"]] == ["sae", "random"]
    fvu = {r["sae"]: r["metrics"]["fvu"] for r in doc["results"]}
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert {r["sae"]: float(r["value"]) for r in rows if r["metric"] == "fvu"} == pytest.approx(fvu)
    assert (tmp_path / "plots" / "l0_fvu.png").read_bytes()[:4] == b"\x89PNG"
    assert_clean_error(run_cli("bench", str(tiny_sae), "--acts", str(tiny_acts), "-O", "core", "-o", str(tmp_path / "c.h5")), "--option must look like EVAL.KEY=VALUE")


# -- stability ------------------------------------------------------------------------------
def _planted_sae(w_dec: torch.Tensor, *, hook: str = "blocks.0.hook_resid_post", w_enc: torch.Tensor | None = None, b_enc=None, activation: str = "relu", k=None):
    """A ReLU (or TopK) SAE with the given decoder rows; encoder = decoder transposed unless given."""
    from saetool.sae.config import SAEConfig
    from saetool.sae.model import SAE

    d_sae, d = w_dec.shape
    sae = SAE(SAEConfig(arch=activation, d_in=d, d_sae=d_sae, hook=hook, activation=activation, k=k))
    with torch.no_grad():
        sae.W_dec.copy_(w_dec)
        sae.W_enc.copy_(w_dec.T if w_enc is None else w_enc)
        if b_enc is not None:
            sae.b_enc.copy_(b_enc)
    return sae


def _write(sae, path):
    from saetool.sae.io import write_sae_artifact

    return write_sae_artifact(path, sae, provenance={})


def test_stability_planted_split_and_permuted_copy(tmp_path):
    from saetool.bench.stability import StabilityOptions, compare
    from saetool.sae.features import unit_rows

    eye = torch.eye(8)
    narrow = eye[:4]
    a, b = (eye[4] * 0.3 + eye[0]), (eye[0] - eye[4] * 0.3)  # latent 0 splits in two (cosine 0.958 each)
    wide = torch.stack([a, b, eye[1], eye[2], eye[3], eye[5], eye[6], eye[7]])
    out = compare(unit_rows(narrow), unit_rows(wide), StabilityOptions())
    assert out["mmcs"] == pytest.approx((0.3 ** 2 + 1) ** -0.5 / 4 + 3 / 4)
    assert out["matched_fraction"] == 1.0 and out["split_fraction"] == 0.25
    assert out["splits"] == [{"latent": 0, "children": [0, 1]}]
    assert compare(unit_rows(narrow), unit_rows(narrow[[2, 0, 3, 1]]), StabilityOptions())["mmcs"] == pytest.approx(1.0)
    # through the bench: two SAEs and their random floors
    p1, p2 = _write(_planted_sae(narrow), tmp_path / "narrow.h5"), _write(_planted_sae(wide), tmp_path / "wide.h5")
    res = run_bench([p1, p2], BenchConfig(evals=["stability"]), tmp_path / "b.h5", progress=False)
    assert res.names == ["narrow", "wide", "random-4", "random-8"]
    assert res.value("narrow", "stability", "split_fraction") == 0.25
    assert res.value("wide", "stability", "split_fraction") is None  # nothing wider
    assert res.value("narrow", "stability", "matched_fraction") == 1.0
    for floor in ("random-4", "random-8"):
        assert res.value(floor, "stability", "mmcs") < res.value("narrow", "stability", "mmcs")


# -- probing --------------------------------------------------------------------------------
def test_fit_logistic_minimises_the_regularised_log_loss():
    import numpy as np
    from scipy.optimize import minimize

    from saetool.bench.linear import fit_logistic

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0], dtype=torch.float64) + 2
    y = (x[:, 0] - 0.5 * x[:, 1] + torch.randn(60, generator=gen, dtype=torch.float64) > 2).double()
    probe = fit_logistic(x, y, C=0.7)
    mean, std = x.mean(0), x.std(0, unbiased=False)
    z = ((x - mean) / std).numpy()

    def objective(p):
        w, b = p[:5], p[5]
        s = z @ w + b
        return np.mean(np.logaddexp(0, s) - y.numpy() * s) + w @ w / (2 * 0.7 * 60)

    ref = minimize(objective, np.zeros(6), method="BFGS", options={"gtol": 1e-10})
    w_ref = torch.tensor(ref.x[:5]) / std
    assert torch.allclose(probe.weight[0], w_ref, atol=1e-5)
    assert float(probe.bias[0]) == pytest.approx(ref.x[5] - float((torch.tensor(ref.x[:5]) * mean / std).sum()), abs=1e-5)


def _planted_probe_set(n_per_class=12, d=16, seed=0, signal=1.0):
    """Texts of 3 classes: class c's tokens carry ``signal`` x direction e_c on every other token; dims 8+ are noise."""
    from saetool.bench.probing import ProbeSet

    gen = torch.Generator().manual_seed(seed)
    acts, labels, train = [], [], []
    for c, name in enumerate(["a", "b", "c"]):
        for i in range(n_per_class):
            x = torch.randn(10, d, generator=gen) * 0.05
            x[:, 8:] = torch.randn(10, d - 8, generator=gen)
            x[::2, c] += signal
            acts.append(x)
            labels.append(name)
            train.append(i >= 4)
    return ProbeSet("planted", acts, labels, train)


def test_planted_class_latents_probe_perfectly_at_k1():
    from saetool.bench.probing import ProbingOptions, score_probe_sets

    sae = _planted_sae(torch.eye(16))
    sets = [_planted_probe_set()]
    res = score_probe_sets(sae, sets, ProbingOptions(ks=(1, 2, 5)), seed=0)
    assert res.metrics["top_1_accuracy"] == 1.0 and res.metrics["llm_accuracy"] == 1.0
    assert [r["top_latents"][0] for r in res.details["tasks"]] == [0, 1, 2]
    # a dictionary of the noise directions only knows nothing of the classes
    blind = _planted_sae(torch.eye(16)[8:])
    assert score_probe_sets(blind, sets, ProbingOptions(ks=(1,)), seed=0).metrics["top_1_accuracy"] < 0.8


def test_massive_tokens_are_left_out_of_the_pooling():
    """A massive first token (SmolLM2's position after BOS) with a class-blind direction would swamp
    the mean; ordinary_tokens drops rows farther than 10x the median distance from the set's median
    row, keeps the rest, and a text made only of massive rows keeps its nearest one; ratio 0 keeps everything."""
    from saetool.bench.probing import ordinary_tokens

    gen = torch.Generator().manual_seed(0)
    acts = [torch.randn(6, 8, generator=gen) for _ in range(4)]
    for a in acts:
        a[0] = 500.0  # norm ~1400 against a median of ~2.8
    only_massive = torch.full((2, 8), 400.0)
    only_massive[1] = 300.0
    out = ordinary_tokens([*acts, only_massive], 10.0)
    assert [a.shape[0] for a in out] == [5, 5, 5, 5, 1]
    assert all(torch.equal(o, a[1:]) for o, a in zip(out, acts)) and torch.equal(out[4][0], only_massive[1])
    assert [a.shape[0] for a in ordinary_tokens(acts, 0.0)] == [6] * 4


def test_probing_runs_through_the_model(tiny_sae, tiny_acts, tmp_path):
    config = BenchConfig(evals=["probing"], options={"probing": {"per_class": "6", "context": "16", "ks": "1,5"}})
    res = run_bench([tiny_sae], config, tmp_path / "b.h5", acts=tiny_acts, progress=False)
    for name in ("sae", "random"):
        r = res.results[(name, "probing")]
        assert set(r.metrics) == {"llm_accuracy", "top_1_accuracy", "top_5_accuracy"}
        assert all(0 <= v <= 1 for v in r.metrics.values())
        assert len(r.details["tasks"]) == 5 and r.details["test_texts_per_task"] == [4] * 5
    assert res.value("sae", "probing", "llm_accuracy") == res.value("random", "probing", "llm_accuracy")


# -- absorption -----------------------------------------------------------------------------
def _planted_letters(absorbed_test_words: int = 3, per_letter: int = 40, n_test: int = 10):
    """Two letters ("a" = e_0, "b" = e_1), ``per_letter`` words each with a direction of their own
    (x = letter + word). The SAE: a main latent per letter, a token latent per word; for the first
    ``absorbed_test_words`` test words of "a", the main latent is inhibited and their token latent
    carries the letter (decoder = letter + word): designed absorption rate 3/10 for "a", 0 for "b"."""
    from saetool.bench.absorption import LetterData

    n_words = 2 * per_letter
    d = 2 + n_words
    eye = torch.eye(d)
    x = torch.stack([eye[w // per_letter] + eye[2 + w] for w in range(n_words)])
    letters = torch.tensor([w // per_letter for w in range(n_words)])
    train = torch.tensor([(w % per_letter) >= n_test for w in range(n_words)])
    absorbed = list(range(absorbed_test_words))  # test words 0..2 of letter a
    w_dec = torch.cat([eye[:2], eye[2:]])  # latent 0, 1: letters; latent 2 + w: word w
    w_enc = w_dec.T.clone()
    for w in absorbed:
        w_enc[2 + w, 0] = -2.0  # word w switches the "a" latent off...
        w_dec[2 + w] = eye[0] + eye[2 + w]  # ...and its own latent writes the letter
    sae = _planted_sae(w_dec, w_enc=w_enc)
    return sae, LetterData(x, letters, train, [f"w{w}" for w in range(n_words)])


def test_planted_absorption_gives_the_designed_rate():
    from saetool.bench.absorption import AbsorptionOptions, absorption_scores, ground_truth

    opts = AbsorptionOptions(min_words=5)
    sae, data = _planted_letters()
    truth = ground_truth(data, opts)
    assert truth.accuracy == 1.0 and truth.letters == [0, 1]
    res = absorption_scores(sae, data, truth, opts)
    by = {r["letter"]: r for r in res.details["letters"]}
    assert by["a"]["main_latents"] == [0] and by["b"]["main_latents"] == [1]
    assert by["a"]["full_absorption_rate"] == pytest.approx(0.3) and by["b"]["full_absorption_rate"] == 0.0
    assert by["a"]["absorption_fraction"] == pytest.approx(0.3) and by["a"]["absorbed_words"] == ["w0", "w1", "w2"]
    assert res.metrics["absorption_rate"] == pytest.approx(0.15) and res.metrics["main_latent_f1"] == pytest.approx((2 * 7 / 17 + 1) / 2)
    assert not res.notes
    none, _ = _planted_letters(absorbed_test_words=0)
    assert absorption_scores(none, data, truth, opts).metrics["absorption_rate"] == 0.0


def test_absorption_runs_through_the_model(tiny_sae, tiny_acts, tmp_path):
    config = BenchConfig(evals=["absorption"], options={"absorption": {"words": "200", "icl": "1"}})
    res = run_bench([tiny_sae], config, tmp_path / "b.h5", acts=tiny_acts, progress=False)
    r = res.results[("sae", "absorption")]
    assert r.metrics["probe_accuracy"] < 0.8 and "first letters weakly" in r.notes[0]  # a random 2-layer model knows no spelling
    assert res.value("random", "absorption", "probe_accuracy") == r.metrics["probe_accuracy"]


# -- autointerp -----------------------------------------------------------------------------
def test_autointerp_scores_live_features_with_intervals(tiny_sae, tiny_acts, tmp_path):
    config = BenchConfig(evals=["autointerp"], num_tokens=2048, options={"autointerp": {"features": "8"}})
    res = run_bench([tiny_sae], config, tmp_path / "b.h5", acts=tiny_acts, progress=False)
    for name in ("sae", "random"):
        r = res.results[(name, "autointerp")]
        assert r.details["labeler"] == "tokens" and len(r.details["features"]) == 8
        scores = [f["detection"] for f in r.details["features"] if f["detection"] is not None]
        assert r.metrics["detection"] == pytest.approx(sum(scores) / len(scores)) and r.metrics["scored"] == len(scores)
        assert r.metrics["detection_ci_low"] <= r.metrics["detection"] <= r.metrics["detection_ci_high"]


# -- real model -----------------------------------------------------------------------------
def test_trained_sae_beats_the_random_floor_on_smollm2(smollm2, smollm2_acts, smollm2_sae, tmp_path):
    """Every eval on real SmolLM2 activations (layer 3), the trained SAE above its random floor:
    core, stability, probing at every k (40 texts per class of 32 tokens, massive tokens left out
    of the pooling), absorption's main-latent F1 and autointerp's detection and fuzzing means (30
    latents). At these sizes the probing and autointerp margins are a few points (0.57 vs 0.52 at
    k = 1, detection 0.69 vs 0.66): with 10 texts per class or 10 latents the floor came out ahead
    on some of them, so the sizes here are the smallest that separate (about 20 CPU-s of bench)."""
    from tests.conftest import _train

    other = _train(smollm2_acts, 512, 16, tmp_path)  # the same recipe again: a partner for stability
    options = {"core": {"num_tokens": "256"}, "probing": {"per_class": "40", "context": "32"},
               "absorption": {"words": "800", "icl": "0", "test_fraction": "0.4", "min_probe_f1": "0.3"}, "autointerp": {"features": "30"}}
    config = BenchConfig(num_tokens=2048, context_size=64, options=options)
    res = run_bench([smollm2_sae, other], config, tmp_path / "b.h5", acts=smollm2_acts, progress=False)
    assert res.evals == ["core", "stability", "probing", "absorption", "autointerp"]
    trained, floor = "sae-1", "random"

    def v(ev, metric, name=trained):
        return res.value(name, ev, metric)

    assert v("core", "fvu") < v("core", "fvu", floor) and v("core", "ce_loss_recovered") > v("core", "ce_loss_recovered", floor)
    assert v("stability", "mmcs") > v("stability", "mmcs", floor)
    for k in (1, 2, 5, 20):
        assert v("probing", f"top_{k}_accuracy") > v("probing", f"top_{k}_accuracy", floor), k
    assert v("absorption", "main_latent_f1") > v("absorption", "main_latent_f1", floor)
    for name in ("detection", "fuzzing"):
        assert v("autointerp", name) > v("autointerp", name, floor), name
    assert v("autointerp", "detection_ci_low") > 0.5 and v("autointerp", "scored") >= 25


# -- agreement with sae-bench (runs where sae-bench and scikit-learn are installed) ----------
@pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-learn 1.8+ on the penalty= sae-bench passes
def test_sparse_probing_agrees_with_sae_bench():
    """The same pooled latents and tasks through sae-bench's own top-k selection and scikit-learn
    probe: the same latents, accuracies within one test text per task and 0.01 on average (the
    tolerance docs/bench.md states). Weak planted signals keep the accuracies off 0.5 and 1."""
    pt = pytest.importorskip("sae_bench.evals.sparse_probing.probe_training")
    from saetool.bench.probing import pooled_latents, probe_accuracies, tasks

    sae = _planted_sae(torch.eye(16))
    ks = (1, 2, 5, 20)
    diffs, values = [], []
    for seed, signal in ((0, 0.1), (1, 0.15), (2, 0.3)):
        s = _planted_probe_set(n_per_class=30, seed=seed, signal=signal)
        pooled = pooled_latents(sae, s.acts)
        task_list = tasks(s.labels, s.train, seed=seed)
        for (label, tr_pos, tr_neg, te_pos, te_neg), row in zip(task_list, probe_accuracies(pooled, task_list, ks, C=1.0)):
            x_tr, x_te = pooled[tr_pos + tr_neg].float(), pooled[te_pos + te_neg].float()
            y_tr = torch.tensor([1] * len(tr_pos) + [0] * len(tr_neg), dtype=torch.int)
            y_te = torch.tensor([1] * len(te_pos) + [0] * len(te_neg), dtype=torch.int)
            for k in (k for k in ks if k <= 16):
                mask = pt.get_top_k_mean_diff_mask(x_tr, y_tr, k)
                assert sorted(torch.nonzero(~mask).flatten().tolist()) == sorted(row["top_latents"][:k])
                _, theirs = pt.train_sklearn_probe(pt.apply_topk_mask_reduce_dim(x_tr, mask), y_tr, pt.apply_topk_mask_reduce_dim(x_te, mask), y_te)
                assert abs(row[f"top_{k}"] - theirs) <= 1 / len(y_te) + 1e-9, (seed, label, k)
                diffs.append(abs(row[f"top_{k}"] - theirs))
                values.append(theirs)
    assert sum(diffs) / len(diffs) <= 0.01
    assert min(values) < 0.8 and max(values) == 1.0  # the comparison covers hard and easy tasks


def test_absorption_agrees_with_sae_bench_word_by_word(tiny_sae):
    """sae-bench's FeatureAbsorptionCalculator on the same activations, probe direction and main
    latents (a stand-in model hands it the rows): the same full-absorption flags and fractions."""
    fa = pytest.importorskip("sae_bench.evals.absorption.feature_absorption_calculator")
    from saetool.bench.absorption import AbsorptionOptions, word_absorption

    class RowsModel:  # what calculate_absorption asks of a HookedTransformer, serving fixed rows
        def __init__(self, rows):
            self.rows = rows

        def to_tokens(self, text):
            return torch.zeros(1, 3, dtype=torch.long)

        def run_with_cache(self, prompts, names_filter):
            acts = torch.zeros(len(prompts), 3, self.rows.shape[1])
            acts[:, -2] = self.rows[[int(p.rstrip(":").split()[-1][1:]) for p in prompts]]
            return None, {names_filter[0]: acts}

    def compare(sae, x, direction, main):
        words = [f"w{i}" for i in range(len(x))]
        calc = fa.FeatureAbsorptionCalculator(RowsModel(x), icl_word_list=["x1", "x2"], max_icl_examples=0, batch_size=16)
        theirs = calc.calculate_absorption(sae, words, direction, main, layer=0, show_progress=False).word_results
        with torch.no_grad():
            codes = sae.encode(x)
        full, fraction = word_absorption(codes, x, sae.W_dec.detach(), direction / direction.norm(), main, AbsorptionOptions())
        assert full.tolist() == [r.is_full_absorption for r in theirs]
        assert fraction.tolist() == pytest.approx([float(r.absorption_fraction) for r in theirs], abs=1e-5)
        return full, fraction

    sae, data = _planted_letters()
    from saetool.bench.absorption import AbsorptionOptions as O, ground_truth

    direction = ground_truth(data, O()).directions[0]
    full, _ = compare(sae, data.x, direction, [0])
    assert int(full.sum()) == 3
    gen = torch.Generator().manual_seed(0)
    real = load_sae(tiny_sae)
    x = torch.randn(64, real.cfg.d_in, generator=gen) * 3
    direction = real.W_dec[5].detach() + 0.5 * torch.randn(real.cfg.d_in, generator=gen) / real.cfg.d_in ** 0.5
    full, fraction = compare(real, x, direction, [5, 9])
    assert 0 < float(fraction.mean()) < 1
