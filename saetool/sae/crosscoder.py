"""Crosscoders: SAEs that read several hooks at once and write to each of them.

An acausal crosscoder (Lindsey et al. 2024, "Sparse Crosscoders") is stored as
an ordinary ``sae`` artifact whose input is the hooks' rows side by side:
``d_in = d_out = sum of the hooks' widths``, ``W_enc [d_in, d_sae]`` (the sum
over hooks of each hook's encoder), ``W_dec [d_sae, d_in]`` (block ``l`` of a
feature's row is its decoder direction at hook ``l``). Its config names the
hooks: ``options.hooks`` (in order), ``options.widths`` and
``options.hook_scales`` (the per-hook factors training normalised each hook by;
the stored weights take raw activations). ``cfg.hook`` is the first hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from saetool.errors import SaetoolError

if TYPE_CHECKING:
    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.config import SAEConfig
    from saetool.sae.model import SAE


def crosscoder_hooks(cfg: "SAEConfig") -> list[str] | None:
    """The hooks a crosscoder reads (``None``: an SAE of one hook)."""
    hooks = cfg.options.get("hooks") if isinstance(cfg.options, dict) else None
    return [str(h) for h in hooks] if isinstance(hooks, list) and hooks else None


def hook_widths(cfg: "SAEConfig") -> list[int]:
    """Each hook's width (its block of the input and of each decoder row)."""
    widths = [int(w) for w in cfg.options.get("widths") or []]
    hooks = crosscoder_hooks(cfg) or []
    if len(widths) != len(hooks) or sum(widths) != cfg.d_in:
        raise SaetoolError(f"the crosscoder's config names {len(hooks)} hooks with widths {widths}, which do not add up to d_in={cfg.d_in}", hint="the config is corrupt or hand-edited")
    return widths


def layer_decoder_norms(sae: "SAE", *, normalized: bool = True) -> "torch.Tensor":
    """``[d_sae, n_hooks]``: each feature's decoder norm at each hook. ``normalized``:
    in the units training saw (each hook scaled to a common mean norm), so hooks
    of different magnitudes compare; otherwise in raw activation units."""
    widths = hook_widths(sae.cfg)
    with torch.no_grad():
        norms = torch.stack([block.float().norm(dim=1) for block in sae.W_dec.split(widths, dim=1)], dim=1)
        scales = sae.cfg.options.get("hook_scales")
        if normalized and scales:
            norms = norms * torch.tensor([float(s) for s in scales], device=norms.device)
    return norms


def refuse_crosscoder(sae: "SAE", fmt: str) -> None:
    """One-line error when exporting a crosscoder to a format of one-hook SAEs."""
    hooks = crosscoder_hooks(sae.cfg)
    if hooks:
        raise SaetoolError(f"the SAE is a crosscoder over {len(hooks)} hooks and the {fmt} format holds an SAE of one hook", hint="keep the saetool sae artifact (it says which hooks it reads)")


def check_crosscoder_file(cfg: "SAEConfig", acts: "ActivationsFile") -> list[str]:
    """The file must hold every hook of the crosscoder at its width (one-line errors); returns the hooks."""
    hooks = crosscoder_hooks(cfg) or [cfg.hook]
    for hook, width in zip(hooks, hook_widths(cfg)):
        if hook not in acts.hooks:
            raise SaetoolError(f"the crosscoder reads {len(hooks)} hooks and {acts.path} has no activations for {hook}", hint="extract every hook it reads: --hooks " + ",".join(hooks))
        if acts.d(hook) != width:
            raise SaetoolError(f"the crosscoder expects {hook} of width {width} but {acts.path.name} has d={acts.d(hook)}")
    return hooks


def read_inputs(acts: "ActivationsFile", hooks: Sequence[str], start: int, stop: int) -> "torch.Tensor":
    """Rows ``start:stop`` of every hook, side by side (a crosscoder's input)."""
    return torch.cat([acts.read_finite(h, start, stop) for h in hooks], dim=1)
