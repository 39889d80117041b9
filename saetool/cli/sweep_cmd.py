"""``saetool sweep``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from saetool.cli.options import TRUST_REMOTE_CODE
from saetool.console import is_quiet, log, stderr, warn
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the sweep API and rich tables load when the command runs.


def sweep(
    config: Path = typer.Argument(..., help="Sweep config (YAML); see examples/configs/."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Folder that holds runs (default: the config's output_dir, artifacts/runs)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name, i.e. the folder under the output dir (default: the config's name)."),
    max_prompts: Optional[int] = typer.Option(None, "--max-prompts", "-n", help="Override the config's prompt cap per split."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the config's device."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate the config and print the plan; generate nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard this run's earlier results and start afresh (default: resume, skipping finished cells)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary rows as JSON to stdout."),
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Run a grid of layers × alphas × interventions over prompt splits (resumable).

    Writes `artifacts/runs/NAME/`: one completions file per finished cell,
    `summary.csv` (rates with Wilson 95% CIs, Fisher tests against alpha 0 with
    Holm or BH correction; also under seed 001's column names such as
    is_refusal_mean and intervention_type), `completions.csv`, PNG plots and
    `best.json`: the best layer × intervention × alpha by a stated rule (highest
    harm_test refusal among cells that raise it significantly without a
    significant benign helpfulness drop or refusal rise; none when no rise is
    significant), which a later config uses with `layers: best` and `best_from: NAME`.
    Rerunning skips finished cells, so a killed sweep resumes where it stopped.

    Example:

        saetool sweep examples/configs/smoke.yaml
    """
    from saetool.steer.sweep import run_sweep
    from saetool.steer.sweep_config import load_sweep_config

    cfg = load_sweep_config(config)
    if name is not None:
        if "/" in name or not name.strip():
            raise SaetoolError(f"--name {name!r} must be a plain folder name")
        cfg.name = name
    if max_prompts is not None:
        if max_prompts < 1:
            raise SaetoolError(f"--max-prompts must be at least 1 (got {max_prompts})")
        cfg.max_prompts = max_prompts
    if device is not None:
        cfg.device = device
    result = run_sweep(cfg, output_dir=output_dir, overwrite=overwrite, dry_run=dry_run)
    if dry_run:
        n_cells = len(result.cells)
        log(
            f"{cfg.name}: {n_cells} cell(s) ({len(cfg.layers)} layer(s) × {len(cfg.alphas)} alpha(s) × {len(cfg.interventions)} intervention(s) "
            f"over splits, baselines shared); {result.skipped} done, {result.n_completions_pending} completion(s) to generate -> {result.run_dir}"
        )
        if cfg.expected_time:  # the config's own words, about its own sizes: not this capped plan's
            log(f"expected time at the config's own size: {cfg.expected_time}" if max_prompts is not None else f"expected time: {cfg.expected_time}")
        return
    summary = result.summary
    for cell, msg in result.failed:
        warn(f"cell failed: {cell.label()}: {msg}")
    log(f"[green]done[/green]: {len(result.computed)} cell(s) computed, {result.skipped} skipped; summary in {result.summary_path}")
    if summary is not None and not summary.empty:
        _print_summary(summary, cfg.metrics, cfg.refusal_metric, cfg.statistics.level)
    for p in result.plots:
        log(f"plot: {p}")
    if result.best is not None:
        from saetool.steer.best import BEST_JSON, describe_best

        log(describe_best(result.best) + f" -> {result.run_dir / BEST_JSON}")
    if as_json and summary is not None:
        rows = summary.to_dict(orient="records")
        from saetool.artifacts.jsonable import finite

        typer.echo(json.dumps(finite(rows), default=str, allow_nan=False))


def _print_summary(summary, metrics, decider: str = "refusal", level: float = 0.05) -> None:
    from rich.table import Table

    if is_quiet():
        return

    def f(v, fmt="{:.2f}"):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    shown = [m for m in metrics if f"{m}_rate" in summary or f"{m}_mean" in summary]
    tested = [m for m in dict.fromkeys(("refusal", decider)) if f"{m}_p_adj" in summary]  # refusal, and the metric best.json decides by
    title = "rates and means with 95% CIs" + ("; refusal p vs alpha 0 (corrected, * significant)" if "refusal" in tested else "")
    if decider in tested and decider != "refusal":
        title += f"; {decider} p (corrected, * below {level:g}): what best.json decides by"
    table = Table(title=title, title_justify="left")
    for col in ("split", "layer", "intervention", "alpha", "n", *shown, *(f"{m} p adj" for m in tested)):
        table.add_column(col, justify="left" if col in ("split", "intervention") else "right", no_wrap=col == "split")  # harm_train and harm_test must stay apart
    for _, r in summary.iterrows():
        cells = []
        for m in shown:
            col = f"{m}_rate" if f"{m}_rate" in summary else f"{m}_mean"
            if r["status"] != "ok":
                cells.append(str(r["status"]))
            elif f"{m}_ci_low" in summary and f(r[f"{m}_ci_low"]) != "-":
                cells.append(f"{f(r[col])} [{f(r[f'{m}_ci_low'])}, {f(r[f'{m}_ci_high'])}]")
            else:
                cells.append(f(r[col]))
        for m in tested:
            p_adj = r.get(f"{m}_p_adj")
            cells.append(f(p_adj, "{:.3g}") + (" *" if p_adj is not None and p_adj < level else ""))
        table.add_row(str(r["split"]), str(r["layer"]), str(r["intervention"]), f"{r['alpha']:g}", str(r["n"]), *cells)
    stderr().print(table)
