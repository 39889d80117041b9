"""``saetool plugins``: what is loaded and what each plugin registered."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from saetool.cli.options import JSON
from saetool.console import debug, is_quiet, stderr
from saetool.plugins import host

# Deferred imports: loaded by `saetool --help`; rich tables, the architecture options and the plugin scaffold load when
# the command runs.

app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def plugins(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List every loaded plugin (built-in and third-party) and what it registered.

    Example:

        SAETOOL_LOAD_PLUGINS=csv saetool plugins --json
    """
    if ctx.invoked_subcommand is not None:
        return

    h = host()
    regs = list(h.all_registrations())
    rows = []
    for name, info in h.plugins.items():
        registered: dict[str, list[str]] = {}
        for reg in regs:
            if reg.plugin == name:
                registered.setdefault(reg.category, []).append(reg.name)
        row = {"name": name, "builtin": info.builtin, "version": info.version, "error": info.error, "registered": registered}
        options = _architecture_options([reg for reg in regs if reg.plugin == name])
        if options:
            row["architecture_options"] = options
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

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
    options = Table(title="SAE architecture options (saetool train --arch NAME --arch-option KEY=VALUE)", title_justify="left")
    for column in ("architecture", "option", "type", "default", "description"):
        options.add_column(column)
    for row in rows:
        for arch, described in row.get("architecture_options", {}).items():
            for option in described:
                options.add_row(arch, option["name"], option["type"], repr(option["default"]), option["help"])
    if options.row_count:
        stderr().print(options)


def _architecture_options(regs: list) -> dict[str, list[dict]]:
    """``{architecture: [option, ...]}`` for the SAE architectures among ``regs`` that declare options."""
    from saetool.train.arch_options import describe

    out = {}
    for reg in regs:
        if reg.category == "sae_architectures":
            described = describe(getattr(reg.obj, "options_class", None))
            if described:
                out[reg.name] = described
    return out


@app.command("new")
def new(
    name: str = typer.Argument(..., help="Plugin name: lowercase letters and digits, words joined by '-' or '_' (e.g. my-corpus)."),
    directory: Path = typer.Option(Path("."), "--dir", "-d", help="Folder to create saetool-NAME/ in (created if missing)."),
) -> None:
    """Create a plugin package `saetool-NAME/` that works and passes its tests as it is.

    It has a `pyproject.toml` with the `saetool` entry point, a package
    `saetool_NAME/` whose `plugin.py` registers an example corpus source (NAME:
    one document per line of a text file), a README and tests. Edit `plugin.py`
    to add what your plugin provides (see docs/plugins.md). A NAME with '_'
    gives a folder with '-': `my_corpus` makes `saetool-my-corpus/`.

    Example:

        saetool plugins new my-corpus --dir ~/src && pip install -e ~/src/saetool-my-corpus
    """
    from saetool.cli.scaffold import scaffold_plugin

    made = scaffold_plugin(name, directory)
    for rel in made.files:
        debug(f"wrote {made.path / rel}")
    if is_quiet():
        return
    n = made.names
    for line in (
        f"[green]created[/green] {made.path} (plugin {n.name!r}: package {n.package}, corpus source {n.name!r})",
        "next steps:",
        f"  pip install -e {made.path}",
        f"  python -m pytest {made.path}",
        f"  saetool plugins    # lists {n.name}",
        f"  saetool extract --corpus {n.name}:notes.txt --layers 15 --num-tokens 4096 -o acts.h5",
    ):
        stderr().print(line, soft_wrap=True)  # commands stay on one line, to copy
