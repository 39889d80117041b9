"""The seeds' validation checklist for a trained SAE: reconstruction loss, active
features per token and dead fraction, each against a target, pass or fail."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from saetool.train.config import Targets


@dataclass
class CheckItem:
    name: str
    value: float
    target: str
    passed: bool | None  # None: informational, no target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_checklist(metrics: dict[str, float], targets: Targets) -> list[CheckItem]:
    """``metrics``: ``mse`` (on normalised activations), ``l0``, ``dead_fraction``,
    and optionally ``explained_variance`` (shown without a target)."""
    mse, l0, dead = metrics["mse"], metrics["l0"], metrics["dead_fraction"]
    items = [
        CheckItem("reconstruction loss (MSE, normalised)", mse, f"< {targets.mse:g}", bool(mse < targets.mse)),
        CheckItem("active features per token (L0)", l0, f"{targets.l0_min:g}-{targets.l0_max:g}", bool(targets.l0_min <= l0 <= targets.l0_max)),
        CheckItem("dead features (fraction)", dead, f"< {targets.dead:g}", bool(dead < targets.dead)),
    ]
    if "explained_variance" in metrics:
        items.append(CheckItem("explained variance", metrics["explained_variance"], "", None))
    return items


def print_checklist(items: list[CheckItem], *, title: str = "validation checklist") -> None:
    """The checklist as a table on stderr (not under ``--quiet``)."""
    from rich.table import Table

    from saetool.console import is_quiet, stderr

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
