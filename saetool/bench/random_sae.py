"""The floor every bench number is compared with: a random SAE of the same shape.

Decoder rows are random directions (Gaussian, one seed per run) scaled to the
trained SAE's median decoder-row norm; the encoder is the decoder transposed
(the usual initialisation); ``b_enc`` is zero; ``b_dec`` (the data mean every
trainer starts from) and a JumpReLU threshold are the trained SAE's. So the
floor knows the data's mean and scale but has learned no features: whatever a
trained SAE scores above it, training bought.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from saetool.sae.model import SAE


def random_like(sae: SAE, seed: int = 0) -> SAE:
    """A random SAE with ``sae``'s config, device and dtype (see the module docstring)."""
    cfg = replace(sae.cfg)
    gen = torch.Generator().manual_seed(int(seed))
    out = SAE(cfg, device=sae.device, dtype=sae.dtype)
    with torch.no_grad():
        d_out = sae.W_dec.shape[1]
        rows = torch.randn(cfg.d_sae, d_out, generator=gen, dtype=torch.float64)
        rows = rows / rows.norm(dim=1, keepdim=True)
        scale = float(sae.W_dec.detach().double().norm(dim=1).median())
        w_dec = (rows * (scale if scale > 0 else 1.0)).to(device=sae.device, dtype=sae.dtype)
        out.W_dec.copy_(w_dec)
        if sae.W_enc.shape[0] == d_out:
            out.W_enc.copy_(w_dec.T / max(scale, 1e-12) ** 2)
        else:  # a transcoder reads another width: random encoder directions
            enc = torch.randn(cfg.d_in, cfg.d_sae, generator=gen, dtype=torch.float64)
            out.W_enc.copy_((enc / enc.norm(dim=0, keepdim=True)).to(device=sae.device, dtype=sae.dtype))
        out.b_dec.copy_(sae.b_dec.detach())
        if cfg.activation == "jumprelu":
            out.threshold.copy_(sae.threshold.detach())
    return out.eval()
