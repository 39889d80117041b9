"""``saetool sae list|info``: the pretrained SAEs saetool can load by name (RELEASE/SAE_ID)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from saetool.cli.options import JSON
from saetool.console import stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the pretrained-SAE registry (torch) and rich tables load when the
# command runs.

app = typer.Typer(no_args_is_help=True, help="""Pretrained SAEs by name: the registry sae-lens ships (pretrained_saes.yaml).

Any command that takes an SAE also takes RELEASE/SAE_ID; its files come from the Hugging
Face cache (offline works) or the hub.

Example:

    saetool sae list --model gpt2-small
    saetool check gpt2-small-res-jb/blocks.8.hook_resid_pre --model gpt2
""")


@app.command("list")
def list_(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Only releases for this model (e.g. gpt2-small, gemma-2-2b, meta-llama/Llama-3.1-8B)."),
    release: Optional[str] = typer.Option(None, "--release", "-r", help="List this release's SAEs (id, hook, width, L0)."),
    as_json: bool = JSON,
) -> None:
    """Releases (model, repo, number of SAEs, format), or one release's SAEs.

    Example:

        saetool sae list --model gemma-2-2b
        saetool sae list --release gpt2-small-res-jb --json
    """
    from saetool.sae import registry

    if release is not None:
        rows = [e.to_dict() | {"cached": _cached(e)} for e in registry.release_saes(release)]
        cols = ("sae_id", "hook", "width", "l0", "cached")
        title = f"{release}: {len(rows)} SAEs"
    else:
        rows = [
            {"release": r.name, "model": r.model, "repo_id": r.repo_id, "saes": r.n_saes, "format": r.format or f"unsupported ({r.conversion_func})"}
            for r in registry.releases(model)
        ]
        cols = ("release", "model", "saes", "format", "repo_id")
        title = f"{len(rows)} pretrained SAE releases" + (f" for {model}" if model else "") + " (sae-lens registry)"
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _table(title, cols, rows)


@app.command()
def info(
    name: str = typer.Argument(..., help="RELEASE/SAE_ID, e.g. gpt2-small-res-jb/blocks.8.hook_resid_pre."),
    as_json: bool = JSON,
) -> None:
    """What the registry knows about one SAE (model, hook, width, L0, format), and whether it is cached.

    Example:

        saetool sae info gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71
    """
    from saetool.sae import registry

    entry = registry.lookup(name)
    row = entry.to_dict() | {"cached": _cached(entry), "fetch": registry.fetch_command(entry)}
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return

    for key, value in row.items():
        if value is not None:
            stderr().print(f"[bold]{key:>15}[/bold]  {value}", highlight=False)


def _cached(entry) -> bool:
    from saetool.sae.registry import cached_file

    try:
        required, _ = entry.files()
    except SaetoolError:  # a format saetool does not read
        return False
    return all(cached_file(entry, f) is not None for f in required)


def _table(title: str, cols: tuple[str, ...], rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in cols:
        table.add_column(col, no_wrap=col in ("release", "sae_id"), overflow="fold")
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r[c]) for c in cols))
    stderr().print(table)
