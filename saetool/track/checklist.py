"""Whether the SAEs a track links were trained well enough: their training checklists'
reconstruction rows (links between poorly trained dictionaries are mostly noise)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from saetool.analysis.select import LayerSAE
from saetool.console import warn
from saetool.sae.io import is_sae_artifact, read_sae_artifact

RECONSTRUCTION_CHECKS = ("fvu", "scaled_mse")  # training-checklist rows whose failure makes a dictionary's links noise (L0 and dead targets are choices)


def failed_reconstruction(saes: Sequence[LayerSAE]) -> dict[int, list[dict[str, Any]]]:
    """Per layer whose SAE is a saetool artifact that missed its training checklist's
    reconstruction target (FVU, or MSE on scaled inputs), those checklist rows."""
    out: dict[int, list[dict[str, Any]]] = {}
    for s in saes:
        if not (Path(s.path).is_file() and is_sae_artifact(Path(s.path))):
            continue
        with read_sae_artifact(s.path) as art:
            failed = [item for item in (art.training.get("checklist") or []) if isinstance(item, dict)
                      and item.get("key") in RECONSTRUCTION_CHECKS and item.get("passed") is False]
        if failed:
            out[s.layer] = failed
    return out


def warn_failed_checklists(saes: Sequence[LayerSAE]) -> None:
    """One warning line naming the layers whose SAE missed its reconstruction target (nothing when none did)."""
    bad = failed_reconstruction(saes)
    if bad:
        parts = [f"layer {layer}: {str(items[0].get('name', '')).split(' (')[0]} {float(items[0].get('value', math.nan)):.3g} for {items[0].get('target', '?')}"
                 for layer, items in sorted(bad.items())]
        shown = "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")
        warn(f"{len(bad)} of {len(saes)} SAEs missed their training checklist's reconstruction target ({shown}): "
             "links between poorly trained dictionaries are mostly noise; train them longer (saetool train --steps / --num-tokens) before reading the tracks")
