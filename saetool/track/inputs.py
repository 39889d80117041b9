"""Which SAEs and activations ``track`` reads: paths given, or the manifests piped in."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import h5py

from saetool.artifacts.manifest import read_manifests
from saetool.artifacts.store import read_header
from saetool.errors import SaetoolError
from saetool.sae.sets import expand_sae_paths


def sae_inputs(paths: Sequence[Path] | None) -> tuple[list[Path], Path | None]:
    """``(SAE paths, activations or None)``: the paths given, else every ``sae`` or
    ``sae-set`` manifest on stdin (and the last ``activations`` one); sets expand to their members."""
    if paths:
        return expand_sae_paths(paths), None
    if sys.stdin is None or sys.stdin.isatty():
        raise SaetoolError("no SAE given", hint="pass SAE files (one per layer) or pipe `saetool train` into this command")
    saes: list[Path] = []
    acts: Path | None = None
    for rec in read_manifests(sys.stdin):
        if rec.get("kind") == "activations":
            acts = Path(rec["path"])
        elif rec.get("kind") in (None, "sae", "sae-set"):
            saes += expand_sae_paths([rec["path"]])
    if not saes:
        raise SaetoolError("no SAE in the manifests on stdin", hint="pipe `saetool train` into this command, or pass SAE files")
    return saes, acts


def default_activations(saes: Sequence[Path]) -> Path | None:
    """The activations artifact every SAE was trained on, if it is one file that still exists and holds every SAE's hook."""
    found: set[str] = set()
    hooks: set[str] = set()
    for p in saes:
        if not Path(p).is_file():
            return None
        try:
            prov = read_header(p)["provenance"]
        except Exception:
            return None
        parents = [r.get("path") for r in prov.get("parents", []) if isinstance(r, dict) and r.get("kind") == "activations"]
        if len(parents) != 1:
            return None
        found.add(str(parents[0]))
        hooks.update(str(h) for h in prov.get("hooks", [])[:1])
    if len(found) != 1:
        return None
    path = Path(found.pop())
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as fh:
            have = set(json.loads(fh.attrs.get("hooks", "[]")))
    except (OSError, ValueError):
        return None
    return path if hooks <= have else None
