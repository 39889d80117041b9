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


class L0Controller:
    """Steers sparsity so that L0 (active features per token) reaches ``target``.

    Two levers, both driven by ``e = log(l0 / target)`` after each step:

    - the sparsity coefficient, integrally: ``log(coeff) += gain * e``, so that
      in the long run the loss itself asks for the target L0;
    - a direct multiplicative nudge, :meth:`nudge` ``= exp(nudge_gain * e)``
      (clipped), that the objective applies to its thresholds (JumpReLU): it
      acts at once, whatever the learning rate schedule, which a short run needs.

    Each move is clipped to ``±max_move`` in log space. The state is one number
    (:attr:`log_coeff`).
    """

    def __init__(self, target: float, coeff: float, *, gain: float = 0.05, nudge_gain: float = 0.1, max_move: float = 0.05) -> None:
        self.target = float(target)
        self.log_coeff = math.log(max(coeff, 1e-8))
        self.gain = float(gain)
        self.nudge_gain = float(nudge_gain)
        self.max_move = float(max_move)

    @property
    def coeff(self) -> float:
        return math.exp(self.log_coeff)

    def _error(self, l0: float) -> float:
        return math.log(max(l0, 1e-3) / self.target) if math.isfinite(l0) else 0.0

    def _clip(self, v: float) -> float:
        return max(-self.max_move, min(self.max_move, v))

    def update(self, l0: float) -> float:
        """Fold in one step's L0; returns the factor to apply to the thresholds (1: none)."""
        e = self._error(l0)
        self.log_coeff += self._clip(self.gain * e)
        return math.exp(self._clip(self.nudge_gain * e))
