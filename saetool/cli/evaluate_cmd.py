"""``saetool evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.cli.options import BACKEND, DEVICE, JSON, TRUST_REMOTE_CODE

# Deferred imports: loaded by `saetool --help`; the evaluate API (torch) and artifact helpers load when the command
# runs.

SAE_ARG = typer.Argument(None, help="SAE: an `sae` artifact, or an SAE folder (SAELens, sparsify, Gemma/Llama Scope, dictionary_learning) or pretrained RELEASE/SAE_ID (omit or '-' to read a manifest from stdin).")
ACTS_ARG = typer.Argument(None, help="Activations artifact with the SAE's hook (held-out tokens); its stored windows feed the model metrics.")
MODEL = typer.Option(None, "--model", "-m", help="Model for CE loss / KL (default: the SAE's model).")
CORPUS = typer.Option("bbc-news", "--corpus", "-c", help="Corpus for the model metrics when no activations are given.")
NUM_TOKENS = typer.Option(4096, "--num-tokens", "-n", help="Tokens evaluated (activation rows; windows covering this many tokens for the model).")
SKIP_TOKENS = typer.Option(0, "--skip-tokens", help="With --corpus: start after the windows of its first N stored tokens, as extract --skip-tokens does (text an SAE trained on an N-token extract did not see).")
BATCH_SIZE = typer.Option(8, "--batch-size", "-b", help="Windows per forward pass (bounds memory).")
CONTEXT = typer.Option(128, "--context-size", help="Window length when tokens come from --corpus.")
DEAD = typer.Option(0.0, "--dead-threshold", help="A feature is dead when it fires on at most this fraction of tokens.")
DENSE = typer.Option(0.1, "--dense-threshold", help="A feature is dense when it fires on more than this fraction of tokens.")
NO_MODEL = typer.Option(False, "--no-model", help="Skip the model metrics (CE loss, KL): activations only.")


def eval_config(*, model: str | None, corpus: str, num_tokens: int, batch_size: int, context_size: int, backend: str, device: str,
                dead_threshold: float, dense_threshold: float, no_model: bool, metrics: list[str] | None = None, max_norm_ratio: float | None = None,
                skip_tokens: int = 0) -> Any:
    from saetool.evaluate.api import EvalConfig

    config = EvalConfig(model=model, backend=backend, corpus=corpus, context_size=context_size, num_tokens=num_tokens, skip_tokens=skip_tokens, batch_size=batch_size,
                        device=device, dead_threshold=dead_threshold, dense_threshold=dense_threshold, use_model=not no_model, metrics=metrics)
    if max_norm_ratio is not None:
        config.max_norm_ratio = max_norm_ratio
    config.validate()
    return config


def evaluate(
    sae: Optional[str] = SAE_ARG,
    activations: Optional[Path] = ACTS_ARG,
    model: Optional[str] = MODEL,
    corpus: str = CORPUS,
    num_tokens: int = NUM_TOKENS,
    skip_tokens: int = SKIP_TOKENS,
    batch_size: int = BATCH_SIZE,
    context_size: int = CONTEXT,
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="Only these SAE metrics (repeatable; default: all registered)."),
    backend: str = BACKEND,
    device: str = DEVICE,
    dead_threshold: float = DEAD,
    dense_threshold: float = DENSE,
    no_model: bool = NO_MODEL,
    max_norm_ratio: Optional[float] = typer.Option(None, "--max-norm-ratio", help="Also report the reconstruction metrics without massive-activation rows: farther from the median row than this x the median distance (default 10)."),
    as_json: bool = JSON,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Measure an SAE: reconstruction (MSE, FVU, explained variance,
    cosine), sparsity (L0, dead/dense features) and, with the model, CE loss
    clean / SAE spliced in / hook zero-ablated, CE loss recovered and KL.

    Tokens come from ACTIVATIONS (rows and their stored windows) or, without
    it, from --corpus (after its first --skip-tokens). BOS positions are left out of CE/KL and not spliced.
    With ACTIVATIONS the reconstruction metrics are also shown without the
    massive-activation rows (farther from the median row than --max-norm-ratio
    x the median distance; see
    docs/tutorial.md). The table goes to stderr; --json prints the numbers to stdout.

    Example:

        saetool evaluate sae.h5 heldout.h5 --num-tokens 8192 --json
    """
    from saetool.artifacts.manifest import resolve_input
    from saetool.evaluate.api import evaluate_sae, print_evaluation

    config = eval_config(model=model, corpus=corpus, num_tokens=num_tokens, batch_size=batch_size, context_size=context_size, backend=backend,
                         device=device, dead_threshold=dead_threshold, dense_threshold=dense_threshold, no_model=no_model, metrics=metric or None,
                         max_norm_ratio=max_norm_ratio, skip_tokens=skip_tokens)
    path = resolve_input(sae, what="SAE")
    ev = evaluate_sae(path, activations, config)
    print_evaluation(ev)
    if as_json:
        typer.echo(json.dumps(ev.to_dict()))
