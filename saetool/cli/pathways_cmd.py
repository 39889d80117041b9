"""``saetool pathways``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.cli.options import BACKEND, DEVICE, DTYPE, OUTPUT, OVERWRITE, TRUST_REMOTE_CODE
from saetool.console import is_quiet, log, stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the pathways API (torch), SAE sets, artifact helpers and rich tables
# load when the command runs.


def pathways(
    sae: List[Path] = typer.Option(..., "--sae", help="SAE (artifact, SAE folder or pretrained RELEASE/SAE_ID), once per layer; all from one model; an sae-set (saetool train --hooks) gives all of its SAEs."),
    target: Optional[List[str]] = typer.Option(None, "--target", "-t", help="Target feature L{layer}-{id} (repeatable)."),
    selection: Optional[Path] = typer.Option(None, "--selection", help="A `selection` artifact (saetool select): its features are the targets."),
    texts: Optional[Path] = typer.Option(None, "--texts", help="Texts: .txt (one per line), .jsonl or .json."),
    corpus: Optional[str] = typer.Option(None, "--corpus", "-c", help="Or corpus windows: bbc-news[:CATEGORY], kjv, a path, ..."),
    num_texts: Optional[int] = typer.Option(None, "--num-texts", "-n", help="At most this many texts (corpus windows: default 32)."),
    context_size: int = typer.Option(64, "--context-size", help="Tokens per text (BOS included); longer texts are cut."),
    top_k: int = typer.Option(10, "--top-k", "-k", help="Sources kept per target, by |attribution|."),
    threshold: float = typer.Option(0.0, "--threshold", help="Keep only sources with |attribution| above this."),
    factor: float = typer.Option(0.0, "--factor", help="Replay patch: scale the source feature by this (0 ablates it)."),
    replay: bool = typer.Option(True, "--replay/--no-replay", help="Validate each edge by patching the source and rerunning."),
    control_edges: Optional[int] = typer.Option(None, "--control-edges", help="Per target, also replay this many other upstream sources matched in activity to the edges (each drawn from the 5 unused sources nearest an edge's summed activation), the baseline the edges' changes are tested against (default: the larger of --top-k and 10; 0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the control sources' draw (per target)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Texts per forward pass."),
    export: List[Path] = typer.Option([], "--export", "-e", help="Also write the edges, targets and correlation as JSON (.json) or the edges as CSV (.csv) (repeatable)."),
    show: int = typer.Option(20, "--show", help="Edge rows in the table on stderr (0: none)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model (default: the one the SAEs record)."),
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Find the upstream SAE features that drive target features, and check them by patching (a `pathways` artifact).

    With every SAE spliced into the forward pass (reconstruction plus a fixed
    error term), each upstream feature is scored by activation x gradient of the
    target's activation (summed over tokens and texts); the top --top-k per
    target are then replayed: the source is scaled by --factor (0 ablates) and
    the target's actual change is measured. Predicted and actual changes and
    their Pearson/Spearman correlation are reported, and per target the
    edges' mean |change| against that of other sources as active as they are
    (--control-edges), with a one-sided Mann-Whitney test, Holm-adjusted over
    the targets.

    Example:

        saetool pathways --sae sae-L3.h5 --sae sae-L9.h5 --target L9-120 --corpus bbc-news -n 64 -o pathways.h5 --export pathways.json
    """
    from saetool.analysis.pathways import KIND, PathwaysConfig, run_pathways, selection_names
    from saetool.artifacts.manifest import emit_manifest
    from saetool.sae.sets import expand_sae_paths

    names = list(target or [])
    parents: list[Path] = []
    selected: list[str] = []
    if selection is not None:
        selected = selection_names(selection)
        names += selected
        parents.append(selection)
    if not names:
        raise SaetoolError("no target features given", hint="pass --target L{layer}-{id} (repeatable) or --selection FILE")
    config = PathwaysConfig(top_k=top_k, threshold=threshold, factor=factor, batch_size=batch_size, context_size=context_size, replay=replay,
                             control_edges=control_edges, seed=seed)
    result = run_pathways(
        config, [str(p) for p in expand_sae_paths(sae)], names, texts_file=texts, corpus=corpus, num_texts=num_texts, output=output,
        overwrite=overwrite, export=export, model_name=model, backend=backend, device=device, dtype=dtype, parents=parents,
        selected=selected,
    )
    show_table(result, show)
    log(f"[green]wrote[/green] {result.path} ({len(result.edges)} edges for {len(result.targets)} target(s))")
    for p in result.exports:
        log(f"[green]wrote[/green] {p}")
    corr = result.correlation
    emit_manifest(result.path, KIND, n_edges=len(result.edges), targets=list(result.targets["name"]), skipped_targets=len(result.skipped),
                  pearson=_num(corr.get("pearson")), spearman=_num(corr.get("spearman")))


def _num(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def show_table(result: Any, rows: int) -> None:
    from rich.table import Table

    if is_quiet():
        return
    if rows > 0:
        more = len(result.edges) - rows
        title = "pathways (change of the target's summed activation)" + (f"; the first {rows} of {len(result.edges)} edges (--show)" if more > 0 else "")
        table = Table(title=title, title_justify="left")
        for col in ("target", "rank", "source", "attribution", "predicted", "actual", "sign"):
            table.add_column(col, justify="left" if col in ("target", "source") else "right")
        for rec in result.edges.head(rows).to_dict(orient="records"):
            sign = {1: "agrees", 0: "[red]differs[/red]"}.get(int(rec.get("sign_agrees", -1)), "-")
            table.add_row(rec["target"], str(rec["rank"]), rec["source"], f"{rec['attribution']:.4g}", f"{rec['predicted']:.4g}", f"{rec['actual']:.4g}", sign)
        stderr().print(table)
    if "pearson" in result.targets and result.correlation.get("n_edges"):
        per = Table(title="per target, over its own edges; control: other sources matched in activity (--control-edges); p Holm-adjusted over targets", title_justify="left")
        for col in ("target", "edges", "Pearson r", "signs agree", "mean |actual|", "control |actual|", "p, edges > control"):
            per.add_column(col, justify="left" if col == "target" else "right")
        for rec in result.targets.to_dict(orient="records"):
            r, agree = _num(rec.get("pearson")), _num(rec.get("sign_agreement"))
            top, ctl, p = _num(rec.get("mean_abs_actual")), _num(rec.get("control_mean_abs_actual")), _num(rec.get("control_p_adjusted"))
            per.add_row(rec["name"], str(rec["n_edges"]), "-" if r is None else f"{r:.3f}", "-" if agree is None else f"{agree:.0%}",
                        "-" if top is None else f"{top:.4g}", "-" if ctl is None else f"{ctl:.4g} (n {rec.get('n_control', 0)})", "-" if p is None else f"{p:.3g}")
        stderr().print(per)
    corr = result.correlation
    if corr.get("n_edges"):
        pearson, spearman, agree = _num(corr.get("pearson")), _num(corr.get("spearman")), _num(corr.get("sign_agreement"))
        stderr().print(
            f"predicted vs actual over {corr['n_edges']} edges: Pearson r = {'-' if pearson is None else f'{pearson:.3f}'}, "
            f"Spearman rho = {'-' if spearman is None else f'{spearman:.3f}'}; signs agree on {'-' if agree is None else f'{agree:.0%}'} "
            "(pooled over targets of different scales: read the per-target rows)"
        )
