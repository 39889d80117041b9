"""The ``transformers`` backend: plain Hugging Face models with PyTorch hooks.

Activations follow TransformerLens' definitions (see :mod:`saetool.models.archs`
for where each site lives in each architecture). Importing this module does not
import transformers; loading a model does.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch

from saetool.devices import dtype_name
from saetool.errors import ModelError
from saetool.models.archs import arch_for, dims_of, find_layers, get_path
from saetool.models.base import HookedModel, HookFn, ModelBackendType, max_positions_of
from saetool.models.generation import check_input_ids, parse_edit_hooks, prepare_generation, seeded
from saetool.models.hooks import SITES, HookPoint, parse_hooks

if TYPE_CHECKING:
    from saetool.models.archs import ArchSpec
    from saetool.models.source import ModelSource


class _StopForward(Exception):
    """Raised from a hook to end a forward pass once every needed layer has run."""


def position_ids_for(attention_mask: "torch.Tensor | None") -> "torch.Tensor | None":
    """Positions that skip left padding, so a padded row matches the same row unpadded."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).clamp(min=0)




# -- the backend ------------------------------------------------------------------


class TransformersBackend(ModelBackendType):
    """Plain Hugging Face transformers models, hooked with PyTorch forward hooks."""

    name = "transformers"
    description = "Plain Hugging Face transformers models with PyTorch hooks (LLaMA, Mistral, Qwen2/3, Gemma 1-3, GPT-2)"

    def load(self, source: "ModelSource", *, device: str = "cpu", dtype: str = "float32", device_map: "str | dict | None" = None) -> HookedModel:
        model, tokenizer = source.load_hf(device=device, dtype=dtype, device_map=device_map)
        arch_for(getattr(model.config, "model_type", None))  # fail early, before wrapping
        return TransformersModel(model, tokenizer, model_id=source.model_id)


class TransformersModel(HookedModel):
    """A transformers causal LM that runs with TransformerLens-named hooks."""

    backend_name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, model_id: str) -> None:
        self.model = model
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.model_type = getattr(model.config, "model_type", None)
        self.arch: ArchSpec = arch_for(self.model_type)
        self.layers = find_layers(model, self.arch)
        dims = dims_of(model.config)
        self.n_layers = dims.n_layers
        self.d_model = dims.d_model
        self.n_heads = dims.n_heads
        self.d_head = dims.d_head
        self.supported_sites = SITES
        self.max_positions = max_positions_of(model.config)
        if len(self.layers) != self.n_layers:
            raise ModelError(
                f"{type(model).__name__} has {len(self.layers)} layers but its config says {self.n_layers}",
                hint="the model folder may be inconsistent",
            )
        if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token

    # -- attributes -------------------------------------------------------------
    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def device(self) -> "torch.device":
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> "torch.dtype":
        return next(self.model.parameters()).dtype

    def hook_dim(self, hook: str) -> int:
        (point,) = parse_hooks([hook], self.n_layers, self.supported_sites)
        return self.n_heads * self.d_head if point.site == "attn.hook_z" else self.d_model

    def __repr__(self) -> str:
        return f"TransformersModel({self.model_id!r}, {self.model_type}, layers={self.n_layers}, d_model={self.d_model}, {dtype_name(self.dtype)}, {self.device})"

    # -- hooks ------------------------------------------------------------------
    @contextlib.contextmanager
    def _hooked(
        self,
        cache_points: Sequence[HookPoint] = (),
        edits: Mapping[HookPoint, HookFn] | None = None,
        cache: dict[str, "torch.Tensor"] | None = None,
        stop_layer: int | None = None,
    ) -> Iterator[None]:
        """Register the hooks for caching/editing; always removes them on exit."""
        edits = dict(edits or {})
        want: dict[int, set[str]] = {}
        for point in list(cache_points) + list(edits):
            want.setdefault(point.layer, set()).add(point.site)
        if stop_layer is not None:
            want.setdefault(stop_layer, set())
        cached = {p.name for p in cache_points}
        handles: list[Any] = []
        try:
            for layer_idx, sites in sorted(want.items()):
                layer = self.layers[layer_idx]
                handles.extend(self._register_layer(layer, layer_idx, sites, edits, cached, cache, stop_layer == layer_idx, get_path))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _register_layer(self, layer, idx, sites, edits, cached, cache, stop_here, get_path) -> list[Any]:
        handles = []
        state: dict[str, Any] = {}

        def apply(site: str, tensor):
            """Run the edit hook for ``site`` (if any) and cache the result (if asked)."""
            point = HookPoint(idx, site)
            fn = edits.get(point)
            if fn is not None:
                replacement = fn(tensor)
                if replacement is not None:
                    if replacement.shape != tensor.shape:
                        raise ModelError(
                            f"edit hook for {point.name} returned shape {tuple(replacement.shape)}, expected {tuple(tensor.shape)}"
                        )
                    tensor = replacement.to(dtype=tensor.dtype, device=tensor.device)
            if point.name in cached and cache is not None:
                cache[point.name] = tensor.detach()
            return tensor, fn is not None

        need_mid = "hook_resid_mid" in sites
        if "hook_resid_pre" in sites or need_mid:

            def pre_hook(module, args, kwargs):
                if args:
                    hidden = args[0]
                else:
                    hidden = kwargs["hidden_states"]
                changed = False
                if "hook_resid_pre" in sites:
                    hidden, changed = apply("hook_resid_pre", hidden)
                state["pre"] = hidden
                if not changed:
                    return None
                if args:
                    return (hidden,) + tuple(args[1:]), kwargs
                return args, {**kwargs, "hidden_states": hidden}

            handles.append(layer.register_forward_pre_hook(pre_hook, with_kwargs=True))

        if need_mid:

            def attn_hook(module, args, output):
                contrib = output[0] if isinstance(output, tuple) else output
                pre = state.pop("pre")
                mid = pre + contrib
                new_mid, changed = apply("hook_resid_mid", mid)
                if not changed:
                    return None
                new_contrib = new_mid - pre
                return (new_contrib,) + tuple(output[1:]) if isinstance(output, tuple) else new_contrib

            handles.append(get_path(layer, self.arch.attn_out).register_forward_hook(attn_hook))

        if "attn.hook_z" in sites:
            n_heads, d_head = self.n_heads, self.d_head

            def z_hook(module, args):
                x = args[0]
                z = x.reshape(*x.shape[:-1], n_heads, d_head)
                new_z, changed = apply("attn.hook_z", z)
                if not changed:
                    return None
                return (new_z.reshape(x.shape),) + tuple(args[1:])

            handles.append(get_path(layer, self.arch.o_proj).register_forward_pre_hook(z_hook))

        if "hook_mlp_out" in sites:

            def mlp_hook(module, args, output):
                out = output[0] if isinstance(output, tuple) else output
                new, changed = apply("hook_mlp_out", out)
                if not changed:
                    return None
                return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new

            handles.append(get_path(layer, self.arch.mlp_out).register_forward_hook(mlp_hook))

        if "hook_resid_post" in sites or stop_here:

            def post_hook(module, args, output):
                out = output[0] if isinstance(output, tuple) else output
                changed = False
                if "hook_resid_post" in sites:
                    out, changed = apply("hook_resid_post", out)
                if stop_here:
                    raise _StopForward
                if not changed:
                    return None
                return (out,) + tuple(output[1:]) if isinstance(output, tuple) else out

            handles.append(layer.register_forward_hook(post_hook))
        return handles

    def _forward(self, input_ids, attention_mask):
        kwargs: dict[str, Any] = {"input_ids": input_ids.to(self.device), "use_cache": False}
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
            kwargs["attention_mask"] = attention_mask
            position_ids = position_ids_for(attention_mask)
            if position_ids is not None:
                kwargs["position_ids"] = position_ids
        return self.model(**kwargs)

    # -- HookedModel --------------------------------------------------------------
    def run_with_cache(
        self,
        input_ids: "torch.Tensor",
        hooks: Sequence[str],
        attention_mask: "torch.Tensor | None" = None,
        edit_hooks: Mapping[str, HookFn] | None = None,
    ) -> dict[str, "torch.Tensor"]:
        check_input_ids(input_ids, attention_mask)
        self.check_positions(input_ids.shape[1], f"a sequence of {input_ids.shape[1]} tokens", "use shorter windows (--context-size)")
        points = parse_hooks(hooks, self.n_layers, self.supported_sites)
        edits = parse_edit_hooks(edit_hooks, self.n_layers, self.supported_sites)
        stop_layer = max(p.layer for p in points)
        edits = {p: fn for p, fn in edits.items() if p.layer <= stop_layer}
        cache: dict[str, torch.Tensor] = {}
        with torch.no_grad(), self._hooked(points, edits, cache, stop_layer=stop_layer):
            try:
                self._forward(input_ids, attention_mask)
            except _StopForward:
                pass
        out: dict[str, torch.Tensor] = {}
        for point in points:
            act = cache[point.name]
            if point.site == "attn.hook_z":
                act = act.reshape(*act.shape[:-2], self.n_heads * self.d_head)
            out[point.name] = act
        return out

    def logits(
        self,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor | None" = None,
        edit_hooks: Mapping[str, HookFn] | None = None,
    ) -> "torch.Tensor":
        check_input_ids(input_ids, attention_mask)
        self.check_positions(input_ids.shape[1], f"a sequence of {input_ids.shape[1]} tokens", "use shorter windows (--context-size)")
        edits = parse_edit_hooks(edit_hooks, self.n_layers, self.supported_sites)
        with torch.no_grad(), self._hooked((), edits):
            return self._forward(input_ids, attention_mask).logits.detach()

    def generate(
        self,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor | None" = None,
        *,
        edit_hooks: Mapping[str, HookFn] | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> "torch.Tensor":
        req = prepare_generation(self, self.model, input_ids, attention_mask, edit_hooks, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "min_new_tokens": 0,
            "do_sample": do_sample,
            "pad_token_id": req.pad_id,
            "eos_token_id": req.eos_ids or None,
            "num_beams": 1,
            "repetition_penalty": 1.0,
        }
        if do_sample:
            gen_kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        with torch.no_grad(), seeded(seed, self.device), self._hooked((), req.edits):
            sequences = self.model.generate(input_ids=req.input_ids, attention_mask=req.attention_mask, **gen_kwargs)
        return req.new_tokens(sequences)
