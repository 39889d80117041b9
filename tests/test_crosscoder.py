"""The acausal crosscoder (`train --arch crosscoder --hooks ...`) on track's planted multi-layer features."""

from __future__ import annotations

import pytest
import torch

from saetool.errors import SaetoolError
from saetool.sae.crosscoder import crosscoder_hooks, layer_decoder_norms
from saetool.sae.io import load_sae
from saetool.train import TrainConfig, train_sae
from saetool.track.crosscoder import crosscoder_graph
from saetool.track.synthetic import ABSENT, SCHEDULE, WHOLE, planted_layers
from saetool.train.synthetic import write_activations

HOOKS = [f"blocks.{i}.hook_resid_post" for i in range(3)]
SCALE = (1.0, 3.0, 10.0)  # residual streams grow with depth
D = 32


@pytest.fixture(scope="module")
def crosscoder(tmp_path_factory):
    """A crosscoder trained on track's planted three-layer ground truth, each layer at its own scale."""
    layers, truth = planted_layers(n_tokens=8192, d=D)
    acts = write_activations(tmp_path_factory.mktemp("cc") / "acts.h5", {h: x * s for h, x, s in zip(HOOKS, layers, SCALE)}, context_size=16)
    config = TrainConfig(arch="crosscoder", d_sae=48, batch_size=128, steps=800, lr=3e-3, sparsity_coeff=1.0, val_tokens=256, shuffle_buffer=1024, checkpoint_every=10_000)
    result = train_sae(config, [acts], acts.parent / "cc.h5", progress=False, hooks="all")
    return acts, result, truth


def test_per_layer_decoder_norms_are_the_planted_births_and_deaths(crosscoder):
    """Every planted feature that is whole or absent at each layer (persisting, born, dying) is one
    crosscoder latent whose track (per-layer decoder norms, read by `track`) spans exactly its layers."""
    acts, result, truth = crosscoder
    sae = load_sae(result.path)
    assert crosscoder_hooks(sae.cfg) == HOOKS and sae.cfg.d_in == 3 * D
    assert layer_decoder_norms(sae).shape == (48, 3)
    graph = crosscoder_graph(sae, str(result.path), min_share=0.1)
    blocks = [b.float() / b.float().norm(dim=1, keepdim=True) for b in sae.W_dec.detach().split(D, dim=1)]
    checked = 0
    for root, forms in SCHEDULE.items():
        if any(f not in (WHOLE, ABSENT) for f in forms):
            continue  # a latent never splits or merges
        present = [layer for layer, f in enumerate(forms) if f == WHOLE]
        cos = sum(blocks[layer] @ truth.directions[layer][truth.features[layer].index((root, None))] for layer in present) / len(present)
        best = int(cos.argmax())
        assert cos[best] > 0.95, (root, float(cos[best]))
        spans = [(t.start, t.end) for t in graph.tracks if t.features[0] == best]
        assert spans == [(present[0], present[-1])], (root, spans)
        checked += 1
    assert checked == 10


def test_saved_crosscoder_takes_raw_activations(crosscoder):
    acts, result, _ = crosscoder
    sae = load_sae(result.path)
    assert result.metrics["fvu"] < 0.1  # on the normalised hooks the trainer saw
    layers, _ = planted_layers(n_tokens=8192, d=D)
    x = torch.cat([x * s for x, s in zip(layers, SCALE)], 1)[:512]
    with torch.no_grad():
        recon = sae(x)
    for layer in range(3):  # each hook reconstructed in its own (raw) units
        block = slice(D * layer, D * (layer + 1))
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
        check_sae_matches(load_sae(result.path), d_in=D)


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


def test_formats_of_one_hook_saes_refuse_a_crosscoder(crosscoder, tmp_path):
    from saetool.sae.format_api import ExportSettings
    from saetool.sae.formats.saelens import SAELensExporter

    _, result, _ = crosscoder
    with pytest.raises(SaetoolError, match="is a crosscoder over 3 hooks and the saelens format holds an SAE of one hook"):
        SAELensExporter().export(result.path, tmp_path / "out", ExportSettings())
