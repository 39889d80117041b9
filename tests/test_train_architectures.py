"""Every built-in architecture trains; L0 behaves; Matryoshka prefixes and
transcoders work; a plugin adds an architecture through the public API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saetool.hookspecs import hookimpl
from saetool.plugins import host, reset_host
from saetool.train.architectures import SAEArchitecture
from saetool.train import TrainConfig, train_on_batches, train_sae
from saetool.train.objectives import DenseObjective
from saetool.train.synthetic import sparse_dictionary_data, write_activations

D_IN, N_FEATURES = 24, 64


@pytest.fixture(scope="module")
def data():
    x, dictionary = sparse_dictionary_data(24000, D_IN, N_FEATURES, active=5, seed=0)
    return x, dictionary


def batches(x: torch.Tensor, batch: int = 256, seed: int = 0):
    """An endless plain-Python generator of shuffled tensors."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch + 1, batch):
            yield x[perm[i : i + batch]]


def explained_variance(sae, x: torch.Tensor) -> float:
    with torch.no_grad():
        recon = sae(x)
    return float(1 - (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def l0(sae, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((sae.encode(x) > 0).sum(-1).float().mean())


def test_trains_from_a_plain_generator_of_tensors(data):
    x, _ = data
    cfg = TrainConfig(arch="topk", d_sae=128, k=5, log_every=20)  # the default lr and schedule
    # 600 steps: this noise-free dictionary wants a faster encoder than real activations (docs/benchmarks.md, "train quality")
    result = train_on_batches(batches(x[:20000]), cfg, steps=600, val=x[20000:])
    h = result.history
    assert h["scaled_mse"][-1] < 0.4 * h["scaled_mse"][0]
    assert np.allclose(h["l0"], 5, atol=0.05)  # TopK: every token uses k features
    assert l0(result.sae, x[20000:]) == pytest.approx(5, abs=0.05)
    assert explained_variance(result.sae, x[20000:]) > 0.8
    assert result.sae.cfg.activation == "topk" and result.sae.cfg.k == 5
    assert h["val_loss"][-1] == pytest.approx(result.training["best_val_loss"]) or result.training["best_step"] < 600


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu", "matryoshka"])
def test_every_architecture_reduces_mse(arch, data):
    x, _ = data
    cfg = TrainConfig(arch=arch, d_sae=96, k=6, lr=3e-3, log_every=25, sparsity_coeff={"relu": 1.0, "jumprelu": 0.3}.get(arch))
    result = train_on_batches(batches(x[:20000]), cfg, steps=300, val=x[20000:])
    h = result.history
    assert h["scaled_mse"][-1] < 0.5 * h["scaled_mse"][0], (arch, h["scaled_mse"])
    assert explained_variance(result.sae, x[20000:]) > 0.6, arch
    assert h["dead_fraction_train"][-1] < 0.5
    assert result.sae.cfg.arch == arch
    if arch in ("batchtopk", "matryoshka"):
        assert np.allclose(h["l0"], 6, atol=0.05)  # batch * k activations per batch: k per token on average
        assert result.sae.cfg.activation == "jumprelu"  # the learned threshold is the inference rule
        assert float(result.sae.threshold.detach().min()) > 0
        assert l0(result.sae, x[20000:]) == pytest.approx(6, rel=0.3)


@pytest.mark.parametrize("arch", ["relu", "jumprelu"])
def test_l0_falls_as_the_sparsity_coefficient_rises(arch, data):
    x, _ = data
    l0s = []
    for coeff in (0.03, 3.0):
        cfg = TrainConfig(arch=arch, d_sae=96, lr=3e-3, sparsity_coeff=coeff, log_every=50)
        result = train_on_batches(batches(x[:20000]), cfg, steps=300)
        l0s.append(l0(result.sae, x[20000:]))
    assert l0s[1] < 0.6 * l0s[0], l0s


def prefix_ev(sae, x: torch.Tensor, m: int) -> float:
    with torch.no_grad():
        f = sae.encode(x)
        f[:, m:] = 0
        recon = sae.decode(f)
    return float(1 - (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


@pytest.mark.slow  # trains to convergence (many seconds on 2 cores)
def test_matryoshka_prefixes_each_reconstruct(data):
    x, _ = data
    held = x[20000:]
    evs = {}
    for arch in ("matryoshka", "batchtopk"):
        cfg = TrainConfig(arch=arch, d_sae=96, k=6, lr=3e-3, options={"prefixes": [12, 24, 48, 96]} if arch == "matryoshka" else {})
        sae = train_on_batches(batches(x[:20000]), cfg, steps=300).sae
        evs[arch] = [prefix_ev(sae, held, m) for m in (12, 24, 48, 96)]
    mat = evs["matryoshka"]
    assert all(a <= b + 1e-6 for a, b in zip(mat, mat[1:]))
    assert mat[0] > 0.1  # even the first 12 features reconstruct on their own
    assert mat[0] > evs["batchtopk"][0] + 0.05  # unlike the same prefix of a plain BatchTopK SAE
    assert mat[-1] > 0.6


def test_transcoder_reads_one_hook_and_reconstructs_another(tmp_path):
    g = torch.Generator().manual_seed(5)
    codes = (torch.rand(12000, 48, generator=g) < 0.08) * torch.rand(12000, 48, generator=g)
    enc_dirs = torch.randn(48, 20, generator=g)
    out_dirs = torch.randn(48, 12, generator=g)
    hooks = {"blocks.3.hook_resid_mid": codes @ enc_dirs, "blocks.3.hook_mlp_out": codes @ out_dirs}
    path = write_activations(tmp_path / "two.h5", hooks, context_size=20)
    cfg = TrainConfig(arch="transcoder", d_sae=96, k=6, lr=3e-3, batch_size=256, steps=300, hook="blocks.3.hook_resid_mid", checkpoint_every=100, shuffle_buffer=2048)
    result = train_sae(cfg, [path], tmp_path / "tc.h5", progress=False)
    sae = result.sae
    assert sae.cfg.is_transcoder and sae.cfg.hook_out == "blocks.3.hook_mlp_out"  # guessed from hook_resid_mid
    assert sae.W_enc.shape == (20, 96) and sae.W_dec.shape == (96, 12)
    x, y = hooks["blocks.3.hook_resid_mid"], hooks["blocks.3.hook_mlp_out"]
    with torch.no_grad():
        pred = sae(x)
    ev = float(1 - (pred - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    assert ev > 0.6
    assert result.in_scale != pytest.approx(result.out_scale)  # each hook has its own scale

    from saetool.sae.io import load_sae

    loaded = load_sae(tmp_path / "tc.h5")
    assert loaded.cfg.hook_out == "blocks.3.hook_mlp_out"
    assert torch.allclose(loaded(x[:100]), pred[:100], atol=1e-5)


# -- a third-party architecture --------------------------------------------------------
class ToyObjective(DenseObjective):
    """ReLU with a plain (unweighted) L1 penalty."""

    def activate(self, sae, pre):
        return torch.relu(pre)

    def penalty(self, sae, pre, acts):
        return acts.sum(-1).mean()


class ToyArchitecture(SAEArchitecture):
    name = "toy-l1"
    description = "ReLU SAE with a plain L1 penalty (a test plugin)"
    activation = "relu"
    default_sparsity_coeff = 0.1

    def objective(self, cfg, settings):
        return ToyObjective()


class ToyPlugin:
    @hookimpl
    def register_sae_architectures(self, register):
        register(ToyArchitecture())


@pytest.fixture
def toy_plugin():
    reset_host()
    host().register_plugin(ToyPlugin(), "toy")
    yield
    reset_host()


def test_a_plugin_adds_an_architecture(toy_plugin, data, tmp_path):
    assert "toy-l1" in host().collect("sae_architectures")
    assert {"relu", "topk", "batchtopk", "jumprelu", "matryoshka", "transcoder"} <= set(host().collect("sae_architectures"))
    x, _ = data
    result = train_on_batches(batches(x[:20000]), TrainConfig(arch="toy-l1", d_sae=64, lr=3e-3), steps=200)
    assert result.sae.cfg.arch == "toy-l1"
    assert result.history["scaled_mse"][-1] < 0.5 * result.history["scaled_mse"][0]
    norms = result.sae.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)  # the base class keeps decoder rows at unit norm

    path = write_activations(tmp_path / "a.h5", {"blocks.0.hook_resid_post": x[:4000]})
    res = train_sae(TrainConfig(arch="toy-l1", d_sae=32, batch_size=128, steps=20), [path], tmp_path / "toy.h5", progress=False)
    assert res.path.exists()


def test_unknown_architecture_lists_choices():
    from saetool.errors import SaetoolError
    from saetool.train.architectures import get_architecture

    with pytest.raises(SaetoolError, match="choose one of: batchtopk, crosscoder, jumprelu, matryoshka, relu, topk, transcoder"):
        get_architecture("nope")


# -- short runs: the saved SAE is the one the trainer reported (issue 14) ---------------
def _saved_vs_trained(result) -> tuple[float, float, float, float]:
    """Trainer's L0/EV on the last step vs the saved SAE's on that step's batch (no val set)."""
    h = result.history
    return float(h["l0"][-1]), float(h["explained_variance"][-1]), result.metrics["l0"], result.metrics["explained_variance"]


@pytest.mark.parametrize("steps", [12, 150])
@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_saved_batchtopk_gives_the_trained_l0_and_ev(arch, steps, data):
    x, _ = data
    cfg = TrainConfig(arch=arch, d_sae=96, k=6, log_every=1)
    result = train_on_batches(batches(x[:20000]), cfg, steps=steps)
    l0_t, ev_t, l0_s, ev_s = _saved_vs_trained(result)
    assert l0_t == pytest.approx(6, abs=0.01)
    assert l0_s == pytest.approx(l0_t, rel=0.1), (l0_t, l0_s)
    assert ev_s == pytest.approx(ev_t, rel=0.1), (ev_t, ev_s)
    assert l0(result.sae, x[20000:]) == pytest.approx(6, rel=0.1)  # and on held-out rows


@pytest.mark.parametrize("steps", [12, 150])
def test_saved_transcoder_gives_the_trained_l0_and_ev(steps):
    g = torch.Generator().manual_seed(5)
    codes = (torch.rand(8000, 48, generator=g) < 0.08) * torch.rand(8000, 48, generator=g)
    x, y = codes @ torch.randn(48, 20, generator=g), codes @ torch.randn(48, 12, generator=g)
    pairs = ((x[i : i + 256], y[i : i + 256]) for _ in range(1000) for i in range(0, 8000 - 255, 256))
    result = train_on_batches(pairs, TrainConfig(arch="transcoder", d_sae=96, k=6, log_every=1, lr=3e-4), steps=steps, hook_out="out")  # the rate this check was written at
    l0_t, ev_t, l0_s, ev_s = _saved_vs_trained(result)
    assert l0_s == pytest.approx(l0_t, rel=0.1)
    assert ev_s == pytest.approx(ev_t, rel=0.1), (ev_t, ev_s)


# -- JumpReLU: L0 follows the coefficient; --target-l0 steers it (issue 14) -------------
@pytest.fixture(scope="module")
def wide_data():
    """Denser synthetic activations (about 20 of 256 features per token) in d=64."""
    x, _ = sparse_dictionary_data(16384, 64, 256, active=20, seed=1)
    return x


@pytest.mark.slow  # trains to convergence (many seconds on 2 cores)
def test_jumprelu_l0_follows_the_coefficient_at_default_lr(wide_data):
    l0s = []
    for coeff in (0.1, 10.0):
        cfg = TrainConfig(arch="jumprelu", d_sae=256, batch_size=512, sparsity_coeff=coeff, log_every=50)
        l0s.append(l0(train_on_batches(batches(wide_data[:15000], 512), cfg, steps=200).sae, wide_data[15000:]))
    assert l0s[1] < 0.5 * l0s[0], l0s


@pytest.mark.slow  # trains to convergence (many seconds on 2 cores)
@pytest.mark.parametrize("target", [8, 40, None])
def test_jumprelu_target_l0_is_reached(target, wide_data):
    """--target-l0 N steers to N; with neither a target nor a coefficient, to 32."""
    cfg = TrainConfig(arch="jumprelu", d_sae=256, batch_size=512, target_l0=target, log_every=10)
    result = train_on_batches(batches(wide_data[:15000], 512), cfg, steps=200)
    assert l0(result.sae, wide_data[15000:]) == pytest.approx(target or 32, rel=0.2)
    assert result.training["target_l0"] == (target or 32)
    assert result.training["sparsity_coeff"] != pytest.approx(1.0)  # the coefficient was steered
    assert result.training["convergence_warning"] is None or "target" not in result.training["convergence_warning"]


def test_target_l0_is_k_for_the_topk_family(data):
    x, _ = data
    result = train_on_batches(batches(x[:20000]), TrainConfig(arch="topk", d_sae=96, target_l0=7), steps=5)
    assert result.sae.cfg.k == 7
    from saetool.errors import SaetoolError

    with pytest.raises(SaetoolError, match="disagree"):
        train_on_batches(batches(x[:20000]), TrainConfig(arch="topk", d_sae=96, k=5, target_l0=7), steps=5)


def test_convergence_warning_names_a_smaller_batch_for_few_steps():
    from saetool.train.convergence import LONGER, convergence_warning, fix_for, smaller_batch

    assert smaller_batch(4096, 2) == 128  # 8,192 tokens: as many steps as 128 rows allow
    assert smaller_batch(1024, 32) == 128 and smaller_batch(1024, 64) == 256  # 256 steps over the same tokens
    assert smaller_batch(4096, 244) == 2048  # the largest power of two that reaches 256 steps
    assert smaller_batch(1024, 256) is None and smaller_batch(128, 64) is None  # enough steps; already the smallest batch
    assert fix_for(1024, 64) == f"{LONGER}, or more steps over these tokens: --batch-size 256 (256 steps)"
    assert fix_for(1024, 64, steps_given=True).endswith("--batch-size 256 --steps 256")  # --steps alone would cut the tokens
    assert fix_for(1024, 300) == LONGER
    assert fix_for(1000, 2, steps_given=True).endswith("--batch-size 128 --steps 16")  # 2,000 tokens: rounded up, as the trainer does
    assert smaller_batch(255, 10) is None and fix_for(255, 10) == LONGER and smaller_batch(256, 10) == 128  # named when it at least doubles the steps
    message = convergence_warning([0.9] * 8, [32.0] * 8, learned_l0=False, fix=fix_for(4096, 8))
    assert message is not None and "only 8 steps" in message and message.endswith("--batch-size 128 (256 steps)")


def test_short_run_warning_through_the_trainer_names_the_batch():
    import torch
    from saetool.train import TrainConfig, train_on_batches

    x = torch.randn(1024, 16)
    result = train_on_batches((x[i : i + 512] for i in range(0, 1024, 512)), TrainConfig(arch="topk", d_sae=32, k=4, batch_size=4096), steps=2)  # the batches' own 512 count, not config.batch_size
    assert result.training["convergence_warning"].endswith("--batch-size 128 (8 steps)")
    given = train_on_batches((x[i : i + 512] for i in range(0, 1024, 512)), TrainConfig(arch="topk", d_sae=32, k=4, steps=2))
    assert given.training["convergence_warning"].endswith("--batch-size 128 --steps 8")  # --steps alone would read fewer tokens


def test_convergence_warning_flags_curves_still_falling():
    from saetool.train.convergence import convergence_warning

    steps = np.arange(200)
    falling = list(0.2 + 0.8 * np.exp(-steps / 150))  # still falling ~8% per tenth at 60-80%
    settled = list(0.2 + 0.8 * np.exp(-steps / 15))
    flat_l0 = [30.0] * 200
    message = convergence_warning(falling, flat_l0, learned_l0=False)
    assert message is not None and "FVU still fell" in message and "more --num-tokens" in message and "\n" not in message
    assert convergence_warning(settled, flat_l0, learned_l0=False) is None
    moving_l0 = list(100 * np.exp(-steps / 100))
    assert "L0 still moved" in convergence_warning(settled, moving_l0, learned_l0=True)
    assert convergence_warning(settled, moving_l0, learned_l0=False) is None  # TopK: L0 is k by construction
    assert "target L0 40" in convergence_warning(settled, flat_l0, learned_l0=True, target_l0=40)
    assert convergence_warning(settled, flat_l0, learned_l0=True, target_l0=33) is None
    assert "only 5 steps" in convergence_warning(settled[:5], flat_l0[:5], learned_l0=False)
    assert "explains only -0.04" in convergence_warning([1.04] * 60, flat_l0[:60], learned_l0=False)  # flat, but not learning
    dying = list(np.clip((steps - 40) / 200, 0, None))  # the dead share climbs 10 points per tenth of the run
    assert "dead features still went from 45% to 55%" in convergence_warning(settled, flat_l0, learned_l0=False, dead=dying)
    assert convergence_warning(settled, flat_l0, learned_l0=False, dead=[0.3] * 200) is None  # many dead, but settled
    assert convergence_warning(settled, flat_l0, learned_l0=False, dead=list(0.3 + 0.0002 * steps)) is None  # drifting by 0.4 points
    just_over = list(np.where(steps < 140, 0.1, 0.16))  # windows 120-139 and 140-159: 6 points apart
    just_under = list(np.where(steps < 140, 0.1, 0.14))  # 4 points
    assert "from 10% to 16%" in convergence_warning(settled, flat_l0, learned_l0=False, dead=just_over)
    assert convergence_warning(settled, flat_l0, learned_l0=False, dead=just_under) is None
    # a window of 70% of the run: the share is 0 until then, and jumps once features never fired count
    jump = list(np.where(steps < 140, 0.0, 0.1))
    assert convergence_warning(settled, flat_l0, learned_l0=False, dead=jump, dead_window=0.7) is None


def test_jumprelu_default_target_respects_the_checklist_range(data):
    """Without a coefficient or target JumpReLU steers to 32, or to the geometric middle
    of the checklist's L0 range when that excludes 32; a coefficient or --init-from keeps
    the fixed coefficient."""
    from saetool.train.config import Targets

    x, _ = data
    def record(**kw):
        return train_on_batches(batches(x[:4096]), TrainConfig(arch="jumprelu", d_sae=256, **kw), steps=3).training
    assert record()["target_l0"] == 32
    assert record(targets=Targets(l0_min=50, l0_max=100))["target_l0"] == pytest.approx(70.7)
    assert record(targets=Targets(l0_min=2, l0_max=8))["target_l0"] == pytest.approx(4.0)
    small = train_on_batches(batches(x[:4096]), TrainConfig(arch="jumprelu", d_sae=16), steps=3).training
    assert small["target_l0"] == 8  # at most half the features
    fixed = record(sparsity_coeff=2.0)
    assert fixed["target_l0"] is None and fixed["sparsity_coeff"] == 2.0
    pretrained = train_on_batches(batches(x[:4096]), TrainConfig(arch="jumprelu", d_sae=96), steps=3).sae
    continued = train_on_batches(batches(x[:4096]), TrainConfig(arch="jumprelu", d_sae=96), steps=3, init_sae=pretrained).training
    assert continued["target_l0"] is None and continued["sparsity_coeff"] == 1.0


def test_wide_jumprelu_starts_with_a_smaller_encoder():
    """Up to 4x d_in the encoder starts as the decoder's transpose; wider, times 4 d_in / d_sae
    down to 0.5 (8x), 0.5 up to 16x and sqrt(4 d_in / d_sae) beyond (a 16x JumpReLU SAE on
    Gemma 3 otherwise reconstructed many times its input early on, and 0.25 at 16x left half
    its features never firing after long runs)."""
    from saetool.sae.config import SAEConfig
    from saetool.train.architectures import JumpReLUArchitecture

    arch = JumpReLUArchitecture()
    for d_sae, scale in ((64, 1.0), (256, 1.0), (384, 2 / 3), (512, 0.5), (768, 0.5), (1024, 0.5), (2048, 2**-1.5), (4096, 0.25)):
        sae = arch.init(SAEConfig(arch="jumprelu", d_in=64, d_sae=d_sae, hook="h", activation="jumprelu"), torch.Generator().manual_seed(0))
        assert torch.allclose(sae.W_enc, scale * sae.W_dec.t())
        assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(d_sae))
