"""``saetool select``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from saetool.cli.options import DEVICE, OUTPUT, OVERWRITE, TRUST_REMOTE_CODE
from saetool.console import is_quiet, log, stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the select API, the model and SAE loaders (torch), artifact helpers and
# rich tables load when the command runs.


def select(
    set_a: Optional[Path] = typer.Argument(None, metavar="[A]", help="Activations artifact of set a (omit with --completions)."),
    set_b: Optional[Path] = typer.Argument(None, metavar="[B]", help="Activations artifact of set b (omit with --completions)."),
    sae: List[Path] = typer.Option(..., "--sae", "-s", help="SAE (artifact, SAE folder or pretrained RELEASE/SAE_ID), one per layer; repeat for several layers; an sae-set (saetool train --hooks) gives all of its SAEs."),
    top: int = typer.Option(50, "--top", "-k", help="Features to keep per layer, by |Cohen's d| (by the paired |d| when the sets pair)."),
    per: str = typer.Option("token", "--per", help="Sample unit for Cohen's d: token (every token), sequence (each sequence's mean activation; warns when the sets' lengths differ) or sequence-max (each sequence's largest activation: not diluted by length, though it grows with it; both warn when the sets' lengths differ)."),
    pairing: str = typer.Option("auto", "--pairing", help="With --per sequence or sequence-max: rank by the paired d of the per-pair differences (paired: line i of A with line i of B; two --completions conditions pair by prompt), or not (unpaired); auto pairs artifacts of as many sequences (extract --per-line) of which at least half of the pairs share their first 3 tokens, and two completions conditions."),
    permutations: int = typer.Option(200, "--permutations", help="With --per sequence or sequence-max: shuffle the set labels (paired: flip the pairs' signs) this many times for the |d| the best feature reaches by chance (0: skip)."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Only rank these features: comma-separated L{layer}-{id} names."),
    completions: Optional[Path] = typer.Option(None, "--completions", "-c", help="A steer `completions` artifact: compare two of its conditions, re-run through the model."),
    cond_a: str = typer.Option("baseline", "--a", help="With --completions: the condition of set a."),
    cond_b: str = typer.Option("steered", "--b", help="With --completions: the condition of set b."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="With --completions: the model to re-run (default: the one the completions were made with)."),
    backend: str = typer.Option("transformers", "--backend", help="With --completions: model backend."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="With --completions: texts per forward pass."),
    export: List[Path] = typer.Option([], "--export", "-e", help="Also write the table to this .csv or .json file (repeatable)."),
    show: int = typer.Option(10, "--show", help="Rows per layer in the stderr table (0: none)."),
    device: str = DEVICE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Rank SAE features by Cohen's d between two sets of activations (a `selection` artifact).

    d = (mean_a - mean_b) / pooled SD, per feature, over tokens (default) or
    per-sequence means; the top N per layer by |d|, named L{layer}-{id}.
    Per sequence, sets that pair line by line are ranked by the paired d
    (mean / SD of the per-pair differences) instead.

    Example:

        saetool extract --corpus files:harm.txt --layers 3 -o a.h5
        saetool extract --corpus files:benign.txt --layers 3 -o b.h5
        saetool select a.h5 b.h5 --sae sae.h5 --top 20 --export top.csv -o selection.h5
    """
    from saetool.analysis.select import KIND, ActivationsArtifactSet, CompletionsSet, SelectConfig, select_features
    from saetool.artifacts.manifest import emit_manifest
    from saetool.sae.sets import expand_sae_paths

    sae = expand_sae_paths(sae)

    names = [f.strip() for f in features.split(",") if f.strip()] if features else None
    if completions is not None:
        if set_a is not None or set_b is not None:
            raise SaetoolError("give either two activations artifacts A B or --completions, not both")
        labels = (cond_a, cond_b)
    else:
        if set_a is None or set_b is None:
            raise SaetoolError("select needs two activations artifacts A B", hint="or --completions FILE --a baseline --b steered")
        labels = ("a", "b")
    config = SelectConfig(top=top, unit=per, features=names, device=device, labels=labels, permutations=permutations, pairing=pairing)
    config.validate()
    if completions is not None:
        from saetool.analysis.select import load_layer_saes, restrict_features
        from saetool.artifacts.store import check_output_path
        from saetool.models.registry import load_model
        from saetool.steer.completions import read_completions

        check_output_path(output or "selection.h5", overwrite=overwrite)
        restrict_features(names, load_layer_saes(sae, device))  # bad features/SAEs fail before the model loads
        comp = read_completions(completions)
        name = model or comp.settings.get("model") or comp.provenance.get("model") or "smollm2-135m"
        hooked = load_model(name, backend=backend, device=device)
        a = CompletionsSet(completions, cond_a, cond_a, model=hooked, batch_size=batch_size)
        b = CompletionsSet(completions, cond_b, cond_b, model=hooked, batch_size=batch_size)
    else:
        a = ActivationsArtifactSet(set_a, "a")
        b = ActivationsArtifactSet(set_b, "b")
    result = select_features(a, b, sae, output, config=config, exports=export, overwrite=overwrite, progress=True)
    show_selection(result.table, show, labels)
    layers = sorted(set(int(x) for x in result.table["layer"]))
    log(f"[green]wrote[/green] {result.path} ({len(result.table)} features, layers {', '.join(map(str, layers)) or 'none'}, per {per})")
    for e in result.exports:
        log(f"[green]wrote[/green] {e}")
    emit_manifest(result.path, KIND, n_features=len(result.table), layers=layers, unit=per, exports=[str(e.resolve()) for e in result.exports])


def show_selection(table, rows: int, labels: tuple[str, str]) -> None:
    """The top rows per layer on stderr."""
    from rich.table import Table

    if is_quiet() or rows <= 0 or len(table) == 0:
        return
    paired = "d_paired" in table
    out = Table(title=f"selected features (top {'paired ' if paired else ''}|d| per layer)", title_justify="left")
    for col in ("feature", *(("paired d",) if paired else ()), "d", f"mean {labels[0]}", f"mean {labels[1]}", f"n {labels[0]}", f"n {labels[1]}"):
        out.add_column(col, justify="left" if col == "feature" else "right")
    for _, group in table.groupby("layer", sort=True):
        for _, r in group.head(rows).iterrows():
            out.add_row(r["name"], *((f"{r['d_paired']:+.3f}",) if paired else ()), f"{r['d']:+.3f}", f"{r['mean_a']:.4g}", f"{r['mean_b']:.4g}",
                        str(r["n_a"]), str(r["n_b"]))
    stderr().print(out)
