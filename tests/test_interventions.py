"""Interventions: add moves activations by exactly alpha·v, ablate leaves no projection,
clamp keeps the SAE's error term, generated-only leaves the prompt alone."""

from __future__ import annotations

import math

import pytest
import torch

from saetool.errors import SaetoolError
from saetool.sae.config import SAEConfig
from saetool.sae.model import SAE
from saetool.steer.interventions import Ablate, Add, Clamp, NonFiniteActivations, scaled_vector

HOOK = "blocks.6.hook_resid_post"


def random_sae(d_in: int, d_sae: int = 48, seed: int = 0, hook: str = HOOK) -> SAE:
    torch.manual_seed(seed)
    sae = SAE(SAEConfig(arch="relu", d_in=d_in, d_sae=d_sae, hook=hook, activation="relu"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae) / math.sqrt(d_in))
        sae.b_enc.copy_(torch.randn(d_sae) * 0.1)
        sae.W_dec.copy_(torch.randn(d_sae, d_in) / math.sqrt(d_sae))
        sae.b_dec.copy_(torch.randn(d_in) * 0.1)
    return sae


def test_registered_through_the_hook():
    from saetool.plugins import PluginHost

    regs = PluginHost(load_entry_points=False).collect("interventions")
    assert {"add", "ablate", "clamp"} <= set(regs)
    assert all(regs[n].plugin == "saetool.builtins.steer" for n in ("add", "ablate", "clamp"))


def test_scales():
    v = torch.tensor([3.0, 4.0])
    assert torch.allclose(scaled_vector(v, "raw"), v)
    assert torch.allclose(scaled_vector(v, "unit"), v / 5)
    assert torch.allclose(scaled_vector(v, "relative", 10.0), v / 5 * 10)
    with pytest.raises(SaetoolError, match="relative"):
        scaled_vector(v, "relative", None)
    with pytest.raises(SaetoolError, match="zero"):
        scaled_vector(torch.zeros(2), "unit")


def test_add_and_ablate_on_plain_tensors():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    v = torch.randn(16)
    u = v / v.norm()
    out = Add().make_hook(alpha=2.5, vector=u)(x)
    assert torch.allclose(out - x, (2.5 * u).expand_as(x), atol=1e-6)
    ab = Ablate().make_hook(alpha=1.0, vector=v * 7)(x)  # scale of v does not matter
    assert (ab @ u).abs().max() < 1e-5
    assert torch.allclose(ab + (x @ u).unsqueeze(-1) * u, x, atol=1e-5)  # only the u component changed
    reflected = Ablate().make_hook(alpha=2.0, vector=v)(x)
    assert torch.allclose(reflected @ u, -(x @ u), atol=1e-5)


def test_clamp_keeps_the_sae_error_term():
    sae = random_sae(16, 24)
    torch.manual_seed(1)
    x = torch.randn(2, 5, 16) * 3
    feature, value = 7, 5.0
    with torch.no_grad():
        out = Clamp().make_hook(alpha=value, sae=sae, feature=feature)(x)
        f = sae.encode(x)
        f2 = f.clone()
        f2[..., feature] = value
        expected = x + sae.decode(f2) - sae.decode(f)
        assert torch.allclose(out, expected, atol=1e-5)
        # the error term x - decode(f) survives the edit...
        assert torch.allclose(out - sae.decode(f2), x - sae.decode(f), atol=1e-5)
        # ...which replacing x by decode(f') would throw away
        assert (sae.decode(f2) - out).abs().max() > 0.1
        # for a linear decoder the edit is (value - f_i) times the feature's decoder row
        assert torch.allclose(out - x, (value - f[..., feature]).unsqueeze(-1) * sae.W_dec[feature], atol=1e-5)


def test_generated_positions_only_on_a_full_pass():
    torch.manual_seed(0)
    x = torch.randn(3, 8, 16)
    u = torch.nn.functional.normalize(torch.randn(16), dim=0)
    hook = Add().make_hook(alpha=3.0, vector=u, positions="generated", prompt_len=5)
    out = hook(x)
    assert torch.equal(out[:, :5], x[:, :5])
    assert torch.allclose(out[:, 5:] - x[:, 5:], (3.0 * u).expand(3, 3, 16), atol=1e-6)


def test_generated_positions_follow_generation_steps():
    u = torch.nn.functional.normalize(torch.ones(4), dim=0)
    hook = Add().make_hook(alpha=1.0, vector=u, positions="generated", prompt_len=3)
    assert hook(torch.zeros(2, 3, 4)) is None  # the prefill: prompt positions 0-2, untouched
    step = hook(torch.zeros(2, 1, 4))  # position 3: the first generated position
    assert torch.allclose(step, u.expand(2, 1, 4))
    again = hook(torch.zeros(2, 3, 4))  # a new prefill starts counting again
    assert again is None


def test_non_finite_is_caught():
    x = torch.ones(1, 2, 4)
    u = torch.ones(4) / 2
    with pytest.raises(NonFiniteActivations, match="non-finite"):
        Add().make_hook(alpha=1e39, vector=u)(x)
    with pytest.raises(SaetoolError, match="finite"):
        Add().make_hook(alpha=math.inf, vector=u)


def test_checks_one_line_errors():
    with pytest.raises(SaetoolError, match="dimension"):
        Add().check(d=8, vector=torch.ones(5), hook=HOOK)
    sae = random_sae(8, 4)
    with pytest.raises(SaetoolError, match="out of range"):
        Clamp().check(d=8, sae=sae, feature=9, hook=HOOK)
    with pytest.raises(SaetoolError, match="reads"):
        Clamp().check(d=8, sae=sae, feature=1, hook="blocks.2.hook_resid_post")


# -- on the real model -------------------------------------------------------------------
def _ids(model, texts):
    from saetool.steer.prompts import encode, format_prompts, left_pad, pad_id_of

    rows = encode(model.tokenizer, format_prompts(model.tokenizer, texts), chat=True)
    return left_pad(rows, pad_id_of(model.tokenizer))


def test_add_moves_the_residual_by_exactly_alpha_unit_vector(smollm2):
    ids, mask = _ids(smollm2, ["How do I bake bread?", "Name a colour."])
    torch.manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(smollm2.d_model), dim=0)
    before = smollm2.run_with_cache(ids, [HOOK], attention_mask=mask)[HOOK]
    after = smollm2.run_with_cache(ids, [HOOK], attention_mask=mask, edit_hooks={HOOK: Add().make_hook(alpha=6.0, vector=u)})[HOOK]
    assert torch.allclose(after - before, (6.0 * u).expand_as(before), atol=1e-4)
    # ablate leaves zero projection on the direction
    ablated = smollm2.run_with_cache(ids, [HOOK], attention_mask=mask, edit_hooks={HOOK: Ablate().make_hook(alpha=1.0, vector=u)})[HOOK]
    assert (ablated @ u).abs().max() < 1e-3 * before.norm(dim=-1).max()
    # and steering changes what comes out
    base = smollm2.logits(ids, mask)
    steered = smollm2.logits(ids, mask, edit_hooks={HOOK: Add().make_hook(alpha=200.0, vector=u)})
    assert not torch.allclose(base[:, -1], steered[:, -1])


def test_clamp_on_the_model_keeps_the_error_term(smollm2):
    ids, mask = _ids(smollm2, ["Tell me a joke."])
    sae = random_sae(smollm2.d_model, 32, seed=3)
    before = smollm2.run_with_cache(ids, [HOOK], attention_mask=mask)[HOOK]
    hook = Clamp().make_hook(alpha=4.0, sae=sae, feature=5)
    after = smollm2.run_with_cache(ids, [HOOK], attention_mask=mask, edit_hooks={HOOK: hook})[HOOK]
    with torch.no_grad():
        f = sae.encode(before)
        f2 = f.clone()
        f2[..., 5] = 4.0
        assert torch.allclose(after, before + sae.decode(f2) - sae.decode(f), atol=1e-3)


def test_generated_only_leaves_the_prompt_untouched_in_generation(smollm2):
    from saetool.steer.generation import GenerationSettings, Steering, generate_completions

    ids, mask = _ids(smollm2, ["Write a sentence about cats.", "What is two plus two?"])
    torch.manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(smollm2.d_model), dim=0)
    seen = []
    inner = Add().make_hook(alpha=300.0, vector=u, positions="generated", prompt_len=ids.shape[1])

    def spy(x):
        out = inner(x)
        seen.append((x.shape[1], out is None or torch.equal(out, x)))
        return out

    base = smollm2.generate(ids, mask, max_new_tokens=6)
    steered = smollm2.generate(ids, mask, max_new_tokens=6, edit_hooks={HOOK: spy})
    assert seen[0] == (ids.shape[1], True)  # the prompt pass is untouched
    assert all(n == 1 and not same for n, same in seen[1:])  # every later step is edited
    assert torch.equal(base[:, 0], steered[:, 0])  # the first new token comes from the unedited prompt
    assert not torch.equal(base, steered)
    # the Steering helper agrees: first token equal, the rest steered
    texts_args = dict(chat=True, settings=GenerationSettings(max_new_tokens=6, batch_size=2))
    from saetool.steer.prompts import format_prompts

    texts = format_prompts(smollm2.tokenizer, ["Write a sentence about cats."])
    st = Steering(Add(), HOOK, 300.0, vector=u, positions="generated")
    plain = generate_completions(smollm2, texts, **texts_args)
    pushed = generate_completions(smollm2, texts, steering=st, **texts_args)
    assert plain != pushed
    first = smollm2.tokenizer.decode(smollm2.tokenizer(plain[0], add_special_tokens=False).input_ids[:1])
    assert pushed[0].startswith(first)
