"""``saetool check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from saetool.cli.evaluate_cmd import ACTS_ARG, BATCH_SIZE, CONTEXT, CORPUS, DEAD, DENSE, MODEL, NO_MODEL, NUM_TOKENS, SAE_ARG, SKIP_TOKENS, eval_config
from saetool.cli.options import BACKEND, DEVICE, JSON, TRUST_REMOTE_CODE
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the evaluate and check APIs (torch) and artifact helpers load when the
# command runs.


def check(
    sae: Optional[str] = SAE_ARG,
    activations: Optional[Path] = ACTS_ARG,
    model: Optional[str] = MODEL,
    corpus: str = CORPUS,
    min_ev: float = typer.Option(0.8, "--min-ev", help="Pass when explained variance is at least this."),
    min_ce_recovered: float = typer.Option(0.8, "--min-ce-recovered", help="Pass when the fraction of CE loss recovered is at least this."),
    l0: str = typer.Option("5-200", "--l0", help="Pass when active features per token lie in MIN-MAX."),
    max_dead: float = typer.Option(0.1, "--max-dead", help="Pass when at most this fraction of features is dead."),
    criteria: str = typer.Option("default", "--criteria", help="Profile: default (explained variance, CE recovered, L0, dead) or seed000 (seed 000's cosine, common features, steering, completeness)."),
    transitions: Optional[Path] = typer.Option(None, "--transitions", help="seed000: a `transitions` artifact (saetool transitions with this SAE)."),
    steering: Optional[Path] = typer.Option(None, "--steering", help="seed000: a steer `completions` artifact, or a sweep folder / its summary.csv / best.json."),
    min_cosine: float = typer.Option(0.9, "--min-cosine", help="seed000: pass when the reconstruction cosine is above this."),
    min_common: int = typer.Option(2, "--min-common", help="seed000: pass with at least this many transition-specific common features."),
    min_share: float = typer.Option(0.5, "--min-share", help="seed000: a common feature fires in at least this share of the transition samples."),
    min_lift: float = typer.Option(2.0, "--min-lift", help="seed000: ... and at least this many times as often as on ordinary text (ACTIVATIONS) and, when the transitions hold a control (transitions --control), as at its tokens."),
    level: float = typer.Option(0.05, "--level", help="seed000: significance level of the steering test on a completions artifact (a sweep's best cell keeps its own) and of the features' test against the control (Benjamini-Hochberg q)."),
    only_turning: bool = typer.Option(False, "--only-turning", help="seed000: judge the transitions by the texts that turn from negative to positive at the labeled token only (the transitions artifact's VADER sentiment; as transitions --only-turning, without generating again)."),
    num_tokens: int = NUM_TOKENS,
    skip_tokens: int = SKIP_TOKENS,
    batch_size: int = BATCH_SIZE,
    context_size: int = CONTEXT,
    backend: str = BACKEND,
    device: str = DEVICE,
    dead_threshold: float = DEAD,
    dense_threshold: float = DENSE,
    no_model: bool = NO_MODEL,
    as_json: bool = JSON,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Go/no-go for building on an SAE (pretrained or trained): SCALE UP or FIX ISSUES FIRST.

    Checks compatibility (d_in and hook against the model or ACTIVATIONS: a
    mismatch is an error before any work), explained variance, CE loss
    recovered, L0 and dead fraction against the thresholds, prints the table
    with a fix for each failed row, and exits 0 (SCALE UP) or 1 (FIX ISSUES FIRST).

    With --criteria seed000 the verdict follows seed 000's own four criteria,
    each with its reason: reconstruction cosine > 0.9 at the transition tokens
    (--transitions), at least 2 common features at the transition that are
    specific to it (share of samples vs density on ACTIVATIONS, and vs the
    transitions' control when they hold one), steering that works
    (--steering: significant vs baseline), and a complete pipeline. A
    criterion without its input is not measured and does not pass.

    Example:

        saetool check my-saelens-sae/ --model smollm2-135m --corpus bbc-news --min-ev 0.85 --l0 20-120
        saetool check sae.h5 acts.h5 --criteria seed000 --transitions transitions.h5 --steering steer.h5
    """
    from saetool.artifacts.manifest import resolve_input
    from saetool.evaluate.api import evaluate_sae
    from saetool.evaluate.check import Thresholds, build_check, parse_range, print_check
    from saetool.evaluate.criteria import PROFILES, Seed000Thresholds, build_seed000_check

    if criteria not in PROFILES:
        raise SaetoolError(f"unknown --criteria {criteria!r}", hint="choose one of: " + ", ".join(PROFILES))
    if criteria != "seed000" and (transitions is not None or steering is not None or only_turning):
        raise SaetoolError("--transitions, --steering and --only-turning belong to --criteria seed000", hint="add --criteria seed000")
    lo, hi = parse_range(l0)
    thresholds = Thresholds(min_ev=min_ev, min_ce_recovered=min_ce_recovered, l0_min=lo, l0_max=hi, max_dead=max_dead)
    thresholds.validate()
    seed_th = Seed000Thresholds(min_cosine=min_cosine, min_common=min_common, min_share=min_share, min_lift=min_lift, level=level, only_turning=only_turning)
    seed_th.validate()
    for p, what in ((transitions, "--transitions"), (steering, "--steering")):
        if p is not None and not p.exists():
            raise SaetoolError(f"{what} {p} does not exist")
    config = eval_config(model=model, corpus=corpus, num_tokens=num_tokens, batch_size=batch_size, context_size=context_size, backend=backend,
                         device=device, dead_threshold=dead_threshold, dense_threshold=dense_threshold, no_model=no_model, skip_tokens=skip_tokens)
    path = resolve_input(sae, what="SAE")
    ev = evaluate_sae(path, activations, config)
    if criteria == "seed000":
        report = build_seed000_check(ev, path, seed_th, transitions=transitions, steering=steering, max_rows=num_tokens, device=device)
    else:
        report = build_check(ev, thresholds)
    print_check(report)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), allow_nan=False))
    raise typer.Exit(report.exit_code)
