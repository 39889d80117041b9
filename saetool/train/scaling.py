"""Input scaling: train on activations scaled to ``E||x|| = sqrt(d)``, save an SAE
that takes raw activations.

The trainer multiplies inputs by ``in_scale`` and targets by ``out_scale`` (the
same number unless it is a transcoder). :func:`fold_scales` turns the trained
SAE into one on raw activations whose feature activations are the trained ones
divided by ``out_scale``; decoder rows keep their (unit) norm::

    W_enc' = W_enc * in_scale / out_scale    b_enc' = b_enc / out_scale
    b_dec' = b_dec / out_scale               threshold' = threshold / out_scale

so ``sae'(x) == sae(in_scale * x) / out_scale`` exactly in real arithmetic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

import torch

if TYPE_CHECKING:
    from saetool.sae.model import SAE


def norm_scale(rows: Iterable["torch.Tensor"]) -> float:
    """The factor that brings the mean L2 norm of ``rows`` to ``sqrt(d)``."""
    total, count, d = 0.0, 0, 0
    for block in rows:
        block = block.float()
        d = block.shape[-1]
        total += float(block.norm(dim=-1).double().sum())
        count += block.shape[0]
    if count == 0 or total <= 0:
        return 1.0
    return math.sqrt(d) / (total / count)


def fold_scales(sae: "SAE", in_scale: float, out_scale: float) -> "SAE":
    """``sae`` with the input/output scales folded into its weights (in place; returned)."""
    with torch.no_grad():
        sae.W_enc.mul_(in_scale / out_scale)
        sae.b_enc.div_(out_scale)
        sae.b_dec.div_(out_scale)
        if hasattr(sae, "threshold"):
            sae.threshold.div_(out_scale)
    return sae


def unfold_scales(sae: "SAE", in_scale: float, out_scale: float) -> "SAE":
    """The inverse of :func:`fold_scales`: a raw-activation SAE in training units (in place)."""
    return fold_scales(sae, 1.0 / in_scale, 1.0 / out_scale)
