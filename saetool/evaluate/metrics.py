"""SAE-quality metrics, registered through ``register_sae_metrics``.

A metric keeps a running state over batches: :meth:`SAEMetric.init` makes it,
:meth:`SAEMetric.update` folds in one batch and :meth:`SAEMetric.result` turns
it into a float. ``source`` says which batches a metric reads:

``"activations"``: :class:`ReconBatch` rows (the SAE's input, the target it
    reconstructs, the reconstruction and the feature codes);
``"model"``: :class:`LMBatch` per-position next-token losses of the model run
    clean, with the SAE spliced in at its hook and with the hook zero-ablated,
    plus the KL divergence of the spliced model to the clean one.

Completion metrics for ``steer``/``sweep`` (:mod:`saetool.steer.metrics`) are
another interface with a hook of its own; each command accepts only its own.

Built-ins (sums are accumulated in float64):

- ``mse``: mean squared error per element, ``sum ||y - y_hat||^2 / (n d)``.
- ``fvu``: the fraction of variance unexplained, ``sum ||y - y_hat||^2 / sum
  ||y - mean(y)||^2`` (the mean over the evaluated rows); what SAELens calls
  normalised MSE.
- ``explained_variance``: ``1 - fvu`` (the definition ``train`` and SAELens use).
- ``cosine_similarity``: mean over rows of ``cos(y, y_hat)``.
- ``l0``: mean number of non-zero features per row.
- ``dead_fraction``: fraction of features firing on at most ``dead_threshold``
  of the rows (default 0: never fired).
- ``dense_fraction``: fraction of features firing on more than
  ``dense_threshold`` of the rows (default 0.1).
- ``ce_loss_clean``, ``ce_loss_sae``, ``ce_loss_zero``: mean next-token
  cross-entropy (nats) of the model clean, spliced, zero-ablated.
- ``ce_loss_recovered``: ``(ce_zero - ce_sae) / (ce_zero - ce_clean)``.
- ``kl_div_sae``: mean ``KL(clean || spliced)`` of the next-token
  distributions (nats); ``kl_div_zero`` the same for the ablated model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from saetool.errors import SaetoolError
from saetool.plugins import host


@dataclass
class EvalContext:
    """What metrics may need to set up: the SAE width and the thresholds."""

    d_sae: int
    dead_threshold: float = 0.0
    dense_threshold: float = 0.1


@dataclass
class ReconBatch:
    """``x`` ``[n, d_in]`` SAE input, ``target`` ``[n, d_out]`` what it reconstructs
    (``x`` unless a transcoder), ``recon`` ``[n, d_out]``, ``codes`` ``[n, d_sae]``."""

    x: "torch.Tensor"
    target: "torch.Tensor"
    recon: "torch.Tensor"
    codes: "torch.Tensor"


@dataclass
class LMBatch:
    """Per kept position (BOS positions and each window's last position removed), float64 ``[n]``."""

    nll_clean: "torch.Tensor"
    nll_sae: "torch.Tensor"
    nll_zero: "torch.Tensor"
    kl_sae: "torch.Tensor"
    kl_zero: "torch.Tensor"


class SAEMetric:
    """Base class for SAE-quality metrics (``saetool evaluate`` / ``check``)."""

    scope: str = "sae"  # routes it under the deprecated register_metrics hook
    name: str = ""
    description: str = ""
    source: str = "activations"  # or "model"
    higher_is_better: bool | None = None

    def init(self, ctx: EvalContext) -> dict[str, Any]:
        return {}

    def update(self, state: dict[str, Any], batch: Any) -> None:
        raise NotImplementedError

    def result(self, state: dict[str, Any]) -> float:
        raise NotImplementedError


def _add(state: dict[str, Any], key: str, value: float) -> None:
    state[key] = state.get(key, 0.0) + float(value)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


class _Residual(SAEMetric):
    """Shared sums: squared error, elements, rows, sum(y), sum(y^2) per dimension."""

    def update(self, state, batch: ReconBatch) -> None:
        y = batch.target.double()
        err = (batch.recon.double() - y).pow(2).sum()
        _add(state, "sq", err)
        _add(state, "elems", y.numel())
        _add(state, "rows", y.shape[0])
        state["sum"] = state.get("sum", 0) + y.sum(0)
        state["sumsq"] = state.get("sumsq", 0) + y.pow(2).sum(0)

    @staticmethod
    def total_variance(state) -> float:
        """``sum_i ||y_i - mean(y)||^2`` from per-dimension sums (float64)."""
        n = state.get("rows", 0.0)
        if not n:
            return math.nan
        return float((state["sumsq"] - state["sum"].pow(2) / n).sum())


class MSE(_Residual):
    name = "mse"
    description = "Mean squared reconstruction error per element"
    higher_is_better = False

    def result(self, state):
        return _ratio(state.get("sq", 0.0), state.get("elems", 0.0))


class FVU(_Residual):
    name = "fvu"
    description = "Fraction of variance unexplained: squared error / variance around the mean (1 - explained variance)"
    higher_is_better = False

    def result(self, state):
        return _ratio(state.get("sq", 0.0), self.total_variance(state))


class ExplainedVariance(_Residual):
    name = "explained_variance"
    description = "1 - FVU"
    higher_is_better = True

    def result(self, state):
        return 1.0 - _ratio(state.get("sq", 0.0), self.total_variance(state))


class CosineSimilarity(SAEMetric):
    name = "cosine_similarity"
    description = "Mean cosine similarity of reconstruction and target"
    higher_is_better = True

    def update(self, state, batch: ReconBatch) -> None:
        cos = torch.nn.functional.cosine_similarity(batch.recon.double(), batch.target.double(), dim=-1, eps=1e-12)
        _add(state, "sum", cos.sum())
        _add(state, "rows", cos.numel())

    def result(self, state):
        return _ratio(state.get("sum", 0.0), state.get("rows", 0.0))


class L0(SAEMetric):
    name = "l0"
    description = "Mean number of active features per token"
    higher_is_better = None

    def update(self, state, batch: ReconBatch) -> None:
        _add(state, "active", (batch.codes != 0).sum())
        _add(state, "rows", batch.codes.shape[0])

    def result(self, state):
        return _ratio(state.get("active", 0.0), state.get("rows", 0.0))


class _Frequency(SAEMetric):
    """Per-feature firing counts."""

    def init(self, ctx: EvalContext) -> dict[str, Any]:
        return {"counts": torch.zeros(ctx.d_sae, dtype=torch.float64), "rows": 0, "ctx": ctx}

    def update(self, state, batch: ReconBatch) -> None:
        state["counts"] += (batch.codes != 0).sum(0).double().cpu()
        state["rows"] += batch.codes.shape[0]

    @staticmethod
    def frequencies(state) -> "torch.Tensor":
        return state["counts"] / max(state["rows"], 1)


class DeadFraction(_Frequency):
    name = "dead_fraction"
    description = "Fraction of features firing on at most --dead-threshold of tokens"
    higher_is_better = False

    def result(self, state):
        if not state["rows"]:
            return math.nan
        return float((self.frequencies(state) <= state["ctx"].dead_threshold).double().mean())


class DenseFraction(_Frequency):
    name = "dense_fraction"
    description = "Fraction of features firing on more than --dense-threshold of tokens"
    higher_is_better = False

    def result(self, state):
        if not state["rows"]:
            return math.nan
        return float((self.frequencies(state) > state["ctx"].dense_threshold).double().mean())


class _PerPosition(SAEMetric):
    """Mean of one :class:`LMBatch` field over kept positions."""

    source = "model"
    field_name = ""

    def update(self, state, batch: LMBatch) -> None:
        values = getattr(batch, self.field_name)
        _add(state, "sum", values.double().sum())
        _add(state, "n", values.numel())

    def result(self, state):
        return _ratio(state.get("sum", 0.0), state.get("n", 0.0))


class CELossClean(_PerPosition):
    name = "ce_loss_clean"
    description = "Next-token cross-entropy (nats) of the unmodified model"
    field_name = "nll_clean"
    higher_is_better = False


class CELossSAE(_PerPosition):
    name = "ce_loss_sae"
    description = "Next-token cross-entropy (nats) with the SAE spliced in at its hook"
    field_name = "nll_sae"
    higher_is_better = False


class CELossZero(_PerPosition):
    name = "ce_loss_zero"
    description = "Next-token cross-entropy (nats) with the hook zero-ablated"
    field_name = "nll_zero"
    higher_is_better = False


class KLDivSAE(_PerPosition):
    name = "kl_div_sae"
    description = "KL(clean || spliced) of next-token distributions (nats)"
    field_name = "kl_sae"
    higher_is_better = False


class KLDivZero(_PerPosition):
    name = "kl_div_zero"
    description = "KL(clean || zero-ablated) of next-token distributions (nats)"
    field_name = "kl_zero"
    higher_is_better = False


class CELossRecovered(SAEMetric):
    name = "ce_loss_recovered"
    description = "Fraction of CE loss recovered: (CE_zero - CE_sae) / (CE_zero - CE_clean)"
    source = "model"
    higher_is_better = True

    def update(self, state, batch: LMBatch) -> None:
        for key in ("nll_clean", "nll_sae", "nll_zero"):
            _add(state, key, getattr(batch, key).double().sum())
        _add(state, "n", batch.nll_clean.numel())

    def result(self, state):
        if not state.get("n"):
            return math.nan
        return _ratio(state["nll_zero"] - state["nll_sae"], state["nll_zero"] - state["nll_clean"])


BUILTIN_SAE_METRICS: tuple[SAEMetric, ...] = (
    MSE(),
    FVU(),
    ExplainedVariance(),
    CosineSimilarity(),
    L0(),
    DeadFraction(),
    DenseFraction(),
    CELossClean(),
    CELossSAE(),
    CELossZero(),
    CELossRecovered(),
    KLDivSAE(),
    KLDivZero(),
)


def sae_metrics(names: "list[str] | None" = None) -> dict[str, SAEMetric]:
    """Registered SAE metrics (all, or ``names`` in order; unknown names and
    completion metrics are a one-line error)."""
    ours = {name: reg.obj for name, reg in host().collect("sae_metrics").items()}
    if names is None:
        return ours
    out: dict[str, SAEMetric] = {}
    for name in names:
        if name not in ours:
            why = "is a completion metric (steer/sweep)" if name in host().collect("completion_metrics") else "is not a registered metric"
            raise SaetoolError(f"metric {name!r} {why}", hint="SAE metrics: " + ", ".join(sorted(ours)))
        out[name] = ours[name]
    return out
