"""Whether the SAEs a track links were trained well enough: their training checklists'
reconstruction rows (links between poorly trained dictionaries are mostly noise)."""

from __future__ import annotations

from typing import Any, Sequence

from saetool.analysis.select import LayerSAE
from saetool.console import warn
from saetool.sae.quality import describe_miss
from saetool.sae.quality import failed_reconstruction as failed_rows


def failed_reconstruction(saes: Sequence[LayerSAE]) -> dict[int, list[dict[str, Any]]]:
    """Per layer whose SAE is a saetool artifact that missed its training checklist's
    reconstruction target (FVU, or MSE on scaled inputs), those checklist rows."""
    return {s.layer: rows for s in saes if (rows := failed_rows(s.path))}


def warn_failed_checklists(saes: Sequence[LayerSAE]) -> None:
    """One warning line naming the layers whose SAE missed its reconstruction target (nothing when none did)."""
    bad = failed_reconstruction(saes)
    if bad:
        parts = [f"layer {layer}: {describe_miss(items[0])}" for layer, items in sorted(bad.items())]
        shown = "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")
        warn(f"{len(bad)} of {len(saes)} SAEs missed their training checklist's reconstruction target ({shown}): "
             "links between poorly trained dictionaries are mostly noise; train them longer (saetool train --steps / --num-tokens) before reading the tracks")
