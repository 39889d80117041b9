"""Foreign SAE formats read by saetool (Gemma Scope 1 and 2, Llama Scope, dictionary_learning):
each fixture is written here in the library's own on-disk layout, and the saetool SAE
read from it must compute what that library computes (its forward pass written out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from saetool.errors import SaetoolError
from saetool.sae.io import check_sae_matches, load_sae

D, F = 12, 40


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(n: int = 64, d: int = D, seed: int = 9, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(n, d, generator=_gen(seed)) * scale


# -- Gemma Scope (Gemma 2): params.npz ---------------------------------------------------------
def write_gemma_scope(folder: Path, *, d_in: int = D, d_sae: int = F, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    p = {
        "W_enc": g.normal(size=(d_in, d_sae)).astype(np.float32),
        "W_dec": g.normal(size=(d_sae, d_in)).astype(np.float32),
        "b_enc": g.normal(size=d_sae).astype(np.float32),
        "b_dec": g.normal(size=d_in).astype(np.float32),
        "threshold": np.abs(g.normal(size=d_sae)).astype(np.float32),
    }
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **p)
    return p


def gemma_reference(p: dict, x: torch.Tensor, skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gemma Scope's JumpReLU SAE written out: f = relu(pre) * (pre > threshold)."""
    t = {k: torch.as_tensor(v) for k, v in p.items()}
    pre = x @ t["W_enc"] + t["b_enc"]
    f = torch.relu(pre) * (pre > t["threshold"])
    y = f @ t["W_dec"] + t["b_dec"]
    return f, y if skip is None else y + x @ skip


@pytest.mark.parametrize(("repo", "hook"), [
    ("models--google--gemma-scope-2b-pt-res", "blocks.7.hook_resid_post"),
    ("gemma-scope-9b-it-mlp", "blocks.7.hook_mlp_out"),
])
def test_gemma_scope_npz(tmp_path, repo, hook):
    folder = tmp_path / repo / "snapshots" / "abc" / "layer_7" / "width_16k" / "average_l0_71"
    p = write_gemma_scope(folder)
    sae = load_sae(folder / "params.npz")  # the file or its folder
    assert (sae.cfg.activation, sae.cfg.hook, sae.cfg.d_in, sae.cfg.d_sae) == ("jumprelu", hook, D, F)
    assert sae.cfg.model == ("google/gemma-2-2b" if "2b" in repo else "google/gemma-2-9b-it")
    assert not sae.cfg.apply_b_dec_to_input and sae.cfg.options["source_format"] == "Gemma Scope"
    x = _x()
    f, y = gemma_reference(p, x)
    torch.testing.assert_close(sae.encode(x), f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), y, atol=1e-4, rtol=1e-5)
    assert 0 < (f > 0).float().mean() < 1


def test_gemma_scope_transcoder_and_embedding(tmp_path):
    tc = tmp_path / "gemma-scope-2b-pt-transcoders" / "layer_3" / "width_16k" / "average_l0_76"
    write_gemma_scope(tc)
    sae = load_sae(tc)
    assert (sae.cfg.hook, sae.cfg.hook_out) == ("blocks.3.ln2.hook_normalized", "blocks.3.hook_mlp_out")
    emb = tmp_path / "gemma-scope-2b-pt-res" / "embedding" / "width_4k" / "average_l0_6"
    p = write_gemma_scope(emb)
    sae = load_sae(emb)
    assert sae.cfg.hook == "hook_embed"
    x = _x()  # hook_embed includes the sqrt(d_model) scaling the SAE was trained without
    f, y = gemma_reference(p, x / D**0.5)
    torch.testing.assert_close(sae.encode(x), f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), y * D**0.5, atol=1e-4, rtol=1e-5)


def test_gemma_scope_without_a_layer_is_one_line(tmp_path):
    write_gemma_scope(tmp_path / "mine")
    with pytest.raises(SaetoolError, match="no layer_N"):
        load_sae(tmp_path / "mine")


# -- Gemma Scope 2 (Gemma 3): config.json + params.safetensors -------------------------------------
def write_gemma_scope_2(folder: Path, *, transcoder: bool = False, affine: bool = False, zero_skip: bool = False, seed: int = 1, d_out: int = D) -> dict[str, torch.Tensor]:
    from safetensors.torch import save_file

    g = _gen(seed)
    t = {
        "w_enc": torch.randn(D, F, generator=g),
        "w_dec": torch.randn(F, d_out, generator=g),
        "b_enc": torch.randn(F, generator=g),
        "b_dec": torch.randn(d_out, generator=g),
        "threshold": torch.rand(F, generator=g),
    }
    if affine:
        t["affine_skip_connection"] = torch.zeros(D, d_out) if zero_skip else torch.randn(D, d_out, generator=g)
    folder.mkdir(parents=True)
    save_file(t, str(folder / "params.safetensors"))
    layer = 5
    cfg = {"hf_hook_point_in": f"model.layers.{layer}.output", "model_name": "gemma-v3-1b-pt", "architecture": "jump_relu", "width": F, "l0": 20, "type": "sae"}
    if transcoder:
        cfg.update(hf_hook_point_in=f"model.layers.{layer}.pre_feedforward_layernorm.output", hf_hook_point_out=f"model.layers.{layer}.post_feedforward_layernorm.output", affine_connection=affine, type="transcoder")
    (folder / "config.json").write_text(json.dumps(cfg))
    return t


def test_gemma_scope_2_sae_and_transcoders(tmp_path):
    root = tmp_path / "models--google--gemma-scope-2-1b-pt" / "snapshots" / "r1"
    t = write_gemma_scope_2(root / "resid_post" / "layer_5_width_16k_l0_small")
    sae = load_sae(root / "resid_post" / "layer_5_width_16k_l0_small")
    assert (sae.cfg.hook, sae.cfg.is_transcoder, sae.cfg.model) == ("blocks.5.hook_resid_post", False, "google/gemma-3-1b-pt")
    x = _x()
    p = {"W_enc": t["w_enc"], "W_dec": t["w_dec"], "b_enc": t["b_enc"], "b_dec": t["b_dec"], "threshold": t["threshold"]}
    f, y = gemma_reference(p, x)
    torch.testing.assert_close(sae.encode(x), f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), y, atol=1e-4, rtol=1e-5)

    # a transcoder without the affine skip, and one whose skip is all zeros: both read exactly
    for name, affine in (("layer_5_width_16k_l0_big", False), ("layer_5_width_16k_l0_big_affine", True)):
        t = write_gemma_scope_2(root / "transcoder_all" / name, transcoder=True, affine=affine, zero_skip=True, d_out=10)
        tc = load_sae(root / "transcoder_all" / name)
        assert (tc.cfg.hook, tc.cfg.hook_out, tc.cfg.d_out) == ("blocks.5.ln2.hook_normalized", "blocks.5.hook_mlp_out", 10)
        p = {"W_enc": t["w_enc"], "W_dec": t["w_dec"], "b_enc": t["b_enc"], "b_dec": t["b_dec"], "threshold": t["threshold"]}
        torch.testing.assert_close(tc(x), gemma_reference(p, x)[1], atol=1e-4, rtol=1e-5)

        assert not tc.cfg.skip  # an all-zero skip is dropped


def test_gemma_scope_2_model_and_hook_mismatch_is_one_line(tmp_path):
    folder = tmp_path / "gemma-scope-2-270m-pt" / "resid_post" / "layer_5_width_16k_l0_small"
    write_gemma_scope_2(folder)
    sae = load_sae(folder)
    check_sae_matches(sae, d_in=D, hook="blocks.5.hook_resid_post", model="google/gemma-3-1b-pt")
    with pytest.raises(SaetoolError, match="reads blocks.5.hook_resid_post but the activations are from blocks.4"):
        check_sae_matches(sae, hook="blocks.4.hook_resid_post")
    with pytest.raises(SaetoolError, match="trained on model"):
        check_sae_matches(sae, model="smollm2-135m")


# -- Llama Scope --------------------------------------------------------------------------
def write_llama_scope(folder: Path, *, act_fn: str = "jumprelu", include_norm: bool = True, b_dec_in: bool = False, norm_in: float = 7.0, norm_out: float = 3.0, transcoder: bool = False, seed: int = 2, dtype: torch.dtype = torch.float32) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import save_file

    g = _gen(seed)
    t = {
        "encoder.weight": torch.randn(F, D, generator=g) * 0.3,
        "encoder.bias": torch.randn(F, generator=g) * 0.1,
        "decoder.weight": torch.randn(D, F, generator=g) * 0.5,
        "decoder.bias": torch.randn(D, generator=g),
    }
    hp = {
        "d_model": D, "d_sae": F, "act_fn": act_fn, "jump_relu_threshold": 0.4, "top_k": 5,
        "hook_point_in": "blocks.15.ln2.hook_normalized" if transcoder else "blocks.15.hook_resid_post",
        "hook_point_out": "blocks.15.hook_mlp_out" if transcoder else "blocks.15.hook_resid_post",
        "norm_activation": "dataset-wise", "dataset_average_activation_norm": {"in": norm_in, "out": norm_out if transcoder else norm_in},
        "sparsity_include_decoder_norm": include_norm, "apply_decoder_bias_to_pre_encoder": b_dec_in, "use_decoder_bias": True,
    }
    (folder / "checkpoints").mkdir(parents=True)
    save_file({k: v.to(dtype) for k, v in t.items()}, str(folder / "checkpoints" / "final.safetensors"))
    (folder / "hyperparams.json").write_text(json.dumps(hp))
    return hp, {k: v.to(dtype).float() for k, v in t.items()}


def llama_scope_reference(hp: dict, t: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Language-Model-SAEs' forward pass: dataset-wise norm, decoder-norm-aware sparsity."""
    n = hp["dataset_average_activation_norm"]
    s_in, s_out = D**0.5 / n["in"], D**0.5 / n["out"]
    xin = x * s_in
    if hp["apply_decoder_bias_to_pre_encoder"]:
        xin = xin - t["decoder.bias"]
    pre = xin @ t["encoder.weight"].T + t["encoder.bias"]
    norm = t["decoder.weight"].norm(dim=0) if hp["sparsity_include_decoder_norm"] else torch.ones(F)
    if hp["act_fn"] == "jumprelu":
        f = pre * (pre * norm > hp["jump_relu_threshold"])
    else:
        score = torch.relu(pre) * norm
        idx = score.topk(hp["top_k"], dim=-1).indices
        f = torch.zeros_like(pre).scatter_(-1, idx, torch.relu(pre).gather(-1, idx))
    y = (f @ t["decoder.weight"].T + t["decoder.bias"]) / s_out
    return f, y


@pytest.mark.parametrize(("act_fn", "include_norm", "b_dec_in", "transcoder"), [
    ("jumprelu", True, False, False),
    ("jumprelu", False, True, False),
    ("topk", True, False, False),
    ("jumprelu", True, False, True),
])
def test_llama_scope(tmp_path, act_fn, include_norm, b_dec_in, transcoder):
    folder = tmp_path / "Llama3_1-8B-Base-LXR-8x" / "Llama3_1-8B-Base-L15R-8x"
    hp, t = write_llama_scope(folder, act_fn=act_fn, include_norm=include_norm, b_dec_in=b_dec_in, transcoder=transcoder)
    sae = load_sae(folder / "checkpoints" / "final.safetensors")
    assert (sae.cfg.activation, sae.cfg.model) == (act_fn, "meta-llama/Llama-3.1-8B")
    assert sae.cfg.hook == hp["hook_point_in"] and sae.cfg.hook_out == hp["hook_point_out"]
    x = _x(scale=3.0)
    f, y = llama_scope_reference(hp, t, x)
    got = sae.encode(x)
    assert torch.equal(got > 0, f > 0)  # the same features fire
    if act_fn == "topk":  # activations carry the decoder norm (moved into the encoder); the output is unchanged
        got = got / t["decoder.weight"].norm(dim=0)
    torch.testing.assert_close(got, f, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sae.decode(sae.encode(x)), y, atol=1e-4, rtol=1e-4)
    assert 0 < (f > 0).float().mean() < 1


def test_llama_scope_bfloat16_and_tokenwise(tmp_path):
    write_llama_scope(tmp_path / "bf16", dtype=torch.bfloat16)
    assert load_sae(tmp_path / "bf16").dtype == torch.bfloat16  # the checkpoints' own dtype is kept
    folder = tmp_path / "L0R"
    write_llama_scope(folder)
    hp = json.loads((folder / "hyperparams.json").read_text())
    (folder / "hyperparams.json").write_text(json.dumps({**hp, "norm_activation": "token-wise"}))
    with pytest.raises(SaetoolError, match="token-wise"):
        load_sae(folder)


# -- dictionary_learning ------------------------------------------------------------------
def dl_state(cls: str, seed: int = 3) -> dict[str, torch.Tensor]:
    """State dicts with dictionary_learning's names and shapes for each class."""
    g = _gen(seed)
    enc, dec = torch.randn(F, D, generator=g) * 0.4, torch.randn(D, F, generator=g)
    b_enc, b_dec = torch.randn(F, generator=g) * 0.2, torch.randn(D, generator=g)
    if cls == "AutoEncoder":
        return {"bias": b_dec, "encoder.weight": enc, "encoder.bias": b_enc, "decoder.weight": dec}
    if cls == "AutoEncoderTopK":
        return {"k": torch.tensor(5, dtype=torch.int), "threshold": torch.tensor(-1.0), "decoder.weight": dec, "encoder.weight": enc, "encoder.bias": b_enc, "b_dec": b_dec}
    if cls == "BatchTopKSAE":
        return {"k": torch.tensor(5, dtype=torch.int), "threshold": torch.tensor(0.3), "decoder.weight": dec, "encoder.weight": enc, "encoder.bias": b_enc, "b_dec": b_dec}
    return {"W_enc": enc.T.contiguous(), "b_enc": b_enc, "W_dec": dec.T.contiguous(), "b_dec": b_dec, "threshold": torch.rand(F, generator=g)}


def dl_reference(cls: str, s: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dictionary_learning's encode/decode for each class, written out."""
    if cls == "AutoEncoder":
        f = torch.relu((x - s["bias"]) @ s["encoder.weight"].T + s["encoder.bias"])
        return f, f @ s["decoder.weight"].T + s["bias"]
    if cls in ("AutoEncoderTopK", "BatchTopKSAE"):
        post = torch.relu((x - s["b_dec"]) @ s["encoder.weight"].T + s["encoder.bias"])
        if cls == "BatchTopKSAE":  # inference: use_threshold=True
            f = post * (post > s["threshold"])
        else:
            top = post.topk(int(s["k"]), dim=-1)
            f = torch.zeros_like(post).scatter_(-1, top.indices, top.values)
        return f, f @ s["decoder.weight"].T + s["b_dec"]
    pre = x @ s["W_enc"] + s["b_enc"]
    f = torch.relu(pre * (pre > s["threshold"]))
    return f, f @ s["W_dec"] + s["b_dec"]


def write_dl(folder: Path, cls: str, *, config: bool = True) -> dict[str, torch.Tensor]:
    s = dl_state(cls)
    folder.mkdir(parents=True)
    torch.save(s, folder / "ae.pt")
    if config:
        trainer = {"dict_class": cls, "activation_dim": D, "dict_size": F, "layer": 4, "lm_name": "EleutherAI/pythia-70m-deduped", "submodule_name": "resid_post_layer_4"}
        if "k" in s:
            trainer["k"] = 5
        (folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}}))
    return s


@pytest.mark.parametrize("cls", ["AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE", "JumpReluAutoEncoder"])
def test_dictionary_learning(tmp_path, cls):
    s = write_dl(tmp_path / "trainer_0", cls)
    sae = load_sae(tmp_path / "trainer_0" / "ae.pt")
    assert (sae.cfg.hook, sae.cfg.model, sae.cfg.options["dict_class"]) == ("blocks.4.hook_resid_post", "EleutherAI/pythia-70m-deduped", cls)
    x = _x()
    f, y = dl_reference(cls, s, x)
    torch.testing.assert_close(sae.encode(x), f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae(x), y, atol=1e-4, rtol=1e-5)
    assert 0 < (f > 0).float().mean() < 1


def test_dictionary_learning_without_config_guesses_the_class(tmp_path):
    s = write_dl(tmp_path / "t", "AutoEncoderTopK", config=False)
    sae = load_sae(tmp_path / "t")
    assert sae.cfg.activation == "topk" and sae.cfg.k == 5
    torch.testing.assert_close(sae(_x()), dl_reference("AutoEncoderTopK", s, _x())[1], atol=1e-4, rtol=1e-5)


def test_dictionary_learning_refuses_anything_but_a_tensor_dict(tmp_path):
    # a training backup (step, optimizer state, config) is a pickle of more than tensors
    folder = tmp_path / "backup"
    folder.mkdir()
    torch.save({"step": 10, "ae": dl_state("AutoEncoder"), "config": {"lr": 1e-3}}, folder / "ae.pt")
    with pytest.raises(SaetoolError, match="not a flat dict of tensors"):
        load_sae(folder)
    # a gated autoencoder has no saetool equivalent
    write_dl(tmp_path / "gated", "AutoEncoder")
    cfg = json.loads((tmp_path / "gated" / "config.json").read_text())
    cfg["trainer"]["dict_class"] = "GatedAutoEncoder"
    (tmp_path / "gated" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SaetoolError, match="GatedAutoEncoder"):
        load_sae(tmp_path / "gated")


# -- export: dictionary_learning ---------------------------------------------------------------
@pytest.mark.parametrize(("activation", "apply_b_dec"), [("relu", True), ("relu", False), ("topk", True), ("topk", False), ("jumprelu", True), ("jumprelu", False)])
def test_dictionary_learning_export_round_trip(tmp_path, activation, apply_b_dec):
    from test_sae_io import make_sae

    from saetool.sae.formats.dictionary_learning import export_dictionary_learning

    sae = make_sae(activation, apply_b_dec=apply_b_dec)
    if activation == "jumprelu":
        sae.threshold.data = sae.threshold.data.abs()
    cls = export_dictionary_learning(sae, tmp_path / "dl")
    assert cls == {"relu": "AutoEncoder", "topk": "AutoEncoderTopK", "jumprelu": "JumpReluAutoEncoder"}[activation]
    state = torch.load(tmp_path / "dl" / "ae.pt", weights_only=True)
    x = _x(d=sae.cfg.d_in)
    f, y = dl_reference(cls, state, x)  # what dictionary_learning computes from the exported file
    torch.testing.assert_close(f, sae.encode(x), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(y, sae(x), atol=1e-4, rtol=1e-5)
    back = load_sae(tmp_path / "dl")  # and saetool reads it back to the same encodings
    assert (back.cfg.hook, back.cfg.model, back.cfg.k) == (sae.cfg.hook, sae.cfg.model, sae.cfg.k)
    torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-4, rtol=1e-5)


def test_dictionary_learning_export_refuses_transcoders(tmp_path):
    from test_sae_io import make_sae

    from saetool.sae.formats.dictionary_learning import export_dictionary_learning

    with pytest.raises(SaetoolError, match="no transcoder"):
        export_dictionary_learning(make_sae("relu", transcoder=True), tmp_path / "dl")


# -- export: sparsify ----------------------------------------------------------------------------
@pytest.mark.parametrize(("transcoder", "apply_b_dec"), [(False, True), (False, False), (True, False)])
def test_sparsify_export_round_trip(tmp_path, transcoder, apply_b_dec):
    from safetensors.torch import load_file
    from test_sae_io import make_sae, sparsify_reference

    from saetool.sae.config import SAEConfig
    from saetool.sae.formats.sparsify import export_sparsify
    from saetool.sae.model import build_sae

    sae = make_sae("topk", apply_b_dec=apply_b_dec)
    if transcoder:  # sparsify's transcoders read resid_pre and write resid_post of one layer
        cfg = SAEConfig.from_dict({**sae.cfg.to_dict(), "hook": "blocks.2.hook_resid_pre", "hook_out": "blocks.2.hook_resid_post", "d_out": 12, "apply_b_dec_to_input": False})
        g = torch.Generator().manual_seed(5)
        sae = build_sae(cfg, {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": torch.randn(sae.cfg.d_sae, 12, generator=g), "b_dec": torch.randn(12, generator=g)})
    hookpoint = export_sparsify(sae, tmp_path / "run")
    assert hookpoint == "layers.2"
    t = load_file(str(tmp_path / "run" / "layers.2" / "sae.safetensors"))
    x = _x(d=sae.cfg.d_in)
    dense, out = sparsify_reference(t, x, sae.cfg.k, transcode=transcoder)  # what sparsify computes from the files
    torch.testing.assert_close(dense, sae.encode(x), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out, sae(x), atol=1e-4, rtol=1e-5)
    back = load_sae(tmp_path / "run")  # the run folder with its one hookpoint
    assert (back.cfg.hook, back.cfg.hook_out, back.cfg.model, back.cfg.k) == (sae.cfg.hook, sae.cfg.hook_out, sae.cfg.model, sae.cfg.k)
    torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-4, rtol=1e-5)


def test_sparsify_export_refuses_what_it_cannot_hold(tmp_path):
    from test_sae_io import make_sae

    from saetool.sae.formats.sparsify import export_sparsify

    with pytest.raises(SaetoolError, match="sparsify SAEs are topk"):
        export_sparsify(make_sae("relu"), tmp_path / "a")
    with pytest.raises(SaetoolError, match="no hookpoint"):
        export_sparsify(make_sae("topk", transcoder=True), tmp_path / "b")  # resid_mid -> mlp_out


def test_gemma_scope_2_affine_transcoder_keeps_its_skip(tmp_path):
    from test_sae_io import PROV

    from saetool.sae.io import read_sae_artifact, write_sae_artifact

    folder = tmp_path / "gemma-scope-2-1b-pt" / "transcoder_all" / "layer_5_width_16k_l0_big_affine"
    t = write_gemma_scope_2(folder, transcoder=True, affine=True, d_out=10)
    tc = load_sae(folder)
    assert tc.cfg.skip and torch.equal(tc.W_skip, t["affine_skip_connection"])
    x = _x()
    p = {"W_enc": t["w_enc"], "W_dec": t["w_dec"], "b_enc": t["b_enc"], "b_dec": t["b_dec"], "threshold": t["threshold"]}
    f, y = gemma_reference(p, x, skip=t["affine_skip_connection"])
    torch.testing.assert_close(tc.encode(x), f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tc(x), y, atol=1e-4, rtol=1e-5)
    # the sae artifact keeps it
    write_sae_artifact(tmp_path / "tc.h5", tc, provenance=PROV)
    with read_sae_artifact(tmp_path / "tc.h5") as art:
        back = art.sae()
    assert back.cfg.skip and torch.equal(back(x), tc(x))
    from saetool.sae.formats.dictionary_learning import export_dictionary_learning

    with pytest.raises(SaetoolError, match="skip connection"):
        export_dictionary_learning(tc, tmp_path / "dl")
    from saetool.train.initialize import from_pretrained

    with pytest.raises(SaetoolError, match="training does not continue"):  # --init-from would drop it silently
        from_pretrained(tc, tc.cfg, None)


def test_eleuther_sae_folders_as_delphi_loads_them(tmp_path):
    """delphi reads EleutherAI's SAEs (sparsify, and the older EleutherAI/sae layout whose
    cfg.json has no activation/transcode keys); both read as sparsify topk SAEs."""
    from test_sae_io import sparsify_reference, write_sparsify

    t = write_sparsify(tmp_path / "sae-llama" / "layers.5", k=3)
    (tmp_path / "sae-llama" / "layers.5" / "cfg.json").write_text(json.dumps({"expansion_factor": 3, "normalize_decoder": True, "num_latents": 0, "k": 3, "signed": False, "d_in": 12}))
    sae = load_sae(tmp_path / "sae-llama" / "layers.5")
    assert (sae.cfg.activation, sae.cfg.k, sae.cfg.hook, sae.cfg.is_transcoder) == ("topk", 3, "blocks.5.hook_resid_post", False)
    x = _x()
    dense, out = sparsify_reference(t, x, 3)
    torch.testing.assert_close(sae.encode(x), dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(sae(x), out, atol=1e-5, rtol=0)
