"""``saetool inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from saetool.cli.options import JSON
from saetool.console import stderr

# Deferred imports: loaded by `saetool --help`; the artifact store, h5py and rich tables load when the command runs.


def inspect(
    artifact: Optional[Path] = typer.Argument(None, help="Artifact file (omit or '-' to read a manifest from stdin)."),
    as_json: bool = JSON,
) -> None:
    """Show an artifact's kind, datasets (shapes, dtypes) and provenance.

    Example:

        saetool extract -n 1024 | saetool inspect
    """
    from saetool.artifacts.manifest import emit_manifest, resolve_input
    from saetool.artifacts.store import open_artifact

    path = resolve_input(artifact)
    with open_artifact(path) as art:
        info = describe(art)
    if as_json:
        typer.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    _print(info)
    emit_manifest(path, info["kind"])  # pass the manifest on when piped


def describe(art: Any) -> dict[str, Any]:
    import h5py

    datasets: list[dict[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            datasets.append(
                {
                    "name": name,
                    "shape": list(obj.shape),
                    "dtype": str(obj.attrs.get("saetool_dtype", obj.dtype)),
                }
            )

    art.file.visititems(visit)
    from saetool.artifacts.store import attr_value

    attrs = {k: attr_value(v) for k, v in art.attrs.items() if k not in ("provenance",)}
    return {
        "path": str(art.path),
        "kind": art.kind,
        "schema_version": art.schema_version,
        "attrs": attrs,
        "datasets": datasets,
        "provenance": art.provenance,
    }


def _print(info: dict[str, Any]) -> None:
    from rich.table import Table

    con = stderr()
    con.print(f"[bold]{info['path']}[/bold]  kind=[cyan]{info['kind']}[/cyan]  schema_version={info['schema_version']}")
    table = Table(title="datasets", title_justify="left")
    table.add_column("name")
    table.add_column("shape", justify="right")
    table.add_column("dtype")
    for ds in info["datasets"]:
        table.add_row(ds["name"], " x ".join(str(s) for s in ds["shape"]), ds["dtype"])
    con.print(table)
    attrs = Table(title="attributes", title_justify="left", show_header=False)
    for key, value in sorted(info["attrs"].items()):
        attrs.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    con.print(attrs)
    prov = Table(title="provenance", title_justify="left", show_header=False)
    for key, value in sorted(info["provenance"].items()):
        prov.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    con.print(prov)
