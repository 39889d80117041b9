"""Initialising an SAE from data: ``b_dec`` (mean or geometric median), and
turning a pretrained SAE (``--init-from``) into a starting point."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch

from saetool.errors import SaetoolError
from saetool.sae.model import SAE

if TYPE_CHECKING:
    from saetool.sae.config import SAEConfig
    from saetool.train.architectures import SAEArchitecture


def init_seed(seed: int, hook: str, hook_out: str | None = None) -> int:
    """The seed of a run's random initialisation: a stable hash (BLAKE2b, the same
    on every machine and Python, unlike ``hash()``) of the base ``seed`` and the
    hook(s), so SAEs trained on different hooks with one ``--seed`` start from
    different matrices and the same hook always from the same ones."""
    key = f"{int(seed)}\0{hook}\0{hook_out or ''}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def geometric_median(points: "torch.Tensor", *, iters: int = 100, tol: float = 1e-6) -> "torch.Tensor":
    """The point minimising the sum of Euclidean distances to ``points`` (Weiszfeld)."""
    pts = points.double()
    median = pts.mean(0)
    for _ in range(iters):
        dist = (pts - median).norm(dim=1).clamp_min(1e-12)
        weights = 1.0 / dist
        new = (weights[:, None] * pts).sum(0) / weights.sum()
        shift = float((new - median).norm())
        median = new
        if shift <= tol * max(1.0, float(median.norm())):
            break
    return median.to(points.dtype)


def init_b_dec(sae: "SAE", targets: "torch.Tensor", method: str) -> None:
    """Set ``b_dec`` from sample target rows: ``geometric-median``, ``mean`` or ``zeros``."""
    with torch.no_grad():
        if method == "zeros" or targets.shape[0] == 0:
            sae.b_dec.zero_()
        elif method == "mean":
            sae.b_dec.copy_(targets.double().mean(0).to(sae.b_dec.dtype))
        elif method == "geometric-median":
            sae.b_dec.copy_(geometric_median(targets).to(sae.b_dec.dtype))
        else:
            raise SaetoolError(f"unknown --init-b-dec {method!r}", hint="choose geometric-median, mean or zeros")


def from_pretrained(pretrained: "SAE", cfg: "SAEConfig", arch: "SAEArchitecture") -> "SAE":
    """An SAE of config ``cfg`` holding ``pretrained``'s weights, ready to train.

    Whether ``b_dec`` is subtracted from the input follows ``cfg`` (the run's
    ``apply_b_dec_to_input``); ``b_enc`` absorbs the difference, so the
    pre-activations are the pretrained SAE's. With a
    unit-norm decoder each row's norm moves into the encoder column (the same
    function for ReLU SAEs). The caller then converts to training units.
    """
    p = pretrained.cfg
    if p.skip:
        raise SaetoolError("the --init-from SAE has a skip connection (W_skip), which training does not continue", hint="start from an SAE or transcoder without one")
    if p.d_sae != cfg.d_sae or (p.d_out or p.d_in) != (cfg.d_out or cfg.d_in):
        raise SaetoolError(f"--init-from SAE has d_sae={p.d_sae}, d_out={p.d_out} but this run needs d_sae={cfg.d_sae}, d_out={cfg.d_out}")
    sae = SAE(cfg)
    with torch.no_grad():
        W_enc = pretrained.W_enc.detach().float().clone()
        b_enc = pretrained.b_enc.detach().float().clone()
        W_dec = pretrained.W_dec.detach().float().clone()
        b_dec = pretrained.b_dec.detach().float().clone()
        if p.subtracts_b_dec != cfg.subtracts_b_dec:  # the same pre-activations with or without b_dec subtracted
            b_enc = b_enc + (b_dec @ W_enc if cfg.subtracts_b_dec else -(b_dec @ W_enc))
        threshold = pretrained.threshold.detach().float().clone() if hasattr(pretrained, "threshold") else None
        if arch.unit_norm_decoder:
            norms = W_dec.norm(dim=1).clamp_min(1e-12)
            W_dec /= norms[:, None]
            W_enc *= norms[None, :]
            b_enc *= norms
            if threshold is not None:
                threshold *= norms
        sae.W_enc.copy_(W_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_dec.copy_(b_dec)
        if hasattr(sae, "threshold"):
            sae.threshold.copy_(threshold if threshold is not None else torch.zeros(cfg.d_sae))
    return sae
