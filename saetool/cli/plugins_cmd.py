"""``saetool plugins``: what is loaded and what each plugin registered."""

from __future__ import annotations

import json

import typer

from saetool.cli.options import JSON

app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def plugins(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List every loaded plugin (built-in and third-party) and what it registered.

    Example:

        SAETOOL_LOAD_PLUGINS=csv saetool plugins --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from saetool.plugins import host

    h = host()
    regs = list(h.all_registrations())
    rows = []
    for name, info in h.plugins.items():
        registered: dict[str, list[str]] = {}
        for reg in regs:
            if reg.plugin == name:
                registered.setdefault(reg.category, []).append(reg.name)
        rows.append({"name": name, "builtin": info.builtin, "version": info.version, "error": info.error, "registered": registered})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from saetool.console import stderr

    table = Table(title="plugins", title_justify="left")
    table.add_column("plugin")
    table.add_column("kind")
    table.add_column("registered")
    for row in rows:
        what = "; ".join(f"{cat.replace('_', ' ')}: {', '.join(names)}" for cat, names in row["registered"].items())
        if row["error"]:
            what = (what + "; " if what else "") + f"[red]error: {row['error']}[/red]"
        kind = "built-in" if row["builtin"] else f"entry point {row['version'] or ''}".strip()
        table.add_row(row["name"], kind, what or "-")
    stderr().print(table)
