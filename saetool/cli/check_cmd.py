"""``saetool check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from saetool.cli.evaluate_cmd import ACTS_ARG, BATCH_SIZE, CONTEXT, CORPUS, DEAD, DENSE, MODEL, NO_MODEL, NUM_TOKENS, SAE_ARG, eval_config
from saetool.cli.options import BACKEND, DEVICE, JSON, TRUST_REMOTE_CODE


def check(
    sae: Optional[str] = SAE_ARG,
    activations: Optional[Path] = ACTS_ARG,
    model: Optional[str] = MODEL,
    corpus: str = CORPUS,
    min_ev: float = typer.Option(0.8, "--min-ev", help="Pass when explained variance is at least this."),
    min_ce_recovered: float = typer.Option(0.8, "--min-ce-recovered", help="Pass when the fraction of CE loss recovered is at least this."),
    l0: str = typer.Option("5-200", "--l0", help="Pass when active features per token lie in MIN-MAX."),
    max_dead: float = typer.Option(0.1, "--max-dead", help="Pass when at most this fraction of features is dead."),
    num_tokens: int = NUM_TOKENS,
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

    Example:

        saetool check my-saelens-sae/ --model smollm2-135m --corpus bbc-news --min-ev 0.85 --l0 20-120
    """
    from saetool.artifacts.manifest import resolve_input
    from saetool.evaluate.api import evaluate_sae
    from saetool.evaluate.check import Thresholds, build_check, parse_range, print_check

    lo, hi = parse_range(l0)
    thresholds = Thresholds(min_ev=min_ev, min_ce_recovered=min_ce_recovered, l0_min=lo, l0_max=hi, max_dead=max_dead)
    thresholds.validate()
    config = eval_config(model=model, corpus=corpus, num_tokens=num_tokens, batch_size=batch_size, context_size=context_size, backend=backend,
                         device=device, dead_threshold=dead_threshold, dense_threshold=dense_threshold, no_model=no_model)
    path = resolve_input(sae, what="SAE")
    report = build_check(evaluate_sae(path, activations, config), thresholds)
    print_check(report)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    raise typer.Exit(report.exit_code)
