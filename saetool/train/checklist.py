"""The training checklist for a trained SAE: reconstruction, active features per
token and dead features, each against a target (pass/fail) or shown for
information. Figures come from held-out rows and carry ``saetool evaluate``'s
metric names (``key``), so the two agree for the same SAE and rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from saetool.console import is_quiet, stderr
from saetool.train.config import Targets


@dataclass
class CheckItem:
    name: str
    value: float
    target: str
    passed: bool | None  # None: informational, no target
    key: str = ""  # the metric's name in ``saetool evaluate`` / the training record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_checklist(metrics: dict[str, float], targets: Targets, *, d_sae: int | None = None, fixed_k: int | None = None) -> list[CheckItem]:
    """``metrics``: ``fvu``, ``explained_variance``, ``l0``, ``dead_fraction`` (never
    active on the evaluated rows) as ``saetool evaluate`` computes them,
    ``dead_fraction_train`` (no firing over the trainer's dead window), ``scaled_mse``
    (per-element MSE on the trainer's scaled inputs) and ``rows`` (evaluated rows).
    ``fixed_k``: an SAE whose inference keeps exactly k features (TopK): its L0 row says that
    L0 is the k it was given, not something training reached. ``d_sae``: with it, the
    never-active row says the least it can be when the rows hold fewer activations than features."""
    items: list[CheckItem] = []

    def add(key: str, name: str, target: str = "", passed: bool | None = None) -> None:
        if key in metrics:
            items.append(CheckItem(name, float(metrics[key]), target, passed, key))

    fvu, l0, dead = metrics["fvu"], metrics["l0"], metrics["dead_fraction_train"]
    if targets.fvu is not None:
        add("fvu", "FVU (1 - explained variance)", f"< {targets.fvu:g}", bool(fvu < targets.fvu))
    else:
        add("fvu", "FVU (1 - explained variance)")
    add("explained_variance", "explained variance")
    if targets.scaled_mse is not None:
        add("scaled_mse", "MSE on scaled inputs (reconstruction loss)", f"< {targets.scaled_mse:g}", bool(metrics["scaled_mse"] < targets.scaled_mse))
    by_k = f" (= k {fixed_k}: set, not learned)" if fixed_k is not None else ""
    add("l0", "active features per token (L0)", f"{targets.l0_min:g}-{targets.l0_max:g}{by_k}", bool(targets.l0_min <= l0 <= targets.l0_max))
    add("dead_fraction_train", "dead in training (fraction)", f"< {targets.dead:g}", bool(dead < targets.dead))
    rows = metrics.get("rows")
    floor = 1 - rows * l0 / d_sae if d_sae and rows and rows * l0 < d_sae else None
    add("dead_fraction", "never active on these rows (fraction)" + (f"; at least {floor:.2f} with {rows:.0f} rows" if floor is not None else ""))
    return items


def print_checklist(items: list[CheckItem], *, title: str = "validation checklist") -> None:
    """The checklist as a table on stderr (not under ``--quiet``)."""
    if is_quiet():
        return

    table = Table(title=title, title_justify="left")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("result")
    for item in items:
        value = f"{item.value:.4g}" if abs(item.value) < 1e4 else f"{item.value:,.0f}"
        result = "" if item.passed is None else ("[green]pass[/green]" if item.passed else "[red]fail[/red]")
        table.add_row(item.name, value, item.target or "-", result)
    stderr().print(table)
