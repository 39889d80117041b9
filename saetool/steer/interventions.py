"""Steering interventions: objects that build edit hooks for :class:`~saetool.models.base.HookedModel`.

An intervention is registered through the ``register_interventions`` hook and
turns settings (``alpha``, a steering vector, an SAE and feature) into a hook
function ``fn(activation) -> activation`` that ``generate``/``logits``/
``run_with_cache`` apply through ``edit_hooks={hook_name: fn}``. Activations are
``[batch, pos, d]`` (``attn.hook_z``'s ``[batch, pos, heads, d_head]`` is
flattened for the edit and restored).

Built-ins (``x`` is one token's activation, ``v`` the scaled steering vector,
``u = v/|v|``):

``add``
    ``x + alpha·v``. How big ``v`` is depends on ``--scale``
    (:func:`scaled_vector`): ``unit`` (``v = u``, alpha is in activation-norm
    units), ``raw`` (the vector as stored: for a difference of means, alpha 1
    adds exactly the mean difference) or ``relative`` (``v = r·u`` with ``r``
    the mean activation norm at the hook, so alpha 0.5 adds half a typical
    activation's norm).
``ablate``
    ``x - alpha·(x·u)u``: alpha 1 projects the direction out (the component
    along ``u`` becomes exactly 0), alpha 2 reflects it; scale does not matter.
``clamp``
    sets SAE feature ``feature`` to ``alpha`` and adds the change in the SAE's
    reconstruction, ``x + decode(f') - decode(f)`` where ``f = encode(x)`` and
    ``f'`` is ``f`` with the feature clamped. The SAE's error term
    ``x - decode(f)`` is kept, so only the feature's contribution moves.
    (Replacing ``x`` by ``decode(f')`` would also throw the error term away, a
    large and unintended edit.) alpha 0 is *not* a no-op: it turns the
    feature off.

Every intervention can act at ``all`` positions or at ``generated`` ones only:
with left-padded prompts of padded width ``P`` those are positions ``>= P``, so
the prompt (and the token that predicts the first new token) is left alone and
steering starts with the second generated token's computation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from saetool.errors import SaetoolError
from saetool.plugins import host

if TYPE_CHECKING:
    import torch

    from saetool.sae.model import SAE

# Deferred imports: torch only inside the edit hooks; `sweep --dry-run` validates scale and position names from here
# without it.

POSITIONS = ("all", "generated")
SCALES = ("unit", "raw", "relative")


class NonFiniteActivations(SaetoolError):
    """A steering edit made the activations NaN or infinite."""


def scaled_vector(vector: "torch.Tensor", scale: str, norm_ref: float | None = None) -> "torch.Tensor":
    """The vector that ``add`` multiplies by alpha, for a ``--scale`` choice."""
    if scale not in SCALES:
        raise SaetoolError(f"unknown scale {scale!r}", hint="choose one of: " + ", ".join(SCALES))
    norm = float(vector.float().norm())
    if scale == "raw":
        return vector
    if not math.isfinite(norm) or norm == 0:
        raise SaetoolError("the steering vector has zero (or non-finite) norm", hint="check how the vector was made")
    unit = vector / norm
    if scale == "unit":
        return unit
    if norm_ref is None or not math.isfinite(norm_ref) or norm_ref <= 0:
        raise SaetoolError("--scale relative needs the mean activation norm at the hook, which is unknown here", hint="use --scale unit or raw")
    return unit * norm_ref


class PositionTracker:
    """Which absolute positions a hook call sees.

    A call with more than one position is a fresh full pass (a prompt prefill or
    a ``logits`` pass) and starts at position 0; single-position calls are the
    following generation steps.
    """

    def __init__(self) -> None:
        self.offset = 0

    def next(self, n: int, device) -> "torch.Tensor":
        import torch

        if n > 1:
            self.offset = 0
        idx = torch.arange(self.offset, self.offset + n, device=device)
        self.offset += n
        return idx


def check_finite(x: "torch.Tensor", where: str, alpha: float | None = None) -> None:
    """Raise :class:`NonFiniteActivations` if ``x`` is NaN/inf or overflows when squared (as a norm layer would)."""
    import torch

    bad = not bool(torch.isfinite(x).all())
    if not bad:
        bad = not bool(torch.isfinite(x.float().pow(2).sum(-1)).all())
    if bad:
        what = f"alpha={alpha:g} made" if alpha is not None else "steering made"
        raise NonFiniteActivations(
            f"{what} the activations at {where} non-finite (NaN/inf)",
            hint="use a smaller alpha (or --scale unit)",
        )


class Intervention:
    """Base class: subclasses set ``name``/``description`` and implement :meth:`edit`.

    Attributes: ``needs_vector`` (uses a steering vector), ``needs_sae`` (uses
    an SAE and a feature), ``identity_at_zero`` (alpha 0 leaves activations
    unchanged, so a sweep shares one unsteered baseline) and ``default_alpha``.
    """

    name: str = ""
    description: str = ""
    needs_vector: bool = True
    needs_sae: bool = False
    identity_at_zero: bool = True
    default_alpha: float | None = None

    def edit(self, x: "torch.Tensor", *, alpha: float, vector: "torch.Tensor | None", sae: "SAE | None", feature: int | None) -> "torch.Tensor":
        """The edited activations for ``x`` (``[..., d]``), at every position given."""
        raise NotImplementedError

    def check(self, *, d: int, vector: "torch.Tensor | None" = None, sae: "SAE | None" = None, feature: int | None = None, hook: str | None = None) -> None:
        """One-line errors for settings that cannot work (wrong dimension, missing SAE...)."""
        if self.needs_vector:
            if vector is None:
                raise SaetoolError(f"intervention {self.name!r} needs a steering vector", hint="pass --vector FILE (or pipe a vector artifact)")
            if vector.dim() != 1 or vector.shape[0] != d:
                raise SaetoolError(
                    f"the steering vector has dimension {tuple(vector.shape)[-1] if vector.dim() else 0} but the activations at {hook or 'the hook'} have d={d}",
                    hint="make the vector for this model and hook",
                )
            if not bool(vector.isfinite().all()):
                raise SaetoolError("the steering vector holds NaN/inf values")
        if self.needs_sae:
            if sae is None or feature is None:
                raise SaetoolError(f"intervention {self.name!r} needs an SAE and a feature", hint="pass --sae FILE --feature N")
            cfg = sae.cfg
            if cfg.is_transcoder:
                raise SaetoolError(f"intervention {self.name!r} needs an SAE that reconstructs its own input (this one is a transcoder {cfg.hook} -> {cfg.hook_out})")
            if not 0 <= int(feature) < cfg.d_sae:
                raise SaetoolError(f"feature {feature} is out of range", hint=f"the SAE has features 0-{cfg.d_sae - 1}")
            if cfg.d_in != d:
                raise SaetoolError(f"the SAE expects d_in={cfg.d_in} but the activations at {hook or 'the hook'} have d={d}", hint="use the SAE's model and hook")
            if hook is not None and cfg.hook != hook:
                raise SaetoolError(f"the SAE reads {cfg.hook} but steering is at {hook}", hint=f"steer at the SAE's layer (--layer {cfg.hook.split('.')[1] if cfg.hook.startswith('blocks.') else '?'})")

    def make_hook(
        self,
        *,
        alpha: float,
        vector: "torch.Tensor | None" = None,
        sae: "SAE | None" = None,
        feature: int | None = None,
        positions: str = "all",
        prompt_len: "int | torch.Tensor | None" = None,
        hook_name: str = "the hook",
        guard: bool = True,
    ) -> Callable[["torch.Tensor"], "torch.Tensor | None"]:
        """A hook function for one ``generate``/``logits`` call.

        ``prompt_len`` (an int, or one per row) is where generated positions
        start (the padded prompt width for left-padded batches); it is needed
        when ``positions="generated"``. Build a fresh hook for every call: it
        counts positions across generation steps.
        """
        import torch

        if positions not in POSITIONS:
            raise SaetoolError(f"unknown positions {positions!r}", hint="choose all or generated")
        if positions == "generated" and prompt_len is None:
            raise SaetoolError("positions='generated' needs the prompt length")
        if not math.isfinite(alpha):
            raise SaetoolError(f"alpha must be a finite number (got {alpha})")
        tracker = PositionTracker()
        cache: dict[Any, Any] = {}

        def prepared(x: "torch.Tensor"):
            key = (x.dtype, x.device)
            if key not in cache:
                cache[key] = None if vector is None else vector.to(device=x.device, dtype=x.dtype)
            return cache[key]

        def fn(act: "torch.Tensor") -> "torch.Tensor | None":
            shape = act.shape
            x = act.reshape(shape[0], shape[1], -1) if act.dim() > 3 else act
            v = prepared(x)
            if positions == "all":
                out = self.edit(x, alpha=alpha, vector=v, sae=sae, feature=feature)
            else:
                idx = tracker.next(x.shape[1], x.device)
                starts = torch.as_tensor(prompt_len, device=x.device).reshape(-1, 1)
                mask = idx.reshape(1, -1) >= starts  # [batch or 1, pos]
                if not bool(mask.any()):
                    return None
                edited = self.edit(x, alpha=alpha, vector=v, sae=sae, feature=feature)
                out = torch.where(mask.unsqueeze(-1), edited, x)
            if guard:
                check_finite(out, hook_name, alpha)
            return out.reshape(shape)

        return fn


class Add(Intervention):
    """Add alpha times the (scaled) steering vector."""

    name = "add"
    description = "Add alpha times the steering vector (scaled by --scale: unit, raw or relative)"
    default_alpha = 4.0

    def edit(self, x, *, alpha, vector, sae, feature):
        return x + alpha * vector


class Ablate(Intervention):
    """Remove alpha times the component along the vector (alpha 1: project it out)."""

    name = "ablate"
    description = "Remove alpha times the component along the vector (alpha 1 projects the direction out)"
    default_alpha = 1.0

    def edit(self, x, *, alpha, vector, sae, feature):
        import torch

        unit = vector / vector.norm()
        proj = torch.einsum("...d,d->...", x, unit)
        return x - alpha * proj.unsqueeze(-1) * unit


class Clamp(Intervention):
    """Clamp an SAE feature to alpha, keeping the SAE's error term."""

    name = "clamp"
    description = "Clamp an SAE feature to alpha, adding decode(f') - decode(f) so the SAE error term is kept"
    needs_vector = False
    needs_sae = True
    identity_at_zero = False
    default_alpha = None

    def edit(self, x, *, alpha, vector, sae, feature):
        xs = x.to(sae.dtype)
        f = sae.encode(xs)
        clamped = f.clone()
        clamped[..., int(feature)] = alpha
        delta = sae.decode(clamped) - sae.decode(f)
        return x + delta.to(x.dtype)


BUILTIN_INTERVENTIONS = (Add(), Ablate(), Clamp())


def get_intervention(name: str) -> Intervention:
    return host().get("interventions", name)
