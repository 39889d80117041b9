"""The inference SAE: encode/decode per activation rule, shapes, input checks."""

from __future__ import annotations

import pytest
import torch

from saetool.errors import SaetoolError
from saetool.sae.config import SAEConfig
from saetool.sae.model import SAE


def make(activation: str, *, k: int | None = None, d_in: int = 6, d_sae: int = 10, **kw) -> SAE:
    sae = SAE(SAEConfig(arch="test", d_in=d_in, d_sae=d_sae, hook="blocks.0.hook_resid_post", activation=activation, k=k, **kw))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return sae


def test_relu_encode_decode_forward():
    sae = make("relu")
    x = torch.randn(5, 6)
    pre = x @ sae.W_enc + sae.b_enc
    f = sae.encode(x)
    assert torch.equal(f, torch.relu(pre))
    assert torch.allclose(sae.decode(f), f @ sae.W_dec + sae.b_dec)
    assert torch.allclose(sae(x), sae.decode(f))


def test_topk_keeps_the_k_largest_and_relus_them():
    sae = make("topk", k=3)
    x = torch.randn(7, 6)
    pre = sae.encode_pre(x)
    f = sae.encode(x)
    assert ((f != 0).sum(-1) <= 3).all()
    top = pre.topk(3, dim=-1).indices
    expected = torch.zeros_like(pre).scatter(-1, top, torch.relu(pre.gather(-1, top)))
    assert torch.equal(f, expected)


def test_jumprelu_threshold():
    sae = make("jumprelu")
    with torch.no_grad():
        sae.threshold.fill_(0.5)
    x = torch.randn(9, 6)
    pre = sae.encode_pre(x)
    f = sae.encode(x)
    assert torch.equal(f, pre * (pre > 0.5))
    assert (f[f != 0] > 0.5).all()


def test_apply_b_dec_to_input_and_transcoder_shapes():
    sae = make("relu", apply_b_dec_to_input=True)
    x = torch.randn(4, 6)
    assert torch.allclose(sae.encode_pre(x), (x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    tc = make("relu", hook_out="blocks.0.hook_mlp_out", d_out=3, apply_b_dec_to_input=True)
    assert tc.cfg.is_transcoder
    assert tc.W_dec.shape == (10, 3) and tc.b_dec.shape == (3,)
    assert torch.allclose(tc.encode_pre(x), x @ tc.W_enc + tc.b_enc)  # b_dec is in output space: never subtracted
    assert tc(x).shape == (4, 3)


def test_bad_configs_and_input_checks():
    with pytest.raises(SaetoolError, match=r"k is 11, expected an integer from 1 to d_sae \(10\)"):
        make("topk", k=11)
    with pytest.raises(SaetoolError, match="activation is .gelu., expected one of relu, topk, jumprelu"):
        make("gelu")
    sae = make("relu")
    sae.check_input(6, "blocks.0.hook_resid_post")
    with pytest.raises(SaetoolError, match="expects d_in=6 but the activations have d=5"):
        sae.check_input(5)
    with pytest.raises(SaetoolError, match="reads blocks.0.hook_resid_post"):
        sae.check_input(6, "blocks.1.hook_resid_post")


def test_config_round_trip():
    cfg = SAEConfig(arch="topk", d_in=4, d_sae=8, hook="h", activation="topk", k=2, options={"prefixes": [2, 8]})
    assert SAEConfig.from_dict({**cfg.to_dict(), "unknown_key": 1}) == cfg
    assert cfg.d_out == 4 and cfg.hook_out == "h" and not cfg.is_transcoder
