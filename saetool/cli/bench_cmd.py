"""``saetool bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from saetool.cli.options import BACKEND, DEVICE, DTYPE, OVERWRITE, RESUME, TRUST_REMOTE_CODE
from saetool.console import log

# Deferred imports: loaded by `saetool --help`; the bench API and artifact helpers load when the command runs.


def bench(
    saes: List[str] = typer.Argument(..., metavar="SAE...", help="SAEs to compare (artifacts or SAELens/sparsify folders), all on one hook."),
    evals: Optional[str] = typer.Option(None, "--evals", "-e", help="Comma-separated evals (default: core,stability,probing,absorption,autointerp)."),
    acts: Optional[Path] = typer.Option(None, "--acts", "-a", help="Activations artifact with the SAEs' hook (default: extract --num-tokens from --model over --corpus)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model (default: the activations' or the SAE's)."),
    corpus: str = typer.Option("bbc-news", "--corpus", "-c", help="Corpus to extract activations from when --acts is not given."),
    num_tokens: int = typer.Option(4096, "--num-tokens", "-n", help="Tokens for core and autointerp (rows of --acts, or tokens extracted)."),
    context_size: int = typer.Option(128, "--context-size", help="Window length when extracting from --corpus."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Windows per forward pass."),
    option: List[str] = typer.Option([], "--option", "-O", help="An eval's setting, EVAL.KEY=VALUE (repeatable), e.g. probing.per_class=40; see docs/bench.md."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random floors and of every sample."),
    no_random: bool = typer.Option(False, "--no-random-floor", help="Do not evaluate a random SAE of each shape alongside (the floor)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the results as CSV (one row per SAE x metric)."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Also write PNG plots into this folder (L0 vs FVU, probing accuracy vs k)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object on stdout (with the manifest's path and kind)."),
    output: Path = typer.Option(Path("bench.h5"), "--output", "-o", help="The bench artifact to write."),
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Compare SAEs on SAEBench-class evals, offline, each beside a random SAE of
    the same shape (the floor): core (evaluate's metrics), stability (decoder
    matches between the SAEs, feature splitting), probing (sparse probing on
    labelled texts), absorption (first-letter features) and autointerp
    (tokens-labeler detection and fuzzing scores).

    The table goes to stderr; every number has a metric card (better direction,
    chance level, when it is not meaningful) in docs/bench.md and in the artifact.

    Example:

        saetool bench sae-a.h5 sae-b.h5 --acts acts.h5 --evals core,stability,probing --csv bench.csv -o bench.h5
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.bench.api import run_bench
    from saetool.bench.config import KIND, BenchConfig, parse_evals, parse_options
    from saetool.bench.report import print_tables, write_csv

    config = BenchConfig(evals=parse_evals(evals), model=model, corpus=corpus, backend=backend, device=device, dtype=dtype, num_tokens=num_tokens,
                         context_size=context_size, batch_size=batch_size, seed=seed, random_floor=not no_random, options=parse_options(option))
    config.validate()
    results = run_bench(saes, config, output, acts=acts, overwrite=overwrite, resume=resume)
    print_tables(results)
    extra = []
    if csv is not None:
        extra.append(write_csv(results, csv))
    if plots is not None:
        from saetool.bench.plots import write_plots

        extra.extend(write_plots(results, plots))
    log(f"[green]wrote[/green] {results.path}" + "".join(f", {p}" for p in extra))
    manifest = {"saes": results.names, "evals": results.evals, "exports": [str(Path(p).resolve()) for p in extra]}
    if as_json:
        typer.echo(json.dumps({"path": str(Path(output).resolve()), "kind": KIND, **manifest, **results.to_json()}, sort_keys=True))
    else:
        emit_manifest(output, KIND, **manifest)
