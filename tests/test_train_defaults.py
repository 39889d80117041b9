"""Training defaults: the width-scaled learning rate and wsd schedule, per-hook
initialisation, dictionary recovery without --lr, and a checklist that agrees
with `saetool evaluate`."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.train.architectures import get_architecture
from saetool.train import TrainConfig, train_on_batches
from saetool.train.initialize import init_seed
from saetool.train.schedules import budget_lr_factor, default_lr, former_short_run_max_factor
from saetool.train.source import Batch
from saetool.train.synthetic import sparse_dictionary_data, write_activations
from saetool.train.trainer import Trainer

HOOK = "blocks.3.hook_resid_post"


def _batches(x: torch.Tensor, size: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [x[torch.randint(0, len(x), (size,), generator=g)] for _ in range(steps)]


def test_init_seed_is_a_stable_hash_of_seed_and_hook():
    assert init_seed(0, HOOK) == init_seed(0, HOOK)
    assert init_seed(0, HOOK) != init_seed(0, "blocks.4.hook_resid_post") != init_seed(1, "blocks.4.hook_resid_post")
    assert init_seed(0, "blocks.3.hook_resid_mid", "blocks.3.hook_mlp_out") != init_seed(0, "blocks.3.hook_resid_mid")
    assert init_seed(0, HOOK) == 1771569240194299102  # BLAKE2b: the same on every machine and Python (hash() is salted)


def test_two_hooks_start_from_different_weights_and_one_hook_from_the_same():
    x = torch.randn(256, 16)
    config = TrainConfig(arch="topk", d_sae=32, k=4, batch_size=64, lr=0.0, seed=0)  # lr 0: the saved decoder is the initial one

    def decoder(hook: str) -> torch.Tensor:
        return train_on_batches(_batches(x, 64, 2), config, steps=2, hook=hook).sae.W_dec.detach()

    a, b, again = decoder("blocks.3.hook_resid_post"), decoder("blocks.4.hook_resid_post"), decoder("blocks.3.hook_resid_post")
    assert torch.equal(a, again)
    same_index = torch.nn.functional.cosine_similarity(a, b, dim=1).abs()
    assert float(same_index.mean()) < 0.3  # independent random rows in 16 dimensions: ~0.2 on average


def test_budget_factor_doubles_short_runs_and_fades_to_one_by_256_steps_up_to_4x():
    steps = [1, 32, 64, 100, 128, 256, 1024]
    assert [budget_lr_factor(s) for s in steps] == pytest.approx([2, 2, 2, 1.6, 2**0.5, 1, 1])
    assert [budget_lr_factor(s, max_factor=1.0) for s in steps] == [1.0] * len(steps)
    assert budget_lr_factor(None) == 1.0  # budget unknown: the long-run rate


def test_wide_saes_runs_count_as_short_for_longer():
    steps = [64, 256, 512, 1024, 4096]
    assert [budget_lr_factor(s, width=16) for s in steps] == pytest.approx([2, 2**0.5, 1, 1, 1])  # 16x: long from 512 steps
    assert budget_lr_factor(128, width=16) == 2 and budget_lr_factor(128, width=8) == pytest.approx(2**0.75)
    assert [budget_lr_factor(s, width=8) for s in steps] == pytest.approx([2, 2**0.25, 1, 1, 1])
    assert [budget_lr_factor(s, width=w) for s in steps for w in (32, 128)] == [budget_lr_factor(s, width=16) for s in steps for _ in range(2)]  # wider than measured: as 16x
    assert [budget_lr_factor(s, width=w) for s in steps for w in (0.5, 1, 4)] == [budget_lr_factor(s) for s in steps for _ in range(3)]  # up to 4x: the steps alone
    assert budget_lr_factor(256, max_factor=1.0, width=16) == 1.0


def test_short_runs_raise_the_rate_at_every_width():
    topk = get_architecture("topk")
    # SmolLM2 (d_in 576), reference 1.5e-3: 4x and 16x at 64 steps get twice their width-scaled rate, at 1024 steps not
    assert topk.lr_for(2304, 64, d_in=576) == pytest.approx(2 * 1.5e-3 * (16384 / 2304) ** 0.5) == pytest.approx(8e-3)
    assert topk.lr_for(9216, 64, d_in=576) == pytest.approx(2 * 1.5e-3 * (16384 / 9216) ** 0.5) == pytest.approx(4e-3)
    assert topk.lr_for(2304, 256, d_in=576) == pytest.approx(4e-3)  # 4x: long from 256 steps ...
    assert topk.lr_for(9216, 256, d_in=576) == pytest.approx(2**0.5 * 2e-3)  # ... 16x: still x1.41
    assert topk.lr_for(9216, 1024, d_in=576) == topk.lr_for(9216, None, d_in=576) == topk.lr_for(9216, 256) == pytest.approx(1.5e-3 * (16384 / 9216) ** 0.5)
    assert topk.lr_for(2304, 64, d_in=576, max_factor=1.0) == pytest.approx(4e-3)


def test_checkpoints_from_before_resume_with_the_former_width_rule():
    assert [former_short_run_max_factor(w * 576, 576) for w in (1, 4, 8, 16, 64)] == pytest.approx([1, 1, 2**0.5, 2, 2])
    assert former_short_run_max_factor(16 * 576, 576, limit=1.0) == 1.0


@pytest.mark.parametrize(("d_in", "steps", "factor"), [(16, 256, 1.0), (16, 128, 2**0.5), (64, 128, 1.0), (32, 64, 2**0.5)])
def test_a_checkpoint_without_its_rate_resumes_with_the_former_rule(d_in, steps, factor):
    """A checkpoint from before the encoder had its own rate stored no rate: it resumes
    with the former reference and sqrt(256 / steps) capped by the former width rule,
    where today's rule differs (16x at 256 steps: x1.41 today, x1 then)."""
    trainer = Trainer(TrainConfig(arch="topk", d_sae=256, k=4, batch_size=64), d_in=d_in, total_steps=steps)
    trainer._restore_derived({"train_config": {}})
    assert trainer.encoder_lr_ratio == 1.0 and trainer.lr == pytest.approx(factor * default_lr(1e-3, 256))


def _threshold_scale(trainer) -> float:
    names = [name for name, _ in trainer.sae.named_parameters()]
    return trainer.optimizer.lr_scales[names.index("threshold")]


def test_jumprelu_thresholds_step_at_30x_and_old_checkpoints_keep_100x():
    """Thresholds learn 30x faster than the weights (100x left up to a fifth of the features
    never firing at 4x); a checkpoint from before the trainer recorded the scale resumes at
    100x, a newer one at its own."""
    x, _ = sparse_dictionary_data(1024, 16, 32, active=3, seed=2)
    result = train_on_batches(_batches(x, 64, 4), TrainConfig(arch="jumprelu", d_sae=64, batch_size=64), steps=4)
    assert result.training["param_lr_scales"] == {"threshold": 30.0}
    for meta, scale in (({"train_config": {}}, 100.0), ({"train_config": {}, "param_lr_scales": {"threshold": 50.0}}, 50.0)):
        trainer = Trainer(TrainConfig(arch="jumprelu", d_sae=64, batch_size=64), d_in=16, total_steps=4)
        trainer._restore_derived(meta)
        trainer.start([Batch(x=_batches(x, 64, 1)[0])])
        assert _threshold_scale(trainer) == scale
    topk = Trainer(TrainConfig(arch="topk", d_sae=64, k=4, batch_size=64), d_in=16, total_steps=4)
    topk._restore_derived({"train_config": {}})
    assert topk.param_lr_scales == {}
    from saetool.train.architectures import JumpReLUArchitecture

    class Inherits(JumpReLUArchitecture):
        pass

    class OwnScales(JumpReLUArchitecture):
        param_lr_scales = {"threshold": 30.0}

    assert Inherits().former_param_lr_scales() == {"threshold": 100.0}
    assert OwnScales().former_param_lr_scales() == {"threshold": 30.0}


def test_only_the_topk_family_raises_the_rate_of_short_runs():
    factors = {name: get_architecture(name).short_run_lr_factor for name in ("topk", "batchtopk", "matryoshka", "transcoder", "relu", "jumprelu")}
    assert factors == {"topk": 2.0, "batchtopk": 2.0, "matryoshka": 2.0, "transcoder": 2.0, "relu": 1.0, "jumprelu": 1.0}
    x, _ = sparse_dictionary_data(1024, 16, 32, active=3, seed=2)
    jump = train_on_batches(_batches(x, 64, 8), TrainConfig(arch="jumprelu", d_sae=256, batch_size=64), steps=8)
    assert jump.training["lr"] == pytest.approx(default_lr(3e-4, 256))  # 16x, 8 steps: still jumprelu's reference rate
    topk = train_on_batches(_batches(x, 64, 8), TrainConfig(arch="topk", d_sae=256, k=4, batch_size=64), steps=8)
    assert topk.training["lr"] == pytest.approx(2 * default_lr(1.5e-3, 256))  # the same run as TopK: twice its rate
    # the trainer passes the width: 16x d_in at 256 steps still gets sqrt(2), 4x none
    wide, narrow = (Trainer(TrainConfig(arch="topk", d_sae=256, k=4, batch_size=64), d_in=d_in, total_steps=256) for d_in in (16, 64))
    assert wide.lr == pytest.approx(2**0.5 * default_lr(1.5e-3, 256)) and narrow.lr == pytest.approx(default_lr(1.5e-3, 256))


def test_defaults_use_the_width_scaled_lr_and_the_wsd_schedule():
    x, _ = sparse_dictionary_data(2048, 16, 32, active=3, seed=2)
    config = TrainConfig(arch="topk", d_sae=64, k=4, batch_size=64, log_every=1)
    result = train_on_batches(_batches(x, 64, 40), config, steps=40)
    expected = default_lr(get_architecture("topk").default_lr, 64, 40, 2.0)  # 4x d_in, 40 steps: the short-run factor's 2
    assert result.training["lr"] == pytest.approx(expected) and result.config.lr_schedule == "wsd"
    lrs = result.history["lr"]
    assert expected == pytest.approx(2 * default_lr(get_architecture("topk").default_lr, 64))
    assert lrs[0] == pytest.approx(expected / 2)  # 2 warmup steps (5% of 40)
    assert list(lrs[2:32]) == pytest.approx([expected] * 30)  # stable (steps 2-31) ...
    assert lrs[32] == pytest.approx(expected) and lrs[33] < expected and lrs[-1] == pytest.approx(expected / 8)  # ... then down over the last 8 steps (20%)
    cosine = train_on_batches(_batches(x, 64, 40), TrainConfig(arch="topk", d_sae=64, k=4, batch_size=64, log_every=1, lr=1e-3, lr_schedule="cosine"), steps=40)
    assert cosine.training["lr"] == 1e-3  # --lr given: no budget factor
    assert cosine.history["lr"][20] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(18 / 38 * torch.pi)).item()), rel=1e-4)


@pytest.mark.slow  # trains to convergence (many seconds on 2 cores)
def test_default_settings_recover_a_sparse_dictionary():
    """256 features in d=64, ~5 active (the issue's case on a third of its 1.5M
    tokens; benchmarks/train_quality.py runs the full size): no --lr given."""
    x, dictionary = sparse_dictionary_data(65536, 64, 256, active=5, seed=0)
    config = TrainConfig(arch="topk", d_sae=256, k=8, batch_size=2048, seed=0)
    result = train_on_batches(_batches(x, 2048, 250), config, steps=250)
    decoder = torch.nn.functional.normalize(result.sae.W_dec.detach(), dim=1)
    mmcs = float((dictionary @ decoder.T).max(dim=1).values.mean())
    assert mmcs >= 0.95, mmcs


def test_checklist_names_and_values_agree_with_evaluate(tmp_path):
    from saetool.evaluate.api import EvalConfig, evaluate_sae

    x, _ = sparse_dictionary_data(4096 + 1024, 16, 32, active=3, seed=3)
    train, held = x[:4096], x[4096:]
    config = TrainConfig(arch="topk", d_sae=32, k=3, batch_size=128, seed=0)
    result = train_on_batches(_batches(train, 128, 30), config, steps=30, val=held, hook=HOOK)
    path = write_activations(tmp_path / "held.h5", {HOOK: held}, context_size=16)
    evaluation = evaluate_sae(None, path, EvalConfig(use_model=False, num_tokens=len(held)), sae=result.sae)  # type: ignore[arg-type]
    shown = {item.key: item.value for item in result.checklist}
    assert {"fvu", "explained_variance", "l0", "dead_fraction"} <= set(shown)
    for key in ("fvu", "explained_variance", "l0", "dead_fraction"):
        assert shown[key] == pytest.approx(evaluation.metrics[key], rel=1e-5, abs=1e-7), key
        assert result.training["final"][key] == shown[key]
    assert shown["fvu"] == pytest.approx(1 - shown["explained_variance"])
    assert result.metrics["rows"] == len(held) and result.metrics["heldout"] == 1.0
    assert "normalized_mse" not in evaluation.metrics and "mse" not in shown  # one name per meaning


def test_train_cli_checklist_presets_and_schedule_options(tmp_path):
    x, _ = sparse_dictionary_data(4096, 16, 32, active=3, seed=4)
    path = write_activations(tmp_path / "acts.h5", {HOOK: x}, context_size=32)
    proc = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--batch-size", "128", "--steps", "20", "--checklist", "seed002",
                   "--lr-schedule", "constant", "-o", str(tmp_path / "sae.h5"))
    assert proc.returncode == 0, proc.stderr
    assert "MSE on scaled inputs" in proc.stderr and "held-out rows" in proc.stderr and "50-100" in proc.stderr
    assert "FVU" in proc.stderr
    bad = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--steps", "2", "--lr-schedule", "linear", "-o", str(tmp_path / "x.h5"))
    assert_clean_error(bad, "--lr-schedule")
    bad = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--steps", "2", "--decay-fraction", "1.5", "-o", str(tmp_path / "x.h5"))
    assert_clean_error(bad, "--decay-fraction")
    bad = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--steps", "2", "--checklist", "seed9", "-o", str(tmp_path / "x.h5"))
    assert_clean_error(bad, "--checklist")


def _first_step(arch: str, **options) -> tuple[float, float]:
    """The largest change of the encoder (``W_enc`` and ``b_enc``, which must agree) and of
    ``b_dec`` in one Adam step (constant rate 1e-2, no warmup): Adam's first step moves
    every parameter with a gradient by its rate."""
    x = torch.randn(512, 16) + 3.0
    base = dict(arch=arch, d_sae=32, k=4, batch_size=64, seed=0, lr_schedule="constant", warmup_steps=0, normalize_inputs=False, val_fraction=0, **options)
    before = train_on_batches(_batches(x, 64, 1), TrainConfig(**base, lr=0.0), steps=1).sae
    after = train_on_batches(_batches(x, 64, 1), TrainConfig(**base, lr=1e-2), steps=1).sae
    w_enc, b_enc = ((after.W_enc - before.W_enc).detach().abs().max(), (after.b_enc - before.b_enc).detach().abs().max())
    assert float(w_enc) == pytest.approx(float(b_enc), rel=1e-3)
    return float(b_enc), float((after.b_dec - before.b_dec).detach().abs().max())


def test_the_topk_family_steps_its_encoder_at_a_third_of_the_decoder_rate():
    for arch in ("topk", "batchtopk", "matryoshka"):
        enc, dec = _first_step(arch)
        assert enc == pytest.approx(1e-2 / 3, rel=1e-3) and dec == pytest.approx(1e-2, rel=1e-3), arch
        assert get_architecture(arch).default_lr == 1.5e-3  # the decoder's reference rate
    enc, dec = _first_step("topk", encoder_lr_ratio=1.0)  # one rate, as before
    assert enc == pytest.approx(1e-2, rel=1e-3) and dec == pytest.approx(1e-2, rel=1e-3)
    enc, dec = _first_step("topk", encoder_lr_ratio=0.1)
    assert enc == pytest.approx(1e-3, rel=1e-3)
    enc, dec = _first_step("relu")  # not measured for an L1 penalty: one rate
    assert enc == pytest.approx(1e-2, rel=1e-3) and dec == pytest.approx(1e-2, rel=1e-3)


def test_dead_windows_a_quarter_of_the_run_for_reports_a_sixteenth_for_auxk():
    from saetool.train.schedules import default_aux_dead_tokens, default_dead_tokens

    # the quick start: 64 steps of 1,024 tokens
    assert default_dead_tokens(65536, 1024) == 16384 and default_aux_dead_tokens(65536, 1024, 16384) == 4096
    assert default_aux_dead_tokens(2048, 128, 512) == 512  # never longer than the reports' window
    assert default_aux_dead_tokens(8192, 8192, 8192) == 8192  # nor shorter than a batch
    assert default_aux_dead_tokens(10**9, 4096, 10**6) == 10**6 and default_dead_tokens(10**9, 4096) == 10**6  # long runs: 1M both
    from saetool.train.schedules import dead_tokens_from_steps

    assert dead_tokens_from_steps(100, 128) == 12800 and dead_tokens_from_steps(100, 128, world_size=2) == 25600  # --dead-steps


def test_auxk_trains_on_its_own_window_while_reports_count_dead_by_dead_tokens():
    x, _ = sparse_dictionary_data(4096, 16, 32, active=3, seed=0)
    # 256 latents, one active per token: at most 256 of them fire in two batches of 128 rows, so some are silent
    base = dict(arch="topk", d_sae=256, k=1, batch_size=128, lr=3e-3, log_every=1, seed=0, val_fraction=0)
    # nothing counts as dead for the reports; AuxK sees latents silent for 2 batches
    result = train_on_batches(_batches(x, 128, 40), TrainConfig(**base, dead_tokens=10**9, aux_dead_tokens=256), steps=40)
    assert result.training["dead_tokens"] == 10**9 and result.training["aux_dead_tokens"] == 256
    assert (result.history["dead_fraction_train"] == 0).all() and (result.history["aux_loss"][5:] > 0).any()
    # the reverse: latents counted dead after 2 batches, AuxK never trains them
    result = train_on_batches(_batches(x, 128, 40), TrainConfig(**base, dead_tokens=256, aux_dead_tokens=10**9), steps=40)
    assert result.history["dead_fraction_train"][-1] > 0 and (np.nan_to_num(result.history["aux_loss"]) == 0).all()


@pytest.mark.slow  # trains two 1,536-feature SAEs on SmolLM2 activations (about 15 s)
def test_default_auxk_leaves_fewer_features_never_firing_on_real_activations(smollm2_acts):
    """SmolLM2 layer 3, 128 steps of 256 tokens: the default AuxK (weight 0.25 over
    features silent for 4,096 tokens, a sixteenth of the run at least) against the
    former 1/32 over a quarter of the run (8,192 tokens), both reading the input
    uncentred, where features die (centred, neither leaves more than 0.2% never firing)."""
    import h5py

    with h5py.File(smollm2_acts, "r") as fh:
        x = torch.from_numpy(fh["activations/blocks.3.hook_resid_post"][:]).float()

    def never_fired(**options) -> float:
        config = TrainConfig(arch="topk", d_sae=1536, k=32, batch_size=256, seed=0, **options)
        sae = train_on_batches(_batches(x, 256, 128), config, steps=128).sae
        with torch.no_grad():
            return float((sae.encode(x) == 0).all(0).float().mean())

    default, former = never_fired(apply_b_dec_to_input=False), never_fired(aux_coeff=1 / 32, aux_dead_tokens=8192, apply_b_dec_to_input=False)
    assert default < 0.75 * former, (default, former)


@pytest.mark.slow  # trains two 1,536-feature SAEs on SmolLM2 activations (about 15 s)
def test_a_slower_encoder_leaves_fewer_features_never_firing_on_real_activations(smollm2_acts):
    """SmolLM2 layer 3, 128 steps of 256 tokens: the TopK defaults' rates (the encoder
    at a third of the decoder's, reference 1.5e-3) against the former ones (one rate,
    reference 1e-3), both without the short-run factor, at no cost in FVU."""
    import h5py

    with h5py.File(smollm2_acts, "r") as fh:
        x = torch.from_numpy(fh["activations/blocks.3.hook_resid_post"][:]).float()

    def scores(**options) -> tuple[float, float]:
        config = TrainConfig(arch="topk", d_sae=1536, k=32, batch_size=256, seed=0, **options)
        sae = train_on_batches(_batches(x, 256, 128), config, steps=128).sae
        with torch.no_grad():
            codes = sae.encode(x)
            fvu = float(((sae.decode(codes) - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
            return float((codes == 0).all(0).float().mean()), fvu

    from saetool.train.schedules import FORMER_TOPK_LR, TOPK_LR

    (dead, fvu), (dead_one, fvu_one) = scores(lr=default_lr(TOPK_LR, 1536)), scores(encoder_lr_ratio=1.0, lr=default_lr(FORMER_TOPK_LR, 1536))
    assert dead < 0.75 * dead_one and fvu < 1.05 * fvu_one, (dead, dead_one, fvu, fvu_one)


def _held_out_scores(sae, held: torch.Tensor) -> tuple[float, float]:
    """(FVU, fraction of features never active) on ``held``."""
    with torch.no_grad():
        f = sae.encode(held)
        fvu = float((sae.decode(f) - held).pow(2).sum() / (held - held.mean(0)).pow(2).sum())
    return fvu, float(((f != 0).sum(0) == 0).float().mean())


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka"])
def test_a_large_mean_kills_features_unless_the_input_is_centred(arch):
    """Activations with a large mean (Gemma 3's residual stream): an encoder that reads
    them uncentred starts every feature's pre-activation at its alignment with the
    mean, so the features pointing away from it never fire. Centred (the default:
    ``b_dec``, at the data's centre, subtracted first) they train as without the mean."""
    x, _ = sparse_dictionary_data(6144, 32, 128, active=4, seed=0)
    mean = torch.zeros(32)
    mean[0] = 30.0
    kw = dict(arch=arch, d_sae=128, k=4, batch_size=128, seed=0, val_fraction=0)
    runs = {}
    for name, data, centred in (("plain", x, True), ("centred", x + mean, True), ("uncentred", x + mean, False)):
        result = train_on_batches(_batches(data[:4096], 128, 100), TrainConfig(**kw, apply_b_dec_to_input=centred), steps=100)
        assert result.sae.cfg.apply_b_dec_to_input is centred  # the saved SAE encodes as it trained
        runs[name] = _held_out_scores(result.sae, data[4096:])
    (fvu_plain, _), (fvu_centred, never_centred), (fvu_uncentred, never_uncentred) = runs["plain"], runs["centred"], runs["uncentred"]
    assert abs(fvu_centred - fvu_plain) < 0.05 and fvu_uncentred > fvu_centred + 0.1
    assert never_centred < 0.1 and never_uncentred > 0.3  # away from the mean: never in the top k (measured: 0-9% vs 68-88%)


def test_transcoders_never_subtract_b_dec():
    x, _ = sparse_dictionary_data(1024, 16, 32, active=3, seed=1)
    y = x @ torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    result = train_on_batches([(x[i : i + 128], y[i : i + 128]) for i in range(0, 1024, 128)], TrainConfig(arch="transcoder", d_sae=32, k=3, batch_size=128, val_fraction=0), steps=8, hook_out="out")
    assert result.sae.cfg.is_transcoder and result.sae.cfg.apply_b_dec_to_input is False


def test_the_default_batch_gives_short_runs_256_steps_and_long_ones_4096_rows():
    from saetool.train.convergence import default_batch_size

    tokens = [1_000, 32_768, 65_536, 100_000, 1_048_575, 1_048_576, 10**8]
    assert [default_batch_size(t) for t in tokens] == [128, 128, 256, 256, 2048, 4096, 4096]
    assert default_batch_size(None) == 4096  # a run of --steps: its tokens are not given


def test_a_default_batch_run_is_the_run_with_that_batch_given(tmp_path):
    from saetool.train.api import train_sae
    from saetool.train.multi import train_saes

    x, _ = sparse_dictionary_data(8192, 16, 32, active=3, seed=5)
    path = write_activations(tmp_path / "acts.h5", {HOOK: x, "blocks.4.hook_resid_post": x.flip(1)}, context_size=32)
    config = TrainConfig(arch="topk", d_sae=32, k=3, seed=0, hook=HOOK, shuffle_buffer=200)  # a buffer under 2 x 4,096 rows: sized by the batch read
    auto = train_sae(config, [path], tmp_path / "auto.h5", progress=False)
    assert auto.training["batch_size"] == 128 and auto.training["total_steps"] == 63  # 8,000 training tokens: 128 rows a step
    given = train_sae(dataclasses.replace(config, batch_size=128), [path], tmp_path / "given.h5", progress=False)
    assert torch.equal(auto.sae.W_dec, given.sae.W_dec) and torch.equal(auto.sae.W_enc, given.sae.W_enc)
    longer = train_sae(TrainConfig(arch="topk", d_sae=32, k=3, seed=0, hook=HOOK, num_tokens=65_536), [path], tmp_path / "longer.h5", progress=False)
    assert longer.training["batch_size"] == 256 and longer.training["total_steps"] == 256
    steps = train_sae(TrainConfig(arch="topk", d_sae=32, k=3, seed=0, hook=HOOK, steps=3), [path], tmp_path / "steps.h5", progress=False)
    assert steps.training["batch_size"] == 4096  # --steps without --num-tokens: the tokens are steps x batch
    both = train_saes(dataclasses.replace(config, hook=None), [path], "all", tmp_path / "set", progress=False)
    assert [r.training["batch_size"] for r in both.results] == [128, 128]
    assert torch.equal(both.results[0].sae.W_dec, auto.sae.W_dec)  # one pass over several hooks reads the same batches


def test_dead_steps_need_a_batch_size_when_the_batch_follows_the_tokens(tmp_path):
    x, _ = sparse_dictionary_data(2048, 16, 32, active=3, seed=6)
    path = write_activations(tmp_path / "acts.h5", {HOOK: x}, context_size=32)
    bad = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--dead-steps", "10", "-o", str(tmp_path / "x.h5"))
    assert_clean_error(bad, "--dead-steps")
    assert not (tmp_path / "x.h5").exists()
    ok = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--dead-steps", "10", "--batch-size", "64", "-o", str(tmp_path / "y.h5"))
    assert ok.returncode == 0, ok.stderr
    steps = run_cli("train", str(path), "--d-sae", "32", "--k", "3", "--dead-steps", "2", "--steps", "3", "-o", str(tmp_path / "z.h5"))
    assert steps.returncode == 0, steps.stderr  # a run of --steps: 4,096 rows a step, so the window is 8,192 tokens
    with h5py.File(tmp_path / "z.h5") as fh:
        training = json.loads(fh.attrs["training"])
    assert training["batch_size"] == 4096 and training["dead_tokens"] == 2 * 4096
