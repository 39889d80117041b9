"""``saetool audit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.console import is_quiet, stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the audit API, artifact helpers and rich tables load when the command
# runs.


def audit(
    files: List[Path] = typer.Argument(..., metavar="FILE...", help="Artifacts (and SAE folders) to check together."),
    strict: bool = typer.Option(False, "--strict", help="Fail a join when any key is left unmatched (default: only when nothing joins)."),
    expect_conditions: Optional[str] = typer.Option(None, "--conditions", help="Comma-separated conditions every completions artifact must have."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --output if it exists."),
) -> None:
    """Check artifacts before an analysis: schema, counts per layer and condition, joinable keys.

    Prints a JSON report on stdout (a table on stderr); exits 1 when a check
    fails, 0 when all pass. Unreadable files are failed checks, not crashes.

    Example:

        saetool audit selection.h5 sae.h5 steer-*.h5 --conditions baseline,steered -o audit.json
    """
    from saetool.analysis.audit import audit as run_audit

    if output is not None:
        from saetool.artifacts.store import check_output_path

        if output.suffix.lower() != ".json":
            raise SaetoolError(f"--output {output} should be a .json file")
        check_output_path(output, overwrite=overwrite, inputs=files)
    conds = [c.strip() for c in expect_conditions.split(",") if c.strip()] if expect_conditions else []
    report = run_audit(files, strict=strict, expect_conditions=conds)
    text = json.dumps(report, indent=2, default=str)
    if output is not None:
        from saetool.artifacts.files import write_atomic

        write_atomic(output, text + "\n")
    typer.echo(text)
    show_report(report)
    if not report["ok"]:
        raise typer.Exit(1)


def show_report(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    if is_quiet():
        return
    table = Table(title="audit: files", title_justify="left")
    for col in ("file", "kind", "ok", "counts", "failed checks"):
        table.add_column(col, overflow="fold")
    for f in report["files"]:
        failed = "; ".join(f"{c['check']}: {c['detail']}" for c in f["checks"] if not c["ok"])
        table.add_row(escape(Path(f["path"]).name), f["kind"] or "?", _mark(f["ok"]), escape(_brief(f["counts"])), escape(failed))
    stderr().print(table)
    if report["checks"] or report["joins"]:
        t2 = Table(title="audit: across files", title_justify="left")
        for col in ("check / join", "ok", "detail"):
            t2.add_column(col, overflow="fold")
        for c in report["checks"]:
            t2.add_row(escape(c["check"]), _mark(c["ok"]), escape(c["detail"]))
        for j in report["joins"]:
            detail = f"{j['joinable']} of {j['n_left']} joinable ({j['n_right']} on the right)"
            if j["unmatched"]:
                detail += "; unmatched e.g. " + ", ".join(j["unmatched"][:5])
            if j["detail"]:
                detail += "; " + j["detail"]
            t2.add_row(escape(f"{j['name']} ({Path(j['left']).name})"), _mark(j["ok"]), escape(detail))
        stderr().print(t2)
    n = report["n_failed_checks"]
    stderr().print("[green]all checks passed[/green]" if n == 0 else f"[red]{n} check(s) failed[/red]")


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]FAIL[/red]"


def _brief(counts: dict[str, Any]) -> str:
    parts = []
    for key, value in counts.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}:{v['non_empty'] if isinstance(v, dict) and 'non_empty' in v else v}" for k, v in value.items())
        parts.append(f"{key}={value}")
    return "; ".join(parts)
