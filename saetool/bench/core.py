"""The ``core`` eval: what ``saetool evaluate`` measures (reused, not re-implemented).

It calls :func:`saetool.evaluate.api.evaluate_saes` on the run's activations
file and, when the run has a model, with each SAE spliced into the model, and
reports every registered SAE metric under its own name. Every SAE of the run
(floors included) is evaluated in one go, so the model's clean and zero-ablated
passes run once per batch for all of them; the first SAE's result carries the
whole time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saetool.bench.base import BenchContext, BenchEval, EvalResult, MetricCard, SAEEntry
from saetool.evaluate.api import EvalConfig, evaluate_saes


@dataclass
class CoreOptions:
    """``num_tokens`` 0: the run's ``--num-tokens``; ``model`` False: reconstruction metrics only."""

    num_tokens: int = 0
    model: bool = True


_FLOOR = "the random SAE of the same shape"
CARDS = (
    MetricCard("fvu", "Fraction of variance unexplained by the reconstruction", False, _FLOOR + "; 1.0 is predicting the mean", caveat="compare SAEs at similar L0 (the L0-FVU frontier)"),
    MetricCard("explained_variance", "1 - FVU", True, _FLOOR + "; 0 is predicting the mean"),
    MetricCard("mse", "Mean squared reconstruction error per element", False, _FLOOR, caveat="depends on the activations' scale: compare SAEs on one hook only"),
    MetricCard("cosine_similarity", "Mean cosine of reconstruction and input", True, _FLOOR),
    MetricCard("l0", "Mean active latents per token", None, "set by the SAE's design (k for TopK)", caveat="not a score: read it with FVU (the frontier plot)"),
    MetricCard("dead_fraction", "Fraction of latents that never fired on the evaluated tokens", False, "0", caveat="with few tokens, rare latents look dead"),
    MetricCard("dense_fraction", "Fraction of latents firing on more than 10% of tokens", False, "0"),
    MetricCard("ce_loss_clean", "Next-token loss of the model, unmodified (nats)", None, "the model itself", caveat="the same for every SAE: the reference point"),
    MetricCard("ce_loss_sae", "Next-token loss with the SAE spliced in (nats)", False, "ce_loss_clean is the best possible; " + _FLOOR),
    MetricCard("ce_loss_zero", "Next-token loss with the hook zero-ablated (nats)", None, "the model without the hook", caveat="the same for every SAE: the reference point"),
    MetricCard("ce_loss_recovered", "(CE_zero - CE_sae) / (CE_zero - CE_clean)", True, "0 is as bad as zero ablation, 1 is the clean model; " + _FLOOR, caveat="unstable when ablating the hook barely hurts (CE_zero close to CE_clean)"),
    MetricCard("kl_div_sae", "KL(clean || spliced) of next-token distributions (nats)", False, "0 is the clean model; " + _FLOOR),
    MetricCard("kl_div_zero", "KL(clean || zero-ablated) (nats)", None, "the model without the hook", caveat="the same for every SAE: the reference point"),
)


class CoreEval(BenchEval):
    name = "core"
    description = "Reconstruction, sparsity and (with the model) CE loss recovered and KL: saetool evaluate's metrics"
    needs = ("activations",)
    options = CoreOptions
    cards = CARDS
    headline = "fvu"

    def run(self, entry: SAEEntry, ctx: BenchContext) -> EvalResult:
        done: dict[str, Any] = ctx.cache.setdefault("core:evaluations", {})
        if entry.name not in done:  # every SAE still to do at once: the model's clean and ablated passes are shared
            done.update(self._evaluate([e for e in ctx.todo if e.name not in done] or [entry], ctx))
        ev = done.pop(entry.name)
        use_model = ev.model is not None
        notes = [] if use_model else ["no model: CE loss and KL not measured"]
        return EvalResult(metrics=dict(ev.metrics), details={"n_rows": ev.n_rows, "n_positions": ev.n_positions, "metrics_without_massive_rows": ev.metrics_ordinary}, notes=notes)

    def _evaluate(self, entries: list[SAEEntry], ctx: BenchContext) -> dict[str, Any]:
        opts: CoreOptions = ctx.options(self)
        cfg = ctx.config
        use_model = opts.model and ctx.load is not None
        config = EvalConfig(model=ctx.model_name, backend=cfg.backend, context_size=cfg.context_size, num_tokens=opts.num_tokens or cfg.num_tokens,
                            batch_size=cfg.batch_size, device=cfg.device, dtype=cfg.dtype, use_model=use_model)
        return evaluate_saes({e.name: e.sae for e in entries}, ctx.acts, config, model=ctx.model if use_model else None)
