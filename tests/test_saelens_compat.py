"""SAELens compatibility, checked against the real ``sae_lens`` library.

Export: ``sae_lens.SAE.load_from_disk`` of what saetool writes gives the same
``encode``/``decode``. Import: SAEs created and saved by SAELens itself (inference
classes, training classes with ``save_model``/``save_inference_model``) load into
saetool with the same ``encode``/``decode``.
"""

from __future__ import annotations

import json

import pytest
import torch

from saetool.errors import SaetoolError
from saetool.sae.config import SAEConfig
from saetool.sae.formats.saelens import export_saelens, load_saelens
from saetool.sae.io import load_sae
from saetool.sae.model import SAE

sae_lens = pytest.importorskip("sae_lens")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

D_IN, D_SAE, D_OUT, K = 24, 64, 20, 7
ATOL = 1e-5


def inputs(d: int = D_IN, n: int = 128, seed: int = 5) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 2


def saetool_sae(activation: str, *, apply_b_dec: bool = True, transcoder: bool = False, seed: int = 0) -> SAE:
    cfg = SAEConfig(
        arch=activation,
        d_in=D_IN,
        d_sae=D_SAE,
        hook="blocks.4.hook_resid_mid" if transcoder else "blocks.4.hook_resid_post",
        hook_out="blocks.4.hook_mlp_out" if transcoder else None,
        d_out=D_OUT if transcoder else None,
        activation=activation,
        k=K if activation == "topk" else None,
        model="smollm2-135m",
        apply_b_dec_to_input=apply_b_dec,
    )
    sae = SAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)  # activations of order 1
        sae.b_enc.sub_(0.2)
        if activation == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE, generator=gen))
    return sae


def randomize(module: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.randn(p.shape, generator=gen) * 0.3).to(p.dtype))  # activations of order 1


def assert_same(ours: SAE, theirs, x: torch.Tensor) -> torch.Tensor:
    f_ours, f_theirs = ours.encode(x), theirs.encode(x).to_dense()
    torch.testing.assert_close(f_ours, f_theirs, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.decode(f_ours), theirs.decode(f_theirs), atol=ATOL, rtol=0)
    assert (f_ours > 0).any() and (f_ours == 0).any()  # non-trivial sparsity
    return f_ours


# -- saetool -> SAELens -------------------------------------------------------------------
@pytest.mark.parametrize("apply_b_dec", [True, False])
@pytest.mark.parametrize(("activation", "cls_name"), [("relu", "StandardSAE"), ("topk", "TopKSAE"), ("jumprelu", "JumpReLUSAE")])
def test_export_loads_in_saelens(tmp_path, activation, cls_name, apply_b_dec):
    ours = saetool_sae(activation, apply_b_dec=apply_b_dec)
    export_saelens(ours, tmp_path / "out")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "out")
    assert type(theirs).__name__ == cls_name
    assert theirs.cfg.apply_b_dec_to_input is apply_b_dec
    assert theirs.cfg.metadata.hook_name == "blocks.4.hook_resid_post"
    assert theirs.cfg.metadata.model_name == "smollm2-135m"
    x = inputs()
    f = assert_same(ours, theirs, x)
    if activation == "topk":
        assert theirs.cfg.k == K
        assert ((f != 0).sum(-1) <= K).all() and ((f != 0).sum(-1) == K).any()
    if activation == "jumprelu":  # the threshold matters: ReLU alone would keep more
        pre = ours.encode_pre(x)
        assert ((pre > 0) & (pre <= ours.threshold)).any()
        torch.testing.assert_close(theirs.threshold, ours.threshold)
    torch.testing.assert_close(ours(x), theirs(x), atol=ATOL, rtol=0)


@pytest.mark.parametrize(("activation", "cls_name"), [("relu", "Transcoder"), ("jumprelu", "JumpReLUTranscoder")])
def test_export_transcoder(tmp_path, activation, cls_name):
    ours = saetool_sae(activation, transcoder=True)
    export_saelens(ours, tmp_path / "tc")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "tc")
    assert type(theirs).__name__ == cls_name
    assert theirs.cfg.d_out == D_OUT and theirs.cfg.metadata.hook_name_out == "blocks.4.hook_mlp_out"
    assert_same(ours, theirs, inputs())
    back = load_saelens(tmp_path / "tc")
    assert back.cfg.hook_out == "blocks.4.hook_mlp_out" and back.cfg.is_transcoder
    assert_same(back, theirs, inputs())


def test_topk_transcoder_is_refused(tmp_path):
    with pytest.raises(SaetoolError, match="no topk transcoder"):
        export_saelens(saetool_sae("topk", transcoder=True), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_export_bfloat16(tmp_path):
    ours = saetool_sae("topk").to(torch.bfloat16)
    ours.cfg.dtype = "bfloat16"
    export_saelens(ours, tmp_path / "bf")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "bf")
    assert theirs.W_enc.dtype == torch.bfloat16 and theirs.cfg.dtype == "bfloat16"
    assert torch.equal(theirs.W_dec, ours.W_dec)
    back = load_saelens(tmp_path / "bf")
    assert back.dtype == torch.bfloat16 and torch.equal(back.W_enc, ours.W_enc)


def test_round_trip_through_saelens_folder(tmp_path):
    ours = saetool_sae("jumprelu")
    export_saelens(ours, tmp_path / "rt")
    back = load_sae(tmp_path / "rt")
    assert back.cfg.options["source_format"] == "saelens"
    assert (back.cfg.hook, back.cfg.model, back.cfg.activation) == (ours.cfg.hook, ours.cfg.model, "jumprelu")
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[name]), name


# -- SAELens -> saetool -------------------------------------------------------------------
def metadata(**extra):
    return sae_lens.saes.sae.SAEMetadata(model_name="gpt2", hook_name="blocks.3.hook_resid_pre", **extra)


@pytest.mark.parametrize("apply_b_dec", [True, False])
@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu"])
def test_saelens_saved_sae_loads(tmp_path, arch, apply_b_dec):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    common = {"d_in": D_IN, "d_sae": D_SAE, "apply_b_dec_to_input": apply_b_dec, "metadata": metadata()}
    if arch == "standard":
        theirs = StandardSAE(StandardSAEConfig(**common))
    elif arch == "topk":
        theirs = TopKSAE(TopKSAEConfig(k=K, **common))
    else:
        theirs = JumpReLUSAE(JumpReLUSAEConfig(**common))
    randomize(theirs)
    if arch == "jumprelu":
        with torch.no_grad():  # some negative thresholds: SAELens' ReLU still applies
            theirs.threshold.copy_(torch.linspace(-0.5, 1.5, D_SAE))
    theirs.save_model(tmp_path / arch)
    ours = load_sae(tmp_path / arch)
    assert ours.cfg.activation == {"standard": "relu"}.get(arch, arch)
    assert ours.cfg.hook == "blocks.3.hook_resid_pre" and ours.cfg.model == "gpt2"
    assert ours.cfg.apply_b_dec_to_input is apply_b_dec
    assert_same(ours, theirs, inputs())


@pytest.mark.parametrize("arch", ["transcoder", "jumprelu_transcoder"])
def test_saelens_saved_transcoder_loads(tmp_path, arch):
    from sae_lens import JumpReLUTranscoder, JumpReLUTranscoderConfig, Transcoder, TranscoderConfig

    meta = metadata(hook_name_out="blocks.3.hook_mlp_out")
    common = {"d_in": D_IN, "d_sae": D_SAE, "d_out": D_OUT, "apply_b_dec_to_input": False, "metadata": meta}
    theirs = Transcoder(TranscoderConfig(**common)) if arch == "transcoder" else JumpReLUTranscoder(JumpReLUTranscoderConfig(**common))
    randomize(theirs)
    if arch == "jumprelu_transcoder":
        with torch.no_grad():
            theirs.threshold.copy_(torch.rand(D_SAE))
    theirs.save_model(tmp_path / arch)
    ours = load_sae(tmp_path / arch)
    assert ours.cfg.is_transcoder and ours.cfg.hook_out == "blocks.3.hook_mlp_out" and ours.cfg.d_out == D_OUT
    assert_same(ours, theirs, inputs())


def test_saelens_training_saes(tmp_path):
    """SAEs being trained by SAELens, saved with save_model (raw training state) and
    save_inference_model (what SAELens' runner writes at the end)."""
    from sae_lens import (
        BatchTopKTrainingSAE,
        BatchTopKTrainingSAEConfig,
        JumpReLUTrainingSAE,
        JumpReLUTrainingSAEConfig,
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )

    common = {"d_in": D_IN, "d_sae": D_SAE, "metadata": metadata()}
    x = inputs()
    saes = {
        "standard": StandardTrainingSAE(StandardTrainingSAEConfig(**common)),
        "topk": TopKTrainingSAE(TopKTrainingSAEConfig(k=K, **common)),  # rescale_acts_by_decoder_norm=True
        "jumprelu": JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(**common)),
        "batchtopk": BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(k=K, **common)),
    }
    assert saes["topk"].cfg.rescale_acts_by_decoder_norm
    for i, (arch, theirs) in enumerate(saes.items()):
        randomize(theirs, seed=10 + i)
        with torch.no_grad():
            theirs.W_dec.mul_(torch.rand(D_SAE, 1) + 0.5)  # decoder norms far from 1
            if arch == "jumprelu":
                theirs.threshold.copy_(torch.rand(D_SAE))
            if arch == "batchtopk":
                theirs.topk_threshold.fill_(0.8)
        theirs.eval()
        theirs.save_model(tmp_path / f"{arch}-raw")
        theirs.save_inference_model(tmp_path / f"{arch}-inference")
        inference = sae_lens.SAE.load_from_disk(tmp_path / f"{arch}-inference")
        for folder in (f"{arch}-raw", f"{arch}-inference"):
            ours = load_sae(tmp_path / folder)
            assert ours.cfg.activation == {"standard": "relu", "batchtopk": "jumprelu"}.get(arch, arch), folder
            assert_same(ours, inference, x)
            if arch != "batchtopk":  # the training SAE itself (batchtopk's is batch-level, not per input)
                assert_same(ours, theirs, x)


def test_expected_average_scaling_factor_is_folded(tmp_path):
    from sae_lens import StandardSAE, StandardSAEConfig

    theirs = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="expected_average_only_in", metadata=metadata()))
    randomize(theirs)
    theirs.save_model(tmp_path / "scaled")
    (tmp_path / "scaled" / "activation_scaler.json").write_text(json.dumps({"scaling_factor": 3.5, "has_whitening": False}))
    ours = load_sae(tmp_path / "scaled")
    theirs.fold_activation_norm_scaling_factor(3.5)  # what SAELens' trainer does at the end
    assert_same(ours, theirs, inputs())


@pytest.mark.parametrize("norm", ["layer_norm", "constant_norm_rescale"])
def test_per_input_normalisation_is_refused(tmp_path, norm):
    from sae_lens import StandardSAE, StandardSAEConfig

    StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations=norm, metadata=metadata())).save_model(tmp_path / norm)
    with pytest.raises(SaetoolError, match=norm) as exc:
        load_sae(tmp_path / norm)
    assert "\n" not in exc.value.one_line()


def test_unsupported_architecture_is_refused(tmp_path):
    from sae_lens import GatedSAE, GatedSAEConfig

    GatedSAE(GatedSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=metadata())).save_model(tmp_path / "gated")
    with pytest.raises(SaetoolError, match="'gated' SAE, which saetool cannot represent"):
        load_sae(tmp_path / "gated")


def test_pre_6_config(tmp_path):
    """A folder in the SAELens 5.x layout (flat config, old key names, finetuning scaling factor)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(3)
    w = {
        "W_enc": torch.randn(D_IN, D_SAE, generator=gen),
        "b_enc": torch.randn(D_SAE, generator=gen),
        "W_dec": torch.randn(D_SAE, D_IN, generator=gen),
        "b_dec": torch.randn(D_IN, generator=gen),
    }
    folder = tmp_path / "old-topk"
    folder.mkdir()
    save_file(w, str(folder / "sae_weights.safetensors"))
    cfg = {
        "model_name": "gpt2-small",
        "hook_point": "blocks.8.hook_resid_pre",
        "hook_point_layer": 8,
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": K},
        "apply_b_dec_to_input": True,
        "normalize_activations": False,
        "finetuning_scaling_factor": False,
        "context_size": 128,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    theirs = sae_lens.SAE.load_from_disk(folder)  # SAELens converts it on the fly
    ours = load_sae(folder)
    assert (ours.cfg.activation, ours.cfg.k, ours.cfg.hook, ours.cfg.model) == ("topk", K, "blocks.8.hook_resid_pre", "gpt2-small")
    assert_same(ours, theirs, inputs())

    # a 5.x finetuning scaling factor multiplies the feature activations before decoding
    scale = torch.rand(D_SAE, generator=gen) + 0.5
    save_file({**w, "scaling_factor": scale}, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({**cfg, "activation_fn_str": "relu", "activation_fn_kwargs": {}, "finetuning_scaling_factor": True}))
    ours = load_sae(folder)
    x = inputs()
    f = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    torch.testing.assert_close(ours.encode(x), f, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.decode(f), (f * scale) @ w["W_dec"] + w["b_dec"], atol=1e-4, rtol=0)


def test_hook_z_sae_reshapes_in_saelens(tmp_path):
    """saetool stores attn.hook_z flattened; SAELens reshapes [..., n_heads, d_head] itself."""
    cfg = SAEConfig(arch="relu", d_in=4 * 6, d_sae=D_SAE, hook="blocks.1.attn.hook_z")
    ours = SAE(cfg)
    randomize(ours)
    export_saelens(ours, tmp_path / "z")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "z")
    assert theirs.cfg.reshape_activations == "hook_z"
    x = inputs(24).reshape(-1, 4, 4, 6)  # [batch, pos, n_heads, d_head]
    torch.testing.assert_close(ours.encode(x.flatten(-2)), theirs.encode(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(ours(x.flatten(-2)), theirs(x).flatten(-2), atol=ATOL, rtol=0)
    assert load_sae(tmp_path / "z").cfg.hook == "blocks.1.attn.hook_z"


# -- skip transcoders (W_skip) -----------------------------------------------------------------
@pytest.mark.parametrize(("arch", "activation"), [("skip_transcoder", "relu"), ("jumprelu_skip_transcoder", "jumprelu")])
def test_skip_transcoders_both_ways(tmp_path, arch, activation):
    """SAELens' skip transcoders (+ x @ W_skip.T, W_skip [d_out, d_in]) read with their skip, and export back to them."""
    from sae_lens import JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig, SkipTranscoder, SkipTranscoderConfig

    common = {"d_in": D_IN, "d_sae": D_SAE, "d_out": D_OUT, "apply_b_dec_to_input": False, "metadata": metadata(hook_name_out="blocks.3.hook_mlp_out")}
    theirs = SkipTranscoder(SkipTranscoderConfig(**common)) if arch == "skip_transcoder" else JumpReLUSkipTranscoder(JumpReLUSkipTranscoderConfig(**common))
    randomize(theirs)
    if activation == "jumprelu":
        with torch.no_grad():
            theirs.threshold.copy_(torch.rand(D_SAE))
    theirs.save_model(tmp_path / arch)
    ours = load_sae(tmp_path / arch)
    assert ours.cfg.skip and tuple(ours.W_skip.shape) == (D_IN, D_OUT)
    x = inputs()
    assert_same(ours, theirs, x)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=ATOL, rtol=0)  # the skip term included
        assert float((ours(x) - ours.decode(ours.encode(x))).abs().max()) > 0.1
    export_saelens(ours, tmp_path / "back")
    again = sae_lens.SAE.load_from_disk(tmp_path / "back")
    assert type(again).__name__ == type(theirs).__name__
    with torch.no_grad():
        torch.testing.assert_close(again(x), theirs(x), atol=ATOL, rtol=0)
