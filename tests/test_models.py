"""Model backends on real models (SmolLM2 from its PyPI GGUF, a random tiny GPT-2): no mocks.

The transformers backend (PyTorch hooks on plain HF modules) and the
transformer-lens backend (TransformerBridge) must give the same activations.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from saetool.errors import ModelError
from saetool.models.base import HookedModel
from saetool.models.hooks import SITES

SENTENCES = [
    "The cat sat on the mat and looked out of the window.",
    "Paris is the capital of France.",
    "Water boils at one hundred degrees Celsius at sea level.",
]


def encode(model: HookedModel, texts=SENTENCES):
    tok = model.tokenizer
    return tok(list(texts), return_tensors="pt", padding=True, padding_side="left")


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Max abs difference over real (non-pad) tokens."""
    return float((a - b)[mask.bool()].abs().max())


def hook_counts(module: torch.nn.Module, *, ours_only: bool = False) -> int:
    """Forward/backward hooks on ``module`` and its children (only saetool's if ``ours_only``).

    transformers installs hooks of its own the first time ``output_hidden_states``
    is used, so the tests compare with a count taken before.
    """
    total = 0
    for m in module.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            for fn in (getattr(m, attr, None) or {}).values():
                if not ours_only or getattr(fn, "__module__", "").startswith("saetool"):
                    total += 1
    return total


@pytest.fixture(scope="module")
def tiny_gpt2_tl(tiny_gpt2_dir):
    from saetool.models.registry import load_model

    return load_model(str(tiny_gpt2_dir), backend="transformer-lens")


# -- the two backends agree --------------------------------------------------------------


def test_tiny_gpt2_backends_agree(tiny_gpt2, tiny_gpt2_tl):
    assert tiny_gpt2.backend_name == "transformers"
    assert tiny_gpt2_tl.backend_name == "transformer-lens"
    assert tiny_gpt2.supported_sites == SITES
    assert tiny_gpt2_tl.supported_sites == SITES
    assert (tiny_gpt2.n_layers, tiny_gpt2.d_model) == (tiny_gpt2_tl.n_layers, tiny_gpt2_tl.d_model) == (2, 64)
    enc = encode(tiny_gpt2)
    hooks = [f"blocks.{layer}.{site}" for layer in range(2) for site in SITES]
    a = tiny_gpt2.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    b = tiny_gpt2_tl.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    assert set(a) == set(b) == set(hooks)
    for hook in hooks:
        assert a[hook].shape == b[hook].shape == (3, enc.input_ids.shape[1], 64)
        assert tiny_gpt2.hook_dim(hook) == tiny_gpt2_tl.hook_dim(hook) == 64
        assert max_diff(a[hook], b[hook], enc.attention_mask) <= 1e-4, hook
        assert float(a[hook].abs().max()) > 1e-3  # not trivially zero
    la = tiny_gpt2.logits(enc.input_ids, enc.attention_mask)
    lb = tiny_gpt2_tl.logits(enc.input_ids, enc.attention_mask)
    assert la.shape == lb.shape == (3, enc.input_ids.shape[1], len(tiny_gpt2.tokenizer))
    assert max_diff(la, lb, enc.attention_mask) <= 1e-4


def test_tiny_gpt2_edits_agree_across_backends(tiny_gpt2, tiny_gpt2_tl):
    enc = encode(tiny_gpt2)
    direction = torch.linspace(-1.0, 1.0, 64)
    edits = {"blocks.0.hook_resid_post": lambda x: x + direction}
    la = tiny_gpt2.logits(enc.input_ids, enc.attention_mask, edit_hooks=edits)
    lb = tiny_gpt2_tl.logits(enc.input_ids, enc.attention_mask, edit_hooks=edits)
    assert max_diff(la, lb, enc.attention_mask) <= 1e-4
    plain = tiny_gpt2.logits(enc.input_ids, enc.attention_mask)
    assert max_diff(la, plain, enc.attention_mask) > 1e-3

    z_edit = {"blocks.1.attn.hook_z": lambda z: z * torch.tensor([0.0, 1.0, 1.0, 1.0])[:, None]}  # ablate head 0
    za = tiny_gpt2.run_with_cache(enc.input_ids, ["blocks.1.hook_resid_post"], enc.attention_mask, edit_hooks=z_edit)
    zb = tiny_gpt2_tl.run_with_cache(enc.input_ids, ["blocks.1.hook_resid_post"], enc.attention_mask, edit_hooks=z_edit)
    assert max_diff(za["blocks.1.hook_resid_post"], zb["blocks.1.hook_resid_post"], enc.attention_mask) <= 1e-4

    ga = tiny_gpt2.generate(enc.input_ids, enc.attention_mask, edit_hooks=edits, max_new_tokens=5)
    gb = tiny_gpt2_tl.generate(enc.input_ids, enc.attention_mask, edit_hooks=edits, max_new_tokens=5)
    assert ga.shape == gb.shape == (3, 5)
    assert torch.equal(ga, gb)


def test_smollm2_backends_agree(smollm2):
    from saetool.models.registry import load_model

    tl = load_model("smollm2-135m", backend="transformer-lens")
    assert tl.supported_sites == SITES
    assert (smollm2.n_layers, smollm2.d_model) == (tl.n_layers, tl.d_model) == (30, 576)
    enc = encode(smollm2)
    hooks = [f"blocks.{layer}.{site}" for layer in (0, 12) for site in SITES] + ["blocks.29.hook_resid_post"]
    a = smollm2.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    b = tl.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    # With the same (eager) attention computation the backends agree within 1e-4.
    from saetool.models.hf_backend import TransformersModel
    from saetool.models.registry import resolve_model

    hf_eager, tok = resolve_model("smollm2-135m").load_hf(attn_implementation="eager")
    eager = TransformersModel(hf_eager, tok, model_id="smollm2-135m").run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    for hook in hooks:
        assert a[hook].shape == b[hook].shape == eager[hook].shape == (3, enc.input_ids.shape[1], 576), hook
        assert max_diff(eager[hook], b[hook], enc.attention_mask) <= 1e-4, hook
        # The default fused sdpa kernel rounds differently (~40 float32 ulps by layer
        # 12); SmolLM2's residual stream also carries "massive activations" (|x| up to
        # ~2e4) on BOS, so allow 1e-4 absolute plus a few ulps of the largest value.
        diff = max_diff(a[hook], b[hook], enc.attention_mask)
        scale = float(a[hook][enc.attention_mask.bool()].abs().max())
        assert diff <= 1e-4 + 1e-6 * scale, (hook, diff, scale)
    # stopping early (TL's stop_at_layer) gives the same values as the full pass
    early = tl.run_with_cache(enc.input_ids, ["blocks.12.hook_resid_post", "blocks.0.attn.hook_z"], enc.attention_mask)
    for hook in early:
        assert torch.equal(early[hook], b[hook]), hook
    assert max_diff(smollm2.logits(enc.input_ids, enc.attention_mask), tl.logits(enc.input_ids, enc.attention_mask), enc.attention_mask) <= 1e-3
    # greedy decoding matches too
    ga = smollm2.generate(enc.input_ids, enc.attention_mask, max_new_tokens=6)
    gb = tl.generate(enc.input_ids, enc.attention_mask, max_new_tokens=6)
    assert torch.equal(ga, gb)


# -- the transformers backend ----------------------------------------------------------------


def test_smollm2_attributes(smollm2):
    assert smollm2.model_id == "smollm2-135m"
    assert smollm2.device == torch.device("cpu")
    assert smollm2.dtype == torch.float32
    assert smollm2.hook_dim("blocks.3.hook_resid_post") == 576
    assert smollm2.hook_dim("blocks.3.attn.hook_z") == 9 * 64
    assert smollm2.tokenizer.pad_token_id is not None


def test_stop_layer_matches_full_pass_and_hooks_are_removed(smollm2):
    enc = encode(smollm2, SENTENCES[:2])
    baseline = hook_counts(smollm2.model)
    early = smollm2.run_with_cache(enc.input_ids, ["blocks.2.hook_resid_post", "blocks.1.attn.hook_z"], enc.attention_mask)
    assert hook_counts(smollm2.model) == baseline
    assert hook_counts(smollm2.model, ours_only=True) == 0
    full = smollm2.run_with_cache(enc.input_ids, ["blocks.2.hook_resid_post", "blocks.1.attn.hook_z", "blocks.29.hook_resid_post"], enc.attention_mask)
    for hook in early:
        assert torch.equal(early[hook], full[hook]), hook
        assert not early[hook].requires_grad

    # resid_post of layer L is what the model itself hands to layer L+1
    with torch.no_grad():
        hidden = smollm2.model(**enc, output_hidden_states=True).hidden_states
    assert max_diff(full["blocks.2.hook_resid_post"], hidden[3], enc.attention_mask) <= 1e-3

    # hooks are present during a pass and removed afterwards, even when a hook raises
    baseline = hook_counts(smollm2.model)
    seen = []

    def spy(x):
        seen.append(hook_counts(smollm2.model, ours_only=True))

    smollm2.logits(enc.input_ids, enc.attention_mask, edit_hooks={"blocks.0.hook_resid_post": spy})
    assert seen and seen[0] > 0
    assert hook_counts(smollm2.model) == baseline

    def boom(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        smollm2.run_with_cache(enc.input_ids, ["blocks.3.hook_resid_post"], enc.attention_mask, edit_hooks={"blocks.1.hook_mlp_out": boom})
    assert hook_counts(smollm2.model) == baseline
    assert hook_counts(smollm2.model, ours_only=True) == 0


def test_site_relations(smollm2):
    """resid_mid = resid_pre + attention's output; resid_post = resid_mid + mlp_out."""
    enc = encode(smollm2, SENTENCES[1:])
    layer = 4
    hooks = [f"blocks.{layer}.{s}" for s in SITES] + [f"blocks.{layer + 1}.hook_resid_pre"]
    acts = smollm2.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    pre, mid, post = (acts[f"blocks.{layer}.{s}"] for s in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post"))
    assert torch.equal(post, acts[f"blocks.{layer + 1}.hook_resid_pre"])
    assert torch.equal(post, mid + acts[f"blocks.{layer}.hook_mlp_out"])
    o_proj = smollm2.model.model.layers[layer].self_attn.o_proj
    with torch.no_grad():
        attn_out = o_proj(acts[f"blocks.{layer}.attn.hook_z"])
    assert max_diff(mid - pre, attn_out, enc.attention_mask) <= 1e-3


def test_padding_does_not_change_activations(smollm2):
    enc = encode(smollm2, SENTENCES[:2])
    hook = "blocks.6.hook_resid_post"
    batched = smollm2.run_with_cache(enc.input_ids, [hook], enc.attention_mask)[hook]
    short = smollm2.tokenizer([SENTENCES[1]], return_tensors="pt")
    alone = smollm2.run_with_cache(short.input_ids, [hook])[hook]
    n = short.input_ids.shape[1]
    assert batched.shape[1] > n  # the second row is left-padded
    assert float((batched[1, -n:] - alone[0]).abs().max()) <= 1e-3


def test_edit_hooks_change_logits(smollm2):
    enc = encode(smollm2, SENTENCES[1:2])
    plain = smollm2.logits(enc.input_ids, enc.attention_mask)
    zeroed = smollm2.logits(enc.input_ids, enc.attention_mask, edit_hooks={"blocks.10.hook_resid_post": torch.zeros_like})
    assert plain.shape == (1, enc.input_ids.shape[1], 49152)
    assert float((plain - zeroed).abs().max()) > 1.0
    # a hook that returns None leaves the pass unchanged
    same = smollm2.logits(enc.input_ids, enc.attention_mask, edit_hooks={"blocks.10.hook_resid_post": lambda x: None})
    assert torch.equal(plain, same)
    # the edit is what the cache sees, and it propagates: resid_pre of L+1 is zero
    acts = smollm2.run_with_cache(
        enc.input_ids, ["blocks.10.hook_resid_post", "blocks.11.hook_resid_pre"], enc.attention_mask,
        edit_hooks={"blocks.10.hook_resid_post": torch.zeros_like},
    )
    assert float(acts["blocks.11.hook_resid_pre"].abs().max()) == 0.0
    # editing resid_mid changes the residual stream itself, not only the MLP input
    acts = smollm2.run_with_cache(
        enc.input_ids, [f"blocks.5.{s}" for s in ("hook_resid_mid", "hook_mlp_out", "hook_resid_post")], enc.attention_mask,
        edit_hooks={"blocks.5.hook_resid_mid": lambda x: x * 0.5},
    )
    expected = acts["blocks.5.hook_resid_mid"] + acts["blocks.5.hook_mlp_out"]
    assert float((acts["blocks.5.hook_resid_post"] - expected).abs().max()) <= 1e-2


def _chat_prompts(model: HookedModel):
    tok = model.tokenizer
    texts = [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in ("What is the capital of France?", "Name a colour.")
    ]
    return tok(texts, return_tensors="pt", padding=True, padding_side="left")


def test_generate_greedy_deterministic_and_edits_apply(smollm2):
    enc = _chat_prompts(smollm2)
    first = smollm2.generate(enc.input_ids, enc.attention_mask, max_new_tokens=8)
    again = smollm2.generate(enc.input_ids, enc.attention_mask, max_new_tokens=8)
    assert first.shape == (2, 8)
    assert torch.equal(first, again)
    assert "Paris" in smollm2.tokenizer.decode(first[0])
    push = torch.randn(576, generator=torch.Generator().manual_seed(0)) * 20.0
    steered = smollm2.generate(enc.input_ids, enc.attention_mask, max_new_tokens=8, edit_hooks={"blocks.8.hook_resid_post": lambda x: x + push})
    assert steered.shape == (2, 8)
    assert not torch.equal(first, steered)
    assert hook_counts(smollm2.model, ours_only=True) == 0


def test_generate_sampling_reproducible_with_seed(smollm2):
    enc = _chat_prompts(smollm2)
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=1.5, top_p=1.0)
    a = smollm2.generate(enc.input_ids, enc.attention_mask, seed=123, **kwargs)
    b = smollm2.generate(enc.input_ids, enc.attention_mask, seed=123, **kwargs)
    c = smollm2.generate(enc.input_ids, enc.attention_mask, seed=7, **kwargs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the caller's global RNG is left alone
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    smollm2.generate(enc.input_ids, enc.attention_mask, seed=5, **kwargs)
    assert torch.equal(torch.rand(3), expected)


def test_generate_pads_after_eos(smollm2):
    from saetool.models.generation import pad_after_eos

    tokens = torch.tensor([[5, 2, 7, 8], [5, 6, 7, 8]])
    out = pad_after_eos(tokens, 6, eos_ids=[2], pad_id=0)
    assert out.tolist() == [[5, 2, 0, 0, 0, 0], [5, 6, 7, 8, 0, 0]]
    # SmolLM2 answers "Name a colour." briefly and stops: the rest is padding
    enc = _chat_prompts(smollm2)
    out = smollm2.generate(enc.input_ids[1:], enc.attention_mask[1:], max_new_tokens=24)
    eos = smollm2.tokenizer.eos_token_id
    row = out[0].tolist()
    assert eos in row
    assert all(t == smollm2.tokenizer.pad_token_id for t in row[row.index(eos) + 1 :])


# -- loading and errors ------------------------------------------------------------------------


def test_embedded_model_loads_from_cache(smollm2):
    from saetool.models.embedded import EMBEDDED_MODELS, SMOLLM2
    from saetool.models.registry import load_model, resolve_model

    assert {spec.name for spec in EMBEDDED_MODELS} == {"smollm2-135m", "gemma3-270m"}
    assert SMOLLM2.is_cached()
    source = resolve_model("smollm2-135m")
    assert source.path == SMOLLM2.cache_path()
    assert source.hf_id == "HuggingFaceTB/SmolLM2-135M-Instruct"

    def must_not_build(folder):
        raise AssertionError("the cached model was rebuilt")

    assert dataclasses.replace(SMOLLM2, build=must_not_build).ensure_cached() == SMOLLM2.cache_path()
    again = load_model("smollm2-135m")
    assert again.n_layers == 30
    enc = encode(again, SENTENCES[:1])
    hook = "blocks.3.hook_resid_post"
    assert torch.equal(again.run_with_cache(enc.input_ids, [hook])[hook], smollm2.run_with_cache(enc.input_ids, [hook])[hook])


def test_unknown_hub_model_offline_is_a_one_line_error():
    from saetool.models.registry import load_model

    with pytest.raises(ModelError) as info:
        load_model("not/a-model")
    line = info.value.one_line()
    assert "not/a-model" in line
    assert "\n" not in line


def test_bad_hooks_are_model_errors(smollm2, tiny_gpt2_tl):
    ids = torch.tensor([[1, 2, 3]])
    for model in (smollm2, tiny_gpt2_tl):
        with pytest.raises(ModelError, match="out of range"):
            model.run_with_cache(ids, [f"blocks.{model.n_layers}.hook_resid_post"])
        with pytest.raises(ModelError, match="out of range"):
            model.logits(ids, edit_hooks={"blocks.99.hook_resid_post": torch.zeros_like})
        with pytest.raises(ModelError, match="unknown hook"):
            model.run_with_cache(ids, ["blocks.0.hook_nonsense"])
        with pytest.raises(ModelError):
            model.hook_dim("blocks.-1.hook_resid_post")


def test_unsupported_architecture_is_a_model_error():
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    from saetool.models.embedded import SMOLLM2
    from saetool.models.hf_backend import TransformersModel

    tok = AutoTokenizer.from_pretrained(str(SMOLLM2.cache_path()))
    model = BloomForCausalLM(BloomConfig(vocab_size=256, hidden_size=32, n_layer=1, n_head=2))
    with pytest.raises(ModelError, match="model_type 'bloom'") as info:
        TransformersModel(model, tok, model_id="bloom-tiny")
    assert "llama" in info.value.one_line()


@pytest.mark.parametrize(
    "model_type",
    ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gpt2"],
)
def test_module_maps_on_random_tiny_models(model_type, tiny_gpt2):
    """Each supported architecture: sites line up with HF's hidden states and with each other
    (the tiny GPT-2 lends its tokenizer, SmolLM2's)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from saetool.models.archs import arch_for, get_path
    from saetool.models.hf_backend import TransformersModel

    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tiny_gpt2.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = AutoModelForCausalLM.from_config(config).eval()
    model = TransformersModel(hf, tiny_gpt2.tokenizer, model_id=f"tiny-{model_type}")
    enc = encode(tiny_gpt2, SENTENCES[:2])
    hooks = [f"blocks.{layer}.{site}" for layer in range(3) for site in SITES]
    acts = model.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    with torch.no_grad():
        hidden = hf(**enc, position_ids=(enc.attention_mask.cumsum(-1) - 1).clamp(min=0), output_hidden_states=True).hidden_states
    mask = enc.attention_mask
    arch = arch_for(model_type)
    for layer in range(3):
        pre, mid, post, mlp, z = (acts[f"blocks.{layer}.{s}"] for s in SITES)
        if layer > 0:
            assert max_diff(pre, hidden[layer], mask) <= 1e-5
        if layer < 2:  # HF's last hidden state has the final norm applied
            assert max_diff(post, hidden[layer + 1], mask) <= 1e-5
        assert torch.equal(post, mid + mlp)
        assert z.shape[-1] == model.hook_dim(f"blocks.{layer}.attn.hook_z") == 4 * 16
        block = model.layers[layer]
        with torch.no_grad():
            attn = get_path(block, arch.o_proj)(z)
            if arch.attn_out == "post_attention_layernorm":
                attn = block.post_attention_layernorm(attn)
        assert max_diff(mid - pre, attn, mask) <= 1e-5
    assert hook_counts(hf, ours_only=True) == 0


@pytest.mark.slow
def test_gemma3_270m_runs_with_cache():
    from saetool.models.registry import load_model

    gemma = load_model("gemma3-270m")
    assert gemma.model_type == "gemma3_text"
    assert (gemma.n_layers, gemma.d_model) == (18, 640)
    assert type(gemma.model).__name__ == "Gemma3ForCausalLM"
    enc = encode(gemma, SENTENCES[:2])
    hooks = ["blocks.5.hook_resid_post", "blocks.5.hook_mlp_out", "blocks.5.attn.hook_z"]
    acts = gemma.run_with_cache(enc.input_ids, hooks, enc.attention_mask)
    assert acts["blocks.5.hook_resid_post"].shape == (2, enc.input_ids.shape[1], 640)
    assert acts["blocks.5.attn.hook_z"].shape == (2, enc.input_ids.shape[1], gemma.hook_dim("blocks.5.attn.hook_z"))
    for hook in hooks:
        assert torch.isfinite(acts[hook]).all(), hook


@pytest.mark.parametrize("backend", ["transformers", "transformer-lens"])
def test_sequences_past_the_models_positions_are_refused_before_running(backend, tiny_gpt2, tiny_gpt2_tl):
    """Issue 16, class 8, at its root: each backend knows its position limit and checks every
    sequence it is given (run, logits, generate) with one line instead of an IndexError midway."""
    model = tiny_gpt2 if backend == "transformers" else tiny_gpt2_tl
    assert model.max_positions == 256
    ok, long = torch.zeros(1, 256, dtype=torch.long), torch.zeros(1, 257, dtype=torch.long)
    assert model.run_with_cache(ok, ["blocks.0.hook_resid_post"])["blocks.0.hook_resid_post"].shape[1] == 256
    for call in (lambda: model.run_with_cache(long, ["blocks.0.hook_resid_post"]), lambda: model.logits(long),
                 lambda: model.generate(torch.zeros(1, 250, dtype=torch.long), max_new_tokens=7)):
        with pytest.raises(ModelError, match=r"needs 257 positions but the model takes at most 256") as exc:
            call()
        assert "\n" not in exc.value.one_line()
