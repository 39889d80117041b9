"""The ``transformer-lens`` backend: TransformerLens 3.x ``TransformerBridge``.

The Hugging Face model is loaded through :meth:`ModelSource.load_hf` (so local
and embedded models work offline) and wrapped with
``TransformerBridge.boot_transformers(hf_id, hf_model=..., tokenizer=..., trust_remote_code=...)``.
The bridge keeps the model's raw weights (no LayerNorm folding or centering),
so activations match the transformers backend up to float rounding.

Importing this module does not import transformer_lens; loading a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from saetool.devices import dtype_name, torch_dtype
from saetool.errors import ModelError
from saetool.models.base import HookedModel, HookFn, ModelBackendType, max_positions_of
from saetool.models.generation import check_input_ids, parse_edit_hooks, prepare_generation, seeded
from saetool.models.hooks import SITES, hook_name, parse_hooks
from saetool.models.source import first_line

if TYPE_CHECKING:
    from saetool.models.source import ModelSource

# Deferred imports: transformer_lens (seconds) loads with a model, in a try that turns its absence into a one-line error.



class TransformerLensBackend(ModelBackendType):
    """TransformerLens 3.x TransformerBridge around a Hugging Face model (raw weights, TL hook names)."""

    name = "transformer-lens"
    description = "TransformerLens 3.x TransformerBridge around a Hugging Face model (raw weights, TL hook names)"

    def load(self, source: "ModelSource", *, device: str = "cpu", dtype: str = "float32") -> HookedModel:
        torch_dtype_ = torch_dtype(dtype)
        try:
            from transformer_lens.model_bridge import TransformerBridge
        except ImportError as exc:  # pragma: no cover - transformer-lens is a dependency
            raise ModelError("transformer-lens is not installed", hint="pip install 'transformer-lens>=3,<4'") from exc

        # The bridge wraps the model's modules in place: it must own its model.
        model, tokenizer = source.load_hf(device=device, dtype=dtype)
        try:
            bridge = TransformerBridge.boot_transformers(
                source.hf_id, hf_model=model, tokenizer=tokenizer, device=device, dtype=torch_dtype_, trust_remote_code=source.trust_remote_code
            )
        except Exception as exc:
            model_type = getattr(model.config, "model_type", "?")
            raise ModelError(
                f"TransformerLens cannot wrap {source.model_id} (model_type {model_type}): {first_line(exc)}",
                hint="use --backend transformers",
            ) from exc
        return TransformerLensModel(bridge, tokenizer, model_id=source.model_id)


class TransformerLensModel(HookedModel):
    """A ``TransformerBridge`` behind saetool's :class:`HookedModel` interface."""

    backend_name = "transformer-lens"

    def __init__(self, bridge: Any, tokenizer: Any, *, model_id: str) -> None:
        self.bridge = bridge
        self._tokenizer = tokenizer
        self.model_id = model_id
        cfg = bridge.cfg
        self.n_layers = int(cfg.n_layers)
        self.d_model = int(cfg.d_model)
        self.n_heads = int(cfg.n_heads)
        self.d_head = int(cfg.d_head)
        self.max_positions = max_positions_of(cfg)
        hook_names = set(bridge.hook_dict)
        self.supported_sites = tuple(s for s in SITES if hook_name(0, s) in hook_names)
        if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token

    # -- attributes -------------------------------------------------------------
    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def device(self) -> "torch.device":
        return next(self.bridge.original_model.parameters()).device

    @property
    def dtype(self) -> "torch.dtype":
        return next(self.bridge.original_model.parameters()).dtype

    def hook_dim(self, hook: str) -> int:
        (point,) = parse_hooks([hook], self.n_layers, self.supported_sites)
        return self.n_heads * self.d_head if point.site == "attn.hook_z" else self.d_model

    def __repr__(self) -> str:
        return f"TransformerLensModel({self.model_id!r}, layers={self.n_layers}, d_model={self.d_model}, {dtype_name(self.dtype)}, {self.device})"

    # -- hooks ------------------------------------------------------------------
    def _fwd_hooks(self, edits) -> list[tuple[str, Any]]:
        def wrap(name: str, fn: HookFn):
            def hook(tensor, hook=None):
                replacement = fn(tensor)
                if replacement is None:
                    return tensor
                if replacement.shape != tensor.shape:
                    raise ModelError(f"edit hook for {name} returned shape {tuple(replacement.shape)}, expected {tuple(tensor.shape)}")
                return replacement.to(dtype=tensor.dtype, device=tensor.device)

            return hook

        return [(point.name, wrap(point.name, fn)) for point, fn in sorted(edits.items())]

    def _inputs(self, input_ids, attention_mask):
        input_ids = input_ids.to(self.device)
        kwargs: dict[str, Any] = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(self.device)
        return input_ids, kwargs

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
        last = max(p.layer for p in points)
        edits = {p: fn for p, fn in edits.items() if p.layer <= last}
        names = [p.name for p in points]
        input_ids, kwargs = self._inputs(input_ids, attention_mask)
        stop = last + 1 if last + 1 < self.n_layers else None
        with torch.no_grad(), self.bridge.hooks(fwd_hooks=self._fwd_hooks(edits)):
            _, cache = self.bridge.run_with_cache(
                input_ids, names_filter=names, stop_at_layer=stop, return_cache_object=False, **kwargs
            )
        out: dict[str, torch.Tensor] = {}
        for point in points:
            act = cache[point.name].detach()
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
        input_ids, kwargs = self._inputs(input_ids, attention_mask)
        with torch.no_grad(), self.bridge.hooks(fwd_hooks=self._fwd_hooks(edits)):
            return self.bridge(input_ids, return_type="logits", **kwargs).detach()

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
        req = prepare_generation(self, self.bridge.original_model, input_ids, attention_mask, edit_hooks, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature)
        eos_ids = req.eos_ids
        with torch.no_grad(), seeded(seed, self.device), self.bridge.hooks(fwd_hooks=self._fwd_hooks(req.edits)):
            sequences = self.bridge.generate(
                req.input_ids,
                max_new_tokens=max_new_tokens,
                stop_at_eos=bool(eos_ids),
                eos_token_id=eos_ids[0] if len(eos_ids) == 1 else (eos_ids or None),
                do_sample=do_sample,
                top_k=None,
                top_p=float(top_p) if do_sample and top_p < 1.0 else None,
                temperature=float(temperature) if do_sample else 1.0,
                return_type="tokens",
                verbose=False,
                attention_mask=req.attention_mask,
            )
        return req.new_tokens(sequences)
