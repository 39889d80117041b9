"""Logit effects of SAE features: which tokens a feature's decoder direction promotes and suppresses.

As on Neuronpedia and SAEDashboard pages: the decoder row ``d = W_dec[f]``
is taken through the final norm's linear part and the unembedding,
``W_U (g * P d)``, where ``g`` is the norm's elementwise scale and ``P`` the
identity for an RMSNorm or the centring of a LayerNorm (TransformerLens's
``fold_ln`` convention), ignoring the norm's division by the residual's size
(which scales every token alike) and its bias and the unembedding's. ``g * P``
is read from the model's own final-norm module, not from its class: for an
``x`` the norm does not rescale (``P x = x`` with unit rms), half the
difference of the outputs at ``x`` and ``-x`` is ``g * P x`` (the biases
cancel). Splitting ``d = c + mean(d) * 1`` with ``c`` centred (``P c = c``
for both kinds), ``g * P d = rms(c) * half(c / rms(c)) + mean(d) * half(1)``,
where ``half(1)`` is ``g`` for an RMSNorm and 0 for a LayerNorm. The values
are the logit change per unit of activation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from saetool.console import warn
from saetool.models.registry import resolve_model

if TYPE_CHECKING:
    from saetool.sae.model import SAE

#: Where causal-LM families keep the final norm.
FINAL_NORM_PATHS = ("model.norm", "model.language_model.norm", "language_model.model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.final_layernorm")


def final_norm(model: Any) -> Any:
    """The model's final norm module, or ``None``."""
    for path in FINAL_NORM_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def directions_to_logits(directions: "Any", norm: Any, unembedding: "Any") -> "Any":
    """``W_U (g * P d)`` for each row ``d`` of ``directions`` ``[F, d_model]`` -> ``[F, vocab]``."""
    with torch.no_grad():
        d = directions.to(unembedding.dtype)
        mean = d.mean(-1, keepdim=True)
        c = d - mean
        rms = c.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
        ones = torch.ones_like(d[:1])
        scaled = _half_difference(norm, c / rms) * rms + mean * _half_difference(norm, ones)
        return scaled @ unembedding.T


def _half_difference(norm: Any, x: "Any") -> "Any":
    """``(norm(x) - norm(-x)) / 2``: the norm's linear part at ``x`` when it does not rescale ``x``."""
    return (norm(x) - norm(-x)) / 2


def logit_effects(sae: "SAE", features: Sequence[int], model_name: str | None, n: int, *, device: str = "cpu", block: int = 256, model: Any = None) -> dict[str, "np.ndarray"] | None:
    """``positive_ids/values`` and ``negative_ids/values`` ``[F, n]``: the tokens whose logits each
    feature raises / lowers most. ``None`` (with a warning) when the model cannot be loaded or
    the SAE does not write into its residual stream."""
    if n <= 0 or not len(features):
        return None
    if model is None:
        if not model_name:
            return None
        try:
            model, _ = resolve_model(model_name).load_hf(device=device)
        except Exception as exc:  # the page is still useful without logits
            warn(f"no logit effects: could not load {model_name!r} ({' '.join(str(exc).split())[:120]})")
            return None
    out_emb = model.get_output_embeddings()
    norm = final_norm(model)
    W_U = None if out_emb is None else out_emb.weight.detach()
    if W_U is None or norm is None or W_U.shape[1] != sae.W_dec.shape[1]:
        warn(f"no logit effects: the SAE's decoder (width {sae.W_dec.shape[1]}) does not write into {model_name}'s residual stream")
        return None
    n = min(n, W_U.shape[0])
    F = len(features)
    out = {k: np.zeros((F, n), np.int64 if k.endswith("ids") else np.float32) for k in ("positive_ids", "positive_values", "negative_ids", "negative_values")}
    feats = torch.as_tensor(np.asarray(features), dtype=torch.long)
    with torch.no_grad():
        for b in range(0, F, block):
            d = sae.W_dec.detach()[feats[b : b + block].to(sae.W_dec.device)].float().to(W_U.device)
            logits = directions_to_logits(d, norm, W_U).float().cpu()
            pv, pi = logits.topk(n, dim=1)
            nv, ni = (-logits).topk(n, dim=1)
            out["positive_ids"][b : b + len(d)], out["positive_values"][b : b + len(d)] = pi.numpy(), pv.numpy()
            out["negative_ids"][b : b + len(d)], out["negative_values"][b : b + len(d)] = ni.numpy(), -nv.numpy()
    return out
