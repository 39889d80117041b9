"""Splicing SAEs into a forward pass: ``x -> decode(f) + error`` at every SAE hook.

With the error term ``x - decode(encode(x))`` held fixed (detached, or the
clean run's value during replay) the pass computes the same activations as
the plain model, but every downstream quantity depends on the SAE features
``f``, so gradients (and patches) act on features. :func:`forward_with_grad`
runs a model with such edit hooks with autograd on, which the
:class:`~saetool.models.base.HookedModel` methods (all ``no_grad``) do not.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch

from saetool.errors import ModelError
from saetool.models.generation import parse_edit_hooks
from saetool.models.hf_backend import TransformersModel, _StopForward
from saetool.models.tl_backend import TransformerLensModel

if TYPE_CHECKING:
    from saetool.models.base import HookedModel, HookFn
    from saetool.sae.model import SAE


@dataclass
class Patch:
    """Multiply feature ``feature`` of SAE number ``sae_index`` by ``factor`` (0: ablate)."""

    sae_index: int
    feature: int
    factor: float = 0.0


@dataclass
class Splice:
    """Edit hooks that splice ``saes`` into a pass and record their feature codes.

    ``positions`` (``[batch, pos]`` bool) is where a :class:`Patch` applies.
    ``errors`` (one tensor per SAE) fixes the error terms, e.g. to a clean
    run's, which :attr:`captured_errors` holds after a pass without them.
    With ``grad`` the codes of the first SAE become leaves that require grad,
    so the whole spliced pass is differentiable with respect to every SAE's codes.
    """

    saes: Sequence["SAE"]
    positions: "torch.Tensor"
    grad: bool = False
    errors: Sequence["torch.Tensor"] | None = None
    patch: Patch | None = None
    codes: dict[int, "torch.Tensor"] = field(default_factory=dict)
    captured_errors: dict[int, "torch.Tensor"] = field(default_factory=dict)

    def hooks(self) -> dict[str, "HookFn"]:
        return {str(sae.cfg.hook): self._hook(i, sae) for i, sae in enumerate(self.saes)}

    def _hook(self, index: int, sae: "SAE"):
        def fn(x: "torch.Tensor") -> "torch.Tensor":
            flat = x.reshape(*x.shape[:2], -1).to(sae.dtype)
            f = sae.encode(flat)
            if self.grad and not f.requires_grad:
                f.requires_grad_(True)
            self.codes[index] = f
            if self.errors is not None:
                err = self.errors[index].to(device=flat.device, dtype=flat.dtype)
            else:
                err = (flat - sae.decode(f)).detach()
                self.captured_errors[index] = err
            used = f
            if self.patch is not None and self.patch.sae_index == index:
                j = self.patch.feature
                where = self.positions.to(f.device)
                column = torch.where(where, f[..., j] * self.patch.factor, f[..., j])
                used = f.clone()
                used[..., j] = column
            out = sae.decode(used) + err
            return out.reshape(x.shape).to(x.dtype)

        return fn


@contextlib.contextmanager
def frozen(*modules: Any) -> Iterator[None]:
    """Parameters of ``modules`` stop requiring grad for the block (then restored)."""
    params = [p for m in modules for p in m.parameters()]
    saved = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, saved):
            p.requires_grad_(flag)


def torch_module(model: "HookedModel") -> Any:
    """The ``torch.nn.Module`` behind a HookedModel (transformers model or TL bridge)."""
    for attr in ("model", "bridge"):
        module = getattr(model, attr, None)
        if module is not None and hasattr(module, "parameters"):
            return module
    raise ModelError(f"the {model.backend_name} backend exposes no torch module to take gradients through", hint="use --backend transformers")


def forward_with_grad(
    model: "HookedModel",
    input_ids: "torch.Tensor",
    attention_mask: "torch.Tensor | None",
    edit_hooks: Mapping[str, "HookFn"],
    stop_layer: int,
) -> None:
    """Run ``model`` up to ``stop_layer`` with ``edit_hooks`` and autograd enabled.

    Supports the built-in ``transformers`` and ``transformer-lens`` backends;
    the edit hooks keep whatever they need (e.g. :attr:`Splice.codes`).
    """
    edits = parse_edit_hooks(edit_hooks, model.n_layers, model.supported_sites)
    with torch.enable_grad():
        if isinstance(model, TransformersModel):
            with model._hooked((), edits, stop_layer=stop_layer):
                try:
                    model._forward(input_ids, attention_mask)
                except _StopForward:
                    pass
            return

        if isinstance(model, TransformerLensModel):
            ids, kwargs = model._inputs(input_ids, attention_mask)
            stop = stop_layer + 1 if stop_layer + 1 < model.n_layers else None
            with model.bridge.hooks(fwd_hooks=model._fwd_hooks(edits)):
                model.bridge(ids, stop_at_layer=stop, **kwargs)
            return
    raise ModelError(
        f"pathways needs gradients through the model, which the {model.backend_name!r} backend does not offer",
        hint="use --backend transformers",
    )
