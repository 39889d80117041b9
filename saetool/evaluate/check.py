"""``saetool check``: a go/no-go verdict for building on an SAE (seed 000's
"SCALE UP" / "FIX ISSUES FIRST").

Two criteria profiles. ``default`` (below) judges the SAE as a model
component; ``seed000`` (:mod:`saetool.evaluate.criteria`) judges seed 000's
mini pipeline on the seed's own four criteria. The default stays the default:
cosine > 0.9 is a weak test of an SAE (residual activations share a large
mean direction, so a reconstruction can keep cosine 0.94 while explaining
little of the variance and hurting the model's loss), and the seed's other
criteria need inputs (transitions, a steering result) that only that workflow
has.

Rows: compatibility (d_in and hook against the model or activations; a
mismatch never gets here, it is a one-line error), explained variance,
CE loss recovered, L0 and dead fraction, each against a threshold, plus
informational rows (FVU, cosine similarity, dense fraction, KL).
The verdict is SCALE UP when every measured row passes; each failed row
comes with the usual fixes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from saetool.artifacts.jsonable import finite
from saetool.console import is_quiet, stderr
from saetool.errors import SaetoolError
from saetool.evaluate.api import Evaluation

SCALE_UP = "SCALE UP"
FIX_FIRST = "FIX ISSUES FIRST"

FIXES: dict[str, str] = {
    "explained_variance": "reconstruction is poor: train longer or on more tokens, raise d_sae or k/L0, check the activations come from the SAE's model and hook",
    "ce_loss_recovered": "the model degrades with the SAE spliced in: train on more tokens, raise d_sae or k/L0, fine-tune end-to-end (KL) at this hook, check the model and hook match the SAE",
    "l0_high": "too many active features per token: raise the sparsity coefficient (--l1-coeff) or lower k",
    "l0_low": "too few active features per token: lower the sparsity coefficient (--l1-coeff) or raise k",
    "dead_fraction": "many dead features: use AuxK (--aux-k) or resampling, train on more tokens, lower the learning rate; evaluate on more tokens (rare features look dead on small sets)",
}


@dataclass
class Thresholds:
    min_ev: float = 0.8
    min_ce_recovered: float = 0.8
    l0_min: float = 5.0
    l0_max: float = 200.0
    max_dead: float = 0.1

    def validate(self) -> None:
        if not self.l0_min <= self.l0_max:
            raise SaetoolError(f"--l0 minimum {self.l0_min:g} is above the maximum {self.l0_max:g}")
        if not 0 <= self.max_dead <= 1:
            raise SaetoolError(f"--max-dead must be a fraction in [0, 1] (got {self.max_dead})")


def parse_range(text: str, option: str = "--l0") -> tuple[float, float]:
    """``"5-200"`` -> ``(5.0, 200.0)``, with a one-line error."""
    parts = str(text).split("-")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise SaetoolError(f"{option} must be MIN-MAX, e.g. 5-200 (got {text!r})") from None
    return lo, hi


@dataclass
class CheckRow:
    check: str
    value: Any
    target: str
    passed: bool | None  # None: informational or not measured
    fix: str = ""
    reason: str = ""  # why it passed or failed, in words (the seed000 criteria)


@dataclass
class CheckReport:
    rows: list[CheckRow]
    verdict: str
    evaluation: Evaluation
    thresholds: Any = field(default_factory=Thresholds)
    criteria: str = "default"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == SCALE_UP else 1

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            d = asdict(r)
            if isinstance(d["value"], float) and math.isnan(d["value"]):
                d["value"] = None
            rows.append(d)
        out = {"verdict": self.verdict, "criteria": self.criteria, "checks": rows, "thresholds": asdict(self.thresholds), "evaluation": self.evaluation.to_dict()}
        if self.details:
            out["details"] = self.details
        return finite(out)  # strict JSON: an infinite lift (a feature never active at the base) is null


def measured(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def build_check(ev: Evaluation, th: Thresholds) -> CheckReport:
    """Rows and verdict from an evaluation (which already passed the compatibility checks)."""
    m = ev.metrics
    against = " + ".join(([Path(ev.activations).name] if ev.activations else []) + ([str(ev.model)] if ev.model else []))
    rows = [CheckRow("compatibility", f"d_in {ev.d_in}, {ev.hook}" + (f" -> {ev.hook_out}" if ev.hook_out != ev.hook else ""), f"matches {against}", True)]

    def thresholded(check: str, key: str, target: str, ok, fix: str) -> None:
        value = m.get(key)
        if not measured(value):
            rows.append(CheckRow(check, math.nan, target, None, "not measured: needs the model" if not ev.model else "not measured"))
            return
        passed = bool(ok(value))
        rows.append(CheckRow(check, value, target, passed, "" if passed else fix))

    thresholded("explained variance", "explained_variance", f">= {th.min_ev:g}", lambda v: v >= th.min_ev, FIXES["explained_variance"])
    thresholded("CE loss recovered", "ce_loss_recovered", f">= {th.min_ce_recovered:g}", lambda v: v >= th.min_ce_recovered, FIXES["ce_loss_recovered"])
    l0 = m.get("l0")
    thresholded("L0 (active features/token)", "l0", f"{th.l0_min:g}-{th.l0_max:g}", lambda v: th.l0_min <= v <= th.l0_max,
                FIXES["l0_high"] if measured(l0) and l0 > th.l0_max else FIXES["l0_low"])
    thresholded("dead features (fraction)", "dead_fraction", f"<= {th.max_dead:g}", lambda v: v <= th.max_dead, FIXES["dead_fraction"])
    for key, label in (("fvu", "FVU (1 - explained variance)"), ("cosine_similarity", "cosine similarity"), ("dense_fraction", "dense features (fraction)"), ("kl_div_sae", "KL to clean model (nats)")):
        if measured(m.get(key)):
            rows.append(CheckRow(label, m[key], "", None))
    failed = any(r.passed is False for r in rows)
    return CheckReport(rows=rows, verdict=FIX_FIRST if failed else SCALE_UP, evaluation=ev, thresholds=th)


def print_check(report: CheckReport) -> None:
    """The table, verdict and fixes on stderr (not under ``--quiet``)."""
    if is_quiet():
        return
    ev = report.evaluation
    on = f"{ev.n_rows} activation rows" + (f", {ev.n_positions} next-token predictions scored through {ev.model}" if ev.n_positions else "")
    table = Table(title=f"SAE check ({report.criteria} criteria): {ev.sae} ({on})", title_justify="left")
    reasons = any(r.reason for r in report.rows)
    for col, just in (("check", "left"), ("value", "right"), ("target", "right"), ("result", "left"), *((("reason", "left"),) if reasons else ())):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for r in report.rows:
        if isinstance(r.value, float):
            value = "n/a" if math.isnan(r.value) else f"{r.value:.4g}"
        else:
            value = str(r.value)
        if r.passed is None:
            result = f"[dim]skipped ({r.fix})[/dim]" if r.target else ""
        else:
            result = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        table.add_row(r.check, value, r.target or "-", result, *((escape(r.reason),) if reasons else ()))
    con = stderr()
    con.print(table)
    colour = "green" if report.verdict == SCALE_UP else "red"
    con.print(f"[bold {colour}]{report.verdict}[/bold {colour}]")
    fixes = [r for r in report.rows if r.passed is False and r.fix]
    if fixes:
        con.print("Recommended fixes:")
        for r in fixes:
            con.print(f"  - {r.check}: {r.fix}", soft_wrap=True)
