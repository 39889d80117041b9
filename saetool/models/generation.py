"""What both model backends do around ``generate``: check the request, parse the
edit hooks, find the pad and EOS ids, build the left-padding mask, and cut the
result to ``max_new_tokens`` with everything after the first EOS padded.

:func:`prepare_generation` is the shared preamble; a backend calls its own
generator between it and :meth:`GenerationRequest.new_tokens`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch

from saetool.errors import ModelError
from saetool.models.base import HookedModel, HookFn
from saetool.models.hooks import HookPoint, parse_hooks


def parse_edit_hooks(
    edit_hooks: Mapping[str, HookFn] | None, n_layers: int, supported_sites: Sequence[str]
) -> dict[HookPoint, HookFn]:
    """Validate edit hook names; ``{HookPoint: fn}``."""
    if not edit_hooks:
        return {}
    out: dict[HookPoint, HookFn] = {}
    for name, fn in edit_hooks.items():
        (point,) = parse_hooks([name], n_layers, supported_sites)
        if not callable(fn):
            raise ModelError(f"edit hook for {name!r} is not callable", hint="pass a function tensor -> tensor | None")
        out[point] = fn
    return out


def left_pad_mask(input_ids: "torch.Tensor", pad_id: int | None) -> "torch.Tensor":
    """An attention mask that hides the leading run of pad tokens in each row."""
    if pad_id is None:
        return torch.ones_like(input_ids)
    return (input_ids != pad_id).long().cummax(dim=-1).values


def eos_ids_of(tokenizer: Any, model_config: Any = None) -> list[int]:
    ids: list[int] = []
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(getattr(model_config, "generation_config", None), "eos_token_id", None)):
        if source is None:
            continue
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def pad_after_eos(new_tokens: "torch.Tensor", max_new_tokens: int, eos_ids: Sequence[int], pad_id: int) -> "torch.Tensor":
    """Pad ``[batch, n]`` new tokens to ``max_new_tokens`` and blank everything after the first EOS."""
    batch, n = new_tokens.shape
    if n < max_new_tokens:
        filler = torch.full((batch, max_new_tokens - n), pad_id, dtype=new_tokens.dtype, device=new_tokens.device)
        new_tokens = torch.cat([new_tokens, filler], dim=1)
    new_tokens = new_tokens[:, :max_new_tokens].clone()
    if eos_ids:
        is_eos = torch.zeros_like(new_tokens, dtype=torch.bool)
        for e in eos_ids:
            is_eos |= new_tokens == e
        # positions strictly after the first EOS
        after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
        new_tokens[after] = pad_id
    return new_tokens


@contextlib.contextmanager
def seeded(seed: int | None, device: "torch.device") -> Iterator[None]:
    """Seed torch's RNG for the block and restore the caller's RNG state afterwards."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def check_generation_settings(max_new_tokens: int, do_sample: bool, temperature: float) -> None:
    """One-line errors for generation settings no backend can honour."""
    if max_new_tokens < 1:
        raise ModelError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if do_sample and temperature <= 0:
        raise ModelError(f"temperature must be positive when sampling, got {temperature}", hint="use do_sample=False for greedy decoding")


def pad_and_eos_ids(tokenizer: Any, model: Any) -> "tuple[int, list[int]]":
    """The pad id to fill finished rows with (the first EOS id when the tokenizer has none) and the EOS ids."""
    eos_ids = eos_ids_of(tokenizer, model)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = eos_ids[0] if eos_ids else 0
    return pad_id, eos_ids


def check_input_ids(input_ids: "torch.Tensor", attention_mask: "torch.Tensor | None") -> None:
    if input_ids.dim() != 2:
        raise ModelError(f"input_ids must be [batch, pos], got shape {tuple(input_ids.shape)}", hint="add a batch dimension")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ModelError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}",
            hint="pass the mask the tokenizer returned with the ids",
        )


@dataclass
class GenerationRequest:
    """A checked generation request, its tensors on the model's device."""

    input_ids: "torch.Tensor"
    attention_mask: "torch.Tensor"
    edits: dict[HookPoint, HookFn]
    pad_id: int
    eos_ids: list[int]
    max_new_tokens: int

    def new_tokens(self, sequences: "torch.Tensor") -> "torch.Tensor":
        """The generated part of ``sequences`` (prompt + new tokens), ``max_new_tokens``
        wide, padded after the first EOS."""
        return pad_after_eos(sequences[:, self.input_ids.shape[1] :], self.max_new_tokens, self.eos_ids, self.pad_id)


def prepare_generation(
    model: HookedModel,
    config_source: Any,
    input_ids: "torch.Tensor",
    attention_mask: "torch.Tensor | None",
    edit_hooks: Mapping[str, HookFn] | None,
    *,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
) -> GenerationRequest:
    """The preamble of every backend's ``generate``: one-line errors for bad ids,
    settings, lengths or edit hooks, before any work. ``config_source`` is the
    Hugging Face model whose generation config may name more EOS ids."""
    check_input_ids(input_ids, attention_mask)
    check_generation_settings(max_new_tokens, do_sample, temperature)
    model.check_positions(input_ids.shape[1] + max_new_tokens, f"{input_ids.shape[1]} prompt tokens plus {max_new_tokens} new ones", "shorten the prompts or generate fewer tokens (--max-new-tokens)")
    edits = parse_edit_hooks(edit_hooks, model.n_layers, model.supported_sites)
    pad_id, eos_ids = pad_and_eos_ids(model.tokenizer, config_source)
    input_ids = input_ids.to(model.device)
    mask = left_pad_mask(input_ids, pad_id) if attention_mask is None else attention_mask
    return GenerationRequest(input_ids, mask.to(model.device), edits, pad_id, eos_ids, max_new_tokens)
