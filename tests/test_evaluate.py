"""``saetool evaluate``: metrics against independent computations, sae_lens agreement, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_clean_error, run_cli

N_TOKENS = 256  # 4 windows of 64: keep the model passes cheap


@pytest.fixture(scope="module")
def evaluation(smollm2_sae, smollm2_acts, smollm2):
    from saetool.evaluate.api import EvalConfig, evaluate_sae

    config = EvalConfig(num_tokens=N_TOKENS, batch_size=4, dead_threshold=0.0, dense_threshold=0.05)
    return evaluate_sae(smollm2_sae, smollm2_acts, config, model=smollm2)


@pytest.fixture(scope="module")
def tiny_evaluation(tiny_sae, tiny_acts, tiny_gpt2):
    from saetool.evaluate.api import EvalConfig, evaluate_sae

    config = EvalConfig(num_tokens=N_TOKENS, batch_size=4, dead_threshold=0.0, dense_threshold=0.05)
    return evaluate_sae(tiny_sae, tiny_acts, config, model=tiny_gpt2)


def _check_activation_metrics(evaluation, sae_path, acts_path, hook):
    """The SAE metrics equal a float64 numpy computation on the first ``N_TOKENS`` rows."""
    import torch

    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.io import load_sae

    sae = load_sae(sae_path)
    with ActivationsFile(acts_path) as acts:
        x = acts.read(hook, 0, N_TOKENS)
    with torch.no_grad():
        codes = sae.encode(x).numpy().astype(np.float64)
        recon = sae.decode(sae.encode(x)).numpy().astype(np.float64)
    y = x.numpy().astype(np.float64)
    sq = ((recon - y) ** 2).sum()
    var = ((y - y.mean(0)) ** 2).sum()
    cos = (recon * y).sum(1) / (np.linalg.norm(recon, axis=1) * np.linalg.norm(y, axis=1))
    freq = (codes != 0).mean(0)
    m = evaluation.metrics
    assert evaluation.n_rows == N_TOKENS
    assert m["mse"] == pytest.approx(sq / y.size, rel=1e-6)
    assert m["fvu"] == pytest.approx(sq / var, rel=1e-6)
    assert m["explained_variance"] == pytest.approx(1 - sq / var, rel=1e-6)
    assert m["cosine_similarity"] == pytest.approx(cos.mean(), rel=1e-6)
    assert m["l0"] == pytest.approx((codes != 0).sum(1).mean())
    assert m["dead_fraction"] == pytest.approx((freq == 0).mean())
    assert m["dense_fraction"] == pytest.approx((freq > 0.05).mean())
    return m


def _check_ce_clean(evaluation, acts_path, model):
    """``ce_loss_clean`` is the model's own next-token loss on the same windows (BOS targets left out)."""
    import torch

    from saetool.artifacts.activations import ActivationsFile

    with ActivationsFile(acts_path) as acts:
        ids = torch.as_tensor(acts.sequences()[: N_TOKENS // acts.context_size], dtype=torch.long)
    logits = model.logits(ids).float()
    bos = model.tokenizer.bos_token_id
    keep = ids[:, :-1] != bos
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][keep], ids[:, 1:][keep])
    m = evaluation.metrics
    assert evaluation.n_positions == int(keep.sum())
    assert m["ce_loss_clean"] == pytest.approx(float(loss), rel=1e-4)
    recovered = (m["ce_loss_zero"] - m["ce_loss_sae"]) / (m["ce_loss_zero"] - m["ce_loss_clean"])
    assert m["ce_loss_recovered"] == pytest.approx(recovered)
    return m


def test_activation_metrics_match_numpy(evaluation, smollm2_sae, smollm2_acts):
    m = _check_activation_metrics(evaluation, smollm2_sae, smollm2_acts, "blocks.3.hook_resid_post")
    # a real SAE: good but not perfect, TopK k=16
    assert 0.8 < m["explained_variance"] < 1.0 and m["l0"] <= 16


def test_activation_metrics_match_numpy_on_the_tiny_model(tiny_evaluation, tiny_sae, tiny_acts):
    m = _check_activation_metrics(tiny_evaluation, tiny_sae, tiny_acts, "blocks.1.hook_resid_post")
    assert 0 < m["explained_variance"] < 1.0 and 0 < m["l0"] <= 8  # TopK k=8


def test_several_saes_share_the_clean_and_ablated_passes(tiny_evaluation, tiny_sae, tiny_acts, tiny_gpt2):
    """evaluate_saes gives every SAE the numbers evaluate_sae gives it alone, with the model run
    clean and zero-ablated once per batch: 2 + n_saes passes per batch instead of 3 x n_saes."""
    import torch

    from saetool.bench.random_sae import random_like
    from saetool.evaluate.api import EvalConfig, evaluate_sae, evaluate_saes
    from saetool.sae.io import load_sae

    config = EvalConfig(num_tokens=N_TOKENS, batch_size=4, dead_threshold=0.0, dense_threshold=0.05)
    sae = load_sae(tiny_sae)
    floor = random_like(sae, seed=3)
    alone = evaluate_sae("floor", tiny_acts, config, sae=floor, model=tiny_gpt2)
    calls = []
    logits = tiny_gpt2.logits
    tiny_gpt2.logits = lambda *a, **k: calls.append(1) or logits(*a, **k)
    try:
        both = evaluate_saes({"sae": sae, "floor": floor}, tiny_acts, config, model=tiny_gpt2)
    finally:
        del tiny_gpt2.logits
    n_batches = -(-N_TOKENS // 64 // 4)  # tiny_acts: windows of 64 tokens
    assert len(calls) == n_batches * (2 + 2)
    assert both["sae"].metrics == tiny_evaluation.metrics and both["floor"].metrics == alone.metrics
    assert both["sae"].metrics_ordinary == tiny_evaluation.metrics_ordinary and both["floor"].n_positions == alone.n_positions
    assert both["floor"].metrics["ce_loss_sae"] != both["sae"].metrics["ce_loss_sae"]
    assert both["floor"].metrics["ce_loss_zero"] == both["sae"].metrics["ce_loss_zero"] and torch.isfinite(torch.tensor(alone.metrics["kl_div_sae"]))


def test_ce_clean_equals_the_models_own_loss(evaluation, smollm2_acts, smollm2):
    m = _check_ce_clean(evaluation, smollm2_acts, smollm2)
    assert max(m["ce_loss_clean"], m["ce_loss_sae"]) < m["ce_loss_zero"]  # a good SAE may match clean within noise on few positions
    assert 0.5 < m["ce_loss_recovered"] < 1.05
    assert 0 < m["kl_div_sae"] < m["kl_div_zero"]


def test_ce_clean_equals_the_models_own_loss_on_the_tiny_model(tiny_evaluation, tiny_acts, tiny_gpt2):
    m = _check_ce_clean(tiny_evaluation, tiny_acts, tiny_gpt2)
    assert m["kl_div_sae"] > 0 and m["kl_div_zero"] > 0


def test_sae_lens_agrees_on_ce_loss_recovered(smollm2_sae, smollm2_acts, tmp_path):
    """Export to SAELens, run sae_lens's own evaluation on the same windows, compare."""
    import torch
    from sae_lens import SAE as LensSAE
    from sae_lens.evals import get_downstream_reconstruction_metrics
    from sae_lens.training.activation_scaler import ActivationScaler

    from saetool.artifacts.activations import ActivationsFile
    from saetool.models.registry import load_model

    out = tmp_path / "lens"
    proc = run_cli("export", str(smollm2_sae), "--format", "saelens", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("evaluate", str(out), str(smollm2_acts), "--num-tokens", str(N_TOKENS), "--json")
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)["metrics"]

    with ActivationsFile(smollm2_acts) as acts:
        ids = torch.as_tensor(acts.sequences()[: N_TOKENS // acts.context_size], dtype=torch.long)

    class Tokens:  # all sae_lens needs from an activation store here
        def get_batch_tokens(self, n):
            return ids[:n]

    lens_sae = LensSAE.load_from_disk(str(out), device="cpu")
    bridge = load_model("smollm2-135m", backend="transformer-lens").bridge
    bos = bridge.tokenizer.bos_token_id
    theirs = get_downstream_reconstruction_metrics(
        lens_sae, bridge, Tokens(), ActivationScaler(), compute_kl=True, compute_ce_loss=True,
        n_batches=1, eval_batch_size_prompts=len(ids), ignore_tokens=[bos],
    )
    assert ours["ce_loss_recovered"] == pytest.approx(theirs["ce_loss_score"], rel=0.02)
    assert ours["ce_loss_clean"] == pytest.approx(theirs["ce_loss_without_sae"], rel=1e-3)
    assert ours["ce_loss_sae"] == pytest.approx(theirs["ce_loss_with_sae"], rel=1e-3)
    assert ours["ce_loss_zero"] == pytest.approx(theirs["ce_loss_with_ablation"], rel=1e-3)
    # sae_lens also averages KL over each window's last position; ours leaves it out
    assert ours["kl_div_sae"] == pytest.approx(theirs["kl_div_with_sae"], rel=0.1)


@pytest.mark.parametrize("model_fixture", ["tiny_gpt2", pytest.param("smollm2", marks=pytest.mark.slow)])
def test_transcoder_splices_the_output_hook(model_fixture, request):
    """A transcoder's output replaces hook_out at every non-BOS position (checked against a manual edit)."""
    import torch

    from saetool.evaluate.api import lm_batch
    from saetool.sae.config import SAEConfig
    from saetool.sae.model import SAE

    model = request.getfixturevalue(model_fixture)  # the tiny GPT-2 shares SmolLM2's tokenizer
    d = model.d_model
    cfg = SAEConfig(arch="transcoder", d_in=d, d_sae=4, hook="blocks.1.hook_resid_mid", hook_out="blocks.1.hook_mlp_out", activation="relu")
    sae = SAE(cfg)
    with torch.no_grad():
        sae.b_dec.fill_(0.5)  # zero encoder: the output is the constant b_dec
    bos = model.tokenizer.bos_token_id
    ids = torch.tensor([[bos, 504, 1345, 314, 260, 3458, 28, 7]])
    batch, _ = lm_batch(sae, model, ids, bos)

    def manual(t):
        out = torch.full_like(t, 0.5)
        out[:, 0] = t[:, 0]  # BOS keeps the clean value
        return out

    logits = model.logits(ids, edit_hooks={"blocks.1.hook_mlp_out": manual}).float()
    nll = torch.nn.functional.cross_entropy(logits[0, 1:-1], ids[0, 2:], reduction="none")
    assert batch.nll_clean.numel() == ids.shape[1] - 2
    assert torch.allclose(batch.nll_sae, nll.double(), atol=1e-4)
    zeroed = model.logits(ids, edit_hooks={"blocks.1.hook_mlp_out": torch.zeros_like}).float()
    assert torch.allclose(batch.nll_zero, torch.nn.functional.cross_entropy(zeroed[0, 1:-1], ids[0, 2:], reduction="none").double(), atol=1e-4)


def test_sae_metrics_and_completion_metrics_are_kept_apart():
    from saetool.errors import SaetoolError
    from saetool.evaluate.metrics import sae_metrics
    from saetool.steer.metrics import completion_metrics, get_metric

    ours = sae_metrics()
    assert {"mse", "explained_variance", "ce_loss_recovered", "kl_div_sae"} <= set(ours)
    assert "refusal" not in ours and "mse" not in completion_metrics()
    with pytest.raises(SaetoolError, match="SAE metric"):
        get_metric("mse")
    with pytest.raises(SaetoolError, match="completion metric"):
        sae_metrics(["refusal"])


def test_sweep_config_refuses_sae_metrics(tmp_path):
    from saetool.errors import SaetoolError
    from saetool.steer.sweep_config import load_sweep_config
    from tests.test_sweep import TINY, tiny_config

    load_sweep_config(tiny_config(tmp_path))  # the completion metrics are accepted
    path = tiny_config(tmp_path, TINY.replace("metrics: [refusal, helpfulness, coherence]", "metrics: [refusal, explained_variance]"))
    with pytest.raises(SaetoolError, match="unknown metric 'explained_variance'"):
        load_sweep_config(path)


def test_bad_input_one_line_errors(smollm2_sae, smollm2_acts, tiny_gpt2_dir, tmp_path):
    # an SAE whose d_in does not match the activations
    wrong = tmp_path / "wrong.h5"
    _tiny_sae_artifact(wrong, d_in=32, hook="blocks.3.hook_resid_post")
    assert_clean_error(run_cli("evaluate", str(wrong), str(smollm2_acts), "--no-model"), "d_in=32")
    # an SAE reading a hook the activations do not have
    other = tmp_path / "other.h5"
    _tiny_sae_artifact(other, d_in=576, hook="blocks.5.hook_resid_post")
    assert_clean_error(run_cli("evaluate", str(other), str(smollm2_acts), "--no-model"), "blocks.5.hook_resid_post")
    # the model does not have the SAE's layer / width
    assert_clean_error(run_cli("evaluate", str(smollm2_sae), "--model", str(tiny_gpt2_dir), "-n", "64"), "does not exist")
    assert_clean_error(run_cli("evaluate", str(smollm2_sae), "--num-tokens", "0"), "--num-tokens")
    assert_clean_error(run_cli("evaluate", str(smollm2_sae), "--skip-tokens", "-1"), "--skip-tokens must be 0 or more")
    assert_clean_error(run_cli("evaluate", str(smollm2_sae), str(smollm2_acts), "--skip-tokens", "64", "--no-model"), "--skip-tokens picks text of --corpus")


def _tiny_sae_artifact(path, *, d_in: int, hook: str) -> None:
    import torch

    from saetool.artifacts.provenance import build_provenance
    from saetool.sae.config import SAEConfig
    from saetool.sae.io import write_sae_artifact
    from saetool.sae.model import SAE

    sae = SAE(SAEConfig(arch="relu", d_in=d_in, d_sae=8, hook=hook, model="smollm2-135m"))
    with torch.no_grad():
        sae.W_enc.normal_()
        sae.W_dec.normal_()
    write_sae_artifact(path, sae, provenance=build_provenance(model="smollm2-135m", hooks=[hook]))


def test_corpus_text_the_sae_trained_on_is_named_as_such(smollm2_sae, tmp_path):
    """evaluate --corpus without --skip-tokens reads the SAE's own training text: said, with the fix."""
    from saetool.evaluate.overlap import overlap_warning, training_ranges

    (corpus, first, stop), = training_ranges(smollm2_sae)
    assert (corpus, first, stop) == ("bbc-news", 0, 2048)
    message = overlap_warning(smollm2_sae, "bbc-news", 0, 1024)
    assert message.endswith("the figures are on its training text, not held out (--skip-tokens 2048 evaluates text it did not see)")
    assert overlap_warning(smollm2_sae, "bbc-news", 2048, 1024) is None and overlap_warning(smollm2_sae, "kjv", 0, 1024) is None
    assert training_ranges(tmp_path) == [] and training_ranges(tmp_path / "nothing.h5") == []


def test_evaluating_on_the_training_file_is_named_as_such(smollm2_sae, smollm2_acts, tmp_path):
    proc = run_cli("evaluate", str(smollm2_sae), str(smollm2_acts), "--no-model", "-n", "256")
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stderr.split())
    assert f"{Path(smollm2_acts).name} is the activations file {Path(smollm2_sae).name} trained on: the figures are on its training text" in said
    from saetool.evaluate.overlap import training_file_warning

    assert training_file_warning(smollm2_sae, tmp_path / "other.h5") is None
