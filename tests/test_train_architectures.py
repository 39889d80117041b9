"""Every built-in architecture trains; L0 behaves; Matryoshka prefixes and
transcoders work; a plugin adds an architecture through the public API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saetool.hookspecs import hookimpl
from saetool.plugins import host, reset_host
from saetool.sae.architectures import SAEArchitecture
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
    cfg = TrainConfig(arch="topk", d_sae=128, k=5, lr=3e-3, log_every=20)
    result = train_on_batches(batches(x[:20000]), cfg, steps=300, val=x[20000:])
    h = result.history
    assert h["mse"][-1] < 0.4 * h["mse"][0]
    assert np.allclose(h["l0"], 5, atol=0.05)  # TopK: every token uses k features
    assert l0(result.sae, x[20000:]) == pytest.approx(5, abs=0.05)
    assert explained_variance(result.sae, x[20000:]) > 0.8
    assert result.sae.cfg.activation == "topk" and result.sae.cfg.k == 5
    assert h["val_loss"][-1] == pytest.approx(result.training["best_val_loss"]) or result.training["best_step"] < 300


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu", "matryoshka"])
def test_every_architecture_reduces_mse(arch, data):
    x, _ = data
    cfg = TrainConfig(arch=arch, d_sae=96, k=6, lr=3e-3, log_every=25, sparsity_coeff={"relu": 1.0, "jumprelu": 0.3}.get(arch))
    result = train_on_batches(batches(x[:20000]), cfg, steps=300, val=x[20000:])
    h = result.history
    assert h["mse"][-1] < 0.5 * h["mse"][0], (arch, h["mse"])
    assert explained_variance(result.sae, x[20000:]) > 0.6, arch
    assert h["dead_fraction"][-1] < 0.5
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


def test_matryoshka_prefixes_each_reconstruct(data):
    x, _ = data
    held = x[20000:]
    evs = {}
    for arch in ("matryoshka", "batchtopk"):
        cfg = TrainConfig(arch=arch, d_sae=96, k=6, lr=3e-3, options={"prefixes": [12, 24, 48, 96]})
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
    assert result.history["mse"][-1] < 0.5 * result.history["mse"][0]
    norms = result.sae.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)  # the base class keeps decoder rows at unit norm

    path = write_activations(tmp_path / "a.h5", {"blocks.0.hook_resid_post": x[:4000]})
    res = train_sae(TrainConfig(arch="toy-l1", d_sae=32, batch_size=128, steps=20), [path], tmp_path / "toy.h5", progress=False)
    assert res.path.exists()


def test_unknown_architecture_lists_choices():
    from saetool.errors import SaetoolError
    from saetool.sae.architectures import get_architecture

    with pytest.raises(SaetoolError, match="choose one of: batchtopk, jumprelu, matryoshka, relu, topk, transcoder"):
        get_architecture("nope")
