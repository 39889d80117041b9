"""Whether an SAE met its training checklist's reconstruction target: the rule that `track`
and `interpret` share (a dictionary that reconstructs poorly has mixed or split features, so
what is read off it is mostly noise)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from saetool.sae.io import is_sae_artifact, read_sae_artifact

RECONSTRUCTION_CHECKS = ("fvu", "scaled_mse")  # training-checklist rows whose failure makes a dictionary's features noise (L0 and dead targets are choices)


def failed_reconstruction(path: str | Path) -> list[dict[str, Any]]:
    """The training checklist's reconstruction rows (FVU, or MSE on scaled inputs) that an
    ``sae`` artifact missed; empty when it met them, has no checklist, or is not a saetool
    artifact (an SAE folder, a pretrained name)."""
    p = Path(str(path))
    if not (p.is_file() and is_sae_artifact(p)):
        return []
    with read_sae_artifact(p) as art:
        return [item for item in (art.training.get("checklist") or []) if isinstance(item, dict)
                and item.get("key") in RECONSTRUCTION_CHECKS and item.get("passed") is False]


def describe_miss(row: dict[str, Any]) -> str:
    """``FVU 0.355 for < 0.35``: a missed checklist row in a few words (its name up to any parenthesis)."""
    value = row.get("value")
    number = f"{float(value):.3g}" if isinstance(value, (int, float)) and math.isfinite(float(value)) else "?"
    return f"{str(row.get('name', '')).split(' (')[0]} {number} for {row.get('target', '?')}"


def quality_warning(path: str | Path) -> str | None:
    """The one-line warning for reports built on an SAE that missed its reconstruction target, else None."""
    rows = failed_reconstruction(path)
    if not rows:
        return None
    return (f"the SAE missed its training checklist's reconstruction target ({describe_miss(rows[0])}): the features of a poorly "
            "trained dictionary may be mixed or split; train it longer (saetool train --steps / --num-tokens) before reading them")
