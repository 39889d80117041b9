"""The acausal crosscoder (`train --arch crosscoder --hooks ...`) on planted multi-layer features."""

from __future__ import annotations

import pytest
import torch

from saetool.errors import SaetoolError
from saetool.sae.crosscoder import crosscoder_hooks, layer_decoder_norms
from saetool.sae.io import load_sae
from saetool.train import TrainConfig, train_sae
from saetool.train.synthetic import write_activations

HOOKS = [f"blocks.{i}.hook_resid_post" for i in range(3)]
#: root -> present at layers 0, 1, 2 (persisting features, a birth at 1 and a death after 1)
PRESENT = {"persist0": (1, 1, 1), "persist1": (1, 1, 1), "persist2": (1, 1, 1), "persist3": (1, 1, 1), "birth0": (0, 1, 1), "birth1": (0, 1, 1), "death0": (1, 1, 0), "death1": (1, 1, 0)}
SCALE = (1.0, 3.0, 10.0)  # residual streams grow with depth


def planted(n_tokens=6000, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(PRESENT)
    base, _ = torch.linalg.qr(torch.randn(d, n, generator=g))
    on = (torch.rand(n_tokens, n, generator=g) < 0.15) * (0.5 + torch.rand(n_tokens, n, generator=g))
    layers, directions = [], []
    for layer in range(3):
        drift = base.T + 0.15 * torch.randn(n, d, generator=g) / d**0.5
        drift /= drift.norm(dim=1, keepdim=True)
        mask = torch.tensor([PRESENT[r][layer] for r in PRESENT], dtype=torch.float32)
        layers.append(SCALE[layer] * ((on * mask) @ drift + 0.01 * torch.randn(n_tokens, d, generator=g)))
        directions.append(drift)
    return layers, directions


@pytest.fixture(scope="module")
def crosscoder(tmp_path_factory):
    layers, directions = planted()
    acts = write_activations(tmp_path_factory.mktemp("cc") / "acts.h5", dict(zip(HOOKS, layers)), context_size=16)
    config = TrainConfig(arch="crosscoder", d_sae=24, batch_size=128, steps=600, lr=3e-3, sparsity_coeff=1.0, val_tokens=256, shuffle_buffer=1024, checkpoint_every=10_000)
    result = train_sae(config, [acts], acts.parent / "cc.h5", progress=False, hooks="all")
    return acts, result, directions


def test_per_layer_decoder_norms_recover_planted_births_and_deaths(crosscoder):
    acts, result, directions = crosscoder
    sae = load_sae(result.path)
    assert crosscoder_hooks(sae.cfg) == HOOKS and sae.cfg.d_in == 48
    norms = layer_decoder_norms(sae)  # [d_sae, 3], in normalised units
    blocks = sae.W_dec.float().split(16, dim=1)
    for r, (root, present) in enumerate(PRESENT.items()):
        cos = torch.stack([torch.nn.functional.cosine_similarity(blocks[layer], directions[layer][r][None], dim=1) for layer in range(3)], 1)
        score = (cos * torch.tensor(present, dtype=torch.float32)).sum(1) / sum(present)
        best = int(score.argmax())
        assert score[best] > 0.9, (root, float(score[best]))
        profile = norms[best] / norms[best].max()
        for layer, there in enumerate(present):
            if there:
                assert profile[layer] > 0.4, (root, profile.tolist())
            else:
                assert profile[layer] < 0.1, (root, profile.tolist())


def test_saved_crosscoder_takes_raw_activations(crosscoder):
    acts, result, _ = crosscoder
    sae = load_sae(result.path)
    assert result.metrics["fvu"] < 0.1  # on the normalised hooks the trainer saw
    layers, _ = planted()
    x = torch.cat(layers, 1)[:512]
    recon = sae(x)
    for layer in range(3):  # each hook reconstructed in its own (raw) units
        block = slice(16 * layer, 16 * (layer + 1))
        err = (recon[:, block] - x[:, block]).pow(2).sum() / (x[:, block] - x[:, block].mean(0)).pow(2).sum()
        assert err < 0.15, (layer, float(err))
    assert result.training["hooks"] == HOOKS


def test_crosscoder_needs_several_hooks(tmp_path, crosscoder):
    acts, _, _ = crosscoder
    with pytest.raises(SaetoolError, match="reads several hooks at once"):
        train_sae(TrainConfig(arch="crosscoder", d_sae=8, steps=2), [acts], tmp_path / "x.h5", progress=False)
    with pytest.raises(SaetoolError, match="needs two hooks or more"):
        train_sae(TrainConfig(arch="crosscoder", d_sae=8, steps=2), [acts], tmp_path / "x.h5", progress=False, hooks=HOOKS[:1])


def test_evaluate_reads_every_hook_and_one_hook_commands_say_why_not(crosscoder):
    from saetool.evaluate.api import EvalConfig, evaluate_sae
    from saetool.sae.io import check_sae_matches

    acts, result, _ = crosscoder
    ev = evaluate_sae(result.path, acts, EvalConfig(num_tokens=1024, metrics=["fvu", "l0"]))
    assert ev.metrics["fvu"] < 0.1 and 1 < ev.metrics["l0"] < 10
    with pytest.raises(SaetoolError, match=r"is a crosscoder over 3 hooks .* and this command reads one hook"):
        check_sae_matches(load_sae(result.path), d_in=16)


def test_resume_ends_with_the_uninterrupted_weights(tmp_path, crosscoder):
    acts, _, _ = crosscoder
    config = TrainConfig(arch="crosscoder", d_sae=8, batch_size=64, steps=12, checkpoint_every=4, val_tokens=64, shuffle_buffer=256)
    whole = train_sae(config, [acts], tmp_path / "whole.h5", progress=False, hooks="all")

    def stop(info):
        if info.step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sae(config, [acts], tmp_path / "cut.h5", progress=False, hooks="all", on_step=stop)
    resumed = train_sae(config, [acts], tmp_path / "cut.h5", progress=False, hooks="all", resume=True)
    a, b = load_sae(whole.path).state_dict(), load_sae(resumed.path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
