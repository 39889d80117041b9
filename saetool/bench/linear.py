"""Logistic-regression probes, fitted in torch (no scikit-learn dependency).

:func:`fit_logistic` fits one or several independent binary probes (a column
of ``y`` each) by L-BFGS on standardised (or raw) inputs, minimising the mean log loss
plus ``||w||^2 / (2 C n)`` (scikit-learn's ``LogisticRegression(C=C)``
objective divided by ``n``; the intercept is not penalised).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Probe:
    """Fitted probes: ``weight`` ``[c, d]`` and ``bias`` ``[c]`` in the original input units."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x.double() @ self.weight.T + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean ``[n, c]`` decisions (logit > 0)."""
        return self.logits(x) > 0

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Fraction of correct decisions (one probe: ``y`` ``[n]``)."""
        pred = self.predict(x)
        y = y.reshape(pred.shape[0], -1).bool()
        return float((pred == y).double().mean())


def fit_logistic(x: torch.Tensor, y: torch.Tensor, *, C: float = 1.0, max_iter: int = 200, standardize: bool = True) -> Probe:
    """Probes for ``y`` (``[n]`` or ``[n, c]`` of 0/1) from ``x`` ``[n, d]``; deterministic (float64,
    full batch). Without ``standardize`` the penalty applies to the raw inputs' weights."""
    x = x.double()
    y2 = y.reshape(x.shape[0], -1).double()
    n, d = x.shape
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    if not standardize:
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    z = (x - mean) / std
    w = torch.zeros(y2.shape[1], d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y2.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w.T + b, y2, reduction="sum") / n + (w * w).sum() / (2 * C * n)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    weight = (w / std).detach()
    return Probe(weight=weight, bias=(b - (w * (mean / std)).sum(1)).detach())
