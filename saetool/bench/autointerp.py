"""The ``autointerp`` eval: how well labels of the SAE's latents predict where they fire.

A random sample of ``features`` live latents (fired at least once on the run's
activations) goes through :func:`saetool.interpret.api.interpret` with the
chosen labeler (``tokens`` by default: offline, no model; ``llm`` with
``labeler_options`` such as ``url=...`` for an OpenAI-compatible endpoint or
none for the embedded chat model). Its ``detection`` and ``fuzzing`` scorers
give each label a balanced accuracy (chance 0.5); reported here as the mean
over the sampled latents with a 95% Student-t interval
(:func:`saetool.interpret.scoring.mean_ci`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from saetool.artifacts.activations import ActivationsFile
from saetool.bench.base import BenchContext, BenchEval, EvalResult, MetricCard, SAEEntry
from saetool.errors import SaetoolError
from saetool.interpret.api import InterpretConfig, interpret
from saetool.interpret.scoring import mean_ci
from saetool.sae.io import write_sae_artifact

SCORERS = ("detection", "fuzzing")


@dataclass
class AutointerpOptions:
    features: int = 30
    labeler: str = "tokens"
    labeler_options: str = ""  # KEY=VALUE pairs separated by ';'
    examples: int = 20
    held_out: int = 10
    negatives: int = 10
    context: int = 24

    def validate(self) -> None:
        if self.features < 2:
            raise SaetoolError(f"--option autointerp.features must be at least 2 (got {self.features})")
        self.parsed_options()

    def parsed_options(self) -> dict[str, str]:
        """``"url=http://h/v1;model=m"`` -> ``{"url": ..., "model": ...}``."""
        out = {}
        for part in filter(str.strip, self.labeler_options.split(";")):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise SaetoolError(f"--option autointerp.labeler_options must be KEY=VALUE pairs separated by ';' (got {part!r})")
            out[key.strip()] = value.strip()
        return out


def live_features(sae: Any, acts_path: Any, num_rows: int) -> list[int]:
    """Latents that fire at least once on the first ``num_rows`` rows at the SAE's hook."""
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    with ActivationsFile(acts_path) as acts, torch.no_grad():
        stop = min(num_rows, acts.n_tokens)
        for start in range(0, stop, 4096):
            x = acts.read(sae.cfg.hook, start, min(start + 4096, stop)).to(device=sae.device, dtype=sae.dtype)
            fired |= (sae.encode(x) > 0).any(0).cpu()
    return [int(i) for i in torch.nonzero(fired).flatten()]


CARDS = (
    *(MetricCard(name, f"Mean {name} balanced accuracy of the sampled live latents' labels", True, "chance 0.5; the random floor", chance=0.5,
                 caveat="the tokens labeler only describes token-level latents, and random latents of early layers are token detectors too "
                         "(the floor can score as high there); a few dozen latents give a wide interval (see the _ci columns)")
      for name in SCORERS),
    *(MetricCard(f"{name}_ci_{side}", f"{'Lower' if side == 'low' else 'Upper'} end of the 95% interval of the mean {name} score", True, "chance 0.5", chance=0.5)
      for name in SCORERS for side in ("low", "high")),
    MetricCard("scored", "Latents with a score (of those sampled)", None, "--option autointerp.features", caveat="few: a wide interval"),
)


class AutointerpEval(BenchEval):
    name = "autointerp"
    description = "Detection and fuzzing scores of labels for a random sample of live latents (tokens labeler offline, or an LLM)"
    needs = ("activations",)
    options = AutointerpOptions
    cards = CARDS
    headline = "detection"

    def run(self, entry: SAEEntry, ctx: BenchContext) -> EvalResult:
        opts: AutointerpOptions = ctx.options(self)
        live = live_features(entry.sae, ctx.acts, ctx.config.num_tokens)
        if len(live) < 2:
            return EvalResult({c.name: None for c in CARDS}, notes=["fewer than two live latents: nothing to score"])
        sample = sorted(random.Random(ctx.config.seed).sample(live, min(opts.features, len(live))))
        path = entry.path
        if path is None:  # a random floor: interpret reads SAEs from files
            assert ctx.workdir is not None
            path = str(write_sae_artifact(ctx.workdir / f"{entry.name}.h5", entry.sae, provenance={}, overwrite=True))
        config = InterpretConfig(features=sample, labeler=opts.labeler, labeler_options=opts.parsed_options(), scorers=list(SCORERS),
                                 examples=opts.examples, held_out=opts.held_out, negatives=opts.negatives, context=opts.context, seed=ctx.config.seed,
                                 device=ctx.config.device, logit_tokens=0, neighbours=0, intervals=5)
        assert ctx.workdir is not None
        result = interpret(config, ctx.acts, path, ctx.workdir / f"features-{entry.name}.h5", overwrite=True, progress=False)
        metrics: dict[str, float | None] = {}
        per_feature = []
        for rec in result.records:
            details = rec.label.details if rec.label is not None else {}
            per_feature.append({"feature": rec.index, "label": rec.label.text if rec.label else None, **{s: details.get(s, {}).get("score") for s in SCORERS}})
        for name in SCORERS:
            mean, ci, n = mean_ci([row[name] for row in per_feature])
            metrics[name] = mean
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = ci if ci is not None else (None, None)
            metrics["scored"] = float(n) if name == SCORERS[0] else metrics["scored"]
        notes = [] if result.labeler == opts.labeler else [f"labeler {opts.labeler} failed; scores are from the {result.labeler} labeler"]
        return EvalResult(metrics, details={"labeler": result.labeler, "live": len(live), "features": per_feature}, notes=notes)
