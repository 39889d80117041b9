"""Showing bench results: the comparison table on stderr, CSV (one row per SAE x
metric) and the JSON document ``--json`` prints."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from saetool.artifacts.files import write_atomic
from saetool.bench.store import BenchResults
from saetool.console import is_quiet, stderr

ARROWS = {"higher": "↑", "lower": "↓", "neither": "·"}
CSV_COLUMNS = ("sae", "random_floor", "eval", "metric", "value", "better", "chance")


def metric_names(results: BenchResults, ev: str) -> list[str]:
    """The eval's metrics in card order, then any others its results hold."""
    names = [c["name"] for c in results.cards.get(ev, [])]
    seen = set(names)
    extra = [m for (s, e), r in results.results.items() if e == ev for m in r.metrics if m not in seen]
    present = {m for (s, e), r in results.results.items() if e == ev for m in r.metrics}
    return [n for n in names if n in present] + list(dict.fromkeys(extra))


def _card(results: BenchResults, ev: str, metric: str) -> dict[str, Any]:
    return next((c for c in results.cards.get(ev, []) if c["name"] == metric), {"better": "neither", "chance": None})


def rows(results: BenchResults) -> list[dict[str, Any]]:
    """One row per SAE x eval x metric (the CSV)."""
    random = {s["name"]: s.get("random_of") is not None for s in results.saes}
    out = []
    for ev in results.evals:
        for metric in metric_names(results, ev):
            card = _card(results, ev, metric)
            for name in results.names:
                if (name, ev) in results.results:
                    value = results.value(name, ev, metric)
                    out.append({"sae": name, "random_floor": random[name], "eval": ev, "metric": metric, "value": value,
                                "better": card.get("better", "neither"), "chance": card.get("chance")})
    return out


def to_csv(results: BenchResults) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(results):
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v) for k, v in row.items()})
    return buf.getvalue()


def write_csv(results: BenchResults, path: str | Path) -> Path:
    p = Path(path)
    write_atomic(p, to_csv(results))
    return p


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_tables(results: BenchResults) -> None:
    """One table per eval on stderr: metrics down, SAEs across (random floors last),
    the better direction and chance level beside each metric, notes under it."""
    if is_quiet():
        return
    console = stderr()
    for ev in results.evals:
        names = [n for n in results.names if (n, ev) in results.results]
        if not names:
            continue
        table = Table(title=f"bench {ev}", title_justify="left")
        table.add_column("metric")
        table.add_column("", justify="center")
        for n in names:
            table.add_column(n, justify="right")
        table.add_column("chance", justify="right")
        for metric in metric_names(results, ev):
            card = _card(results, ev, metric)
            table.add_row(metric, ARROWS.get(card.get("better", "neither"), "·"), *[fmt(results.value(n, ev, metric)) for n in names], fmt(card.get("chance")))
        console.print(table)
        notes = dict.fromkeys(f"{n}: {note}" for n in names for note in results.results[(n, ev)].notes)
        for note in notes:
            console.print(f"  [dim]{note}[/dim]")
    console.print("[dim]↑ higher is better, ↓ lower is better, · neither; 'random' columns are random SAEs of the same shape (the floor). Metric cards: docs/bench.md[/dim]")
