"""Learning-rate and sparsity-coefficient schedules (pure functions of the step)."""

from __future__ import annotations

import math


def lr_at(step: int, *, total: int, lr: float, warmup: int, final_fraction: float = 0.0) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``final_fraction * lr``
    at the last step. ``step`` counts from 0."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    low = lr * final_fraction
    return low + (lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def sparsity_at(step: int, *, coeff: float, warmup: int) -> float:
    """The sparsity coefficient, ramped linearly from 0 over ``warmup`` steps."""
    if warmup > 0 and step < warmup:
        return coeff * (step + 1) / warmup
    return coeff
