"""The ``completions`` artifact: prompts, their completions under one or more
conditions (``baseline``, ``steered``), per-completion metrics and the settings.

Layout (schema 1):

- ``prompts`` ``[n]`` UTF-8 strings (the user's prompts, before any chat template);
- ``splits`` ``[n]`` UTF-8 strings (``""`` when the prompts have no split);
- ``completions/{condition}`` ``[n]`` UTF-8 strings (new text only);
- ``metrics/{condition}/{metric}`` ``[n]`` float64;
- attributes ``conditions`` (JSON list), ``metrics`` (JSON list),
  ``settings`` (JSON: hook, layer, intervention, alpha, scale, positions,
  generation settings, chat...), ``status`` (``ok`` or ``error``) and
  ``error`` (the message of a failed sweep cell).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import h5py
import numpy as np

from saetool.artifacts.arrays import NUL_SHOWN, text_array
from saetool.artifacts.store import ArtifactWriter, open_artifact
from saetool.errors import SaetoolError

if TYPE_CHECKING:
    pass

KIND = "completions"
SCHEMA_VERSION = 1


@dataclass
class Completions:
    prompts: list[str]
    splits: list[str]
    texts: dict[str, list[str]]
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n(self) -> int:
        return len(self.prompts)


def write_completions(
    path: str | Path,
    *,
    prompts: Sequence[str],
    splits: Sequence[str | None],
    texts: Mapping[str, Sequence[str]],
    metrics: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    settings: Mapping[str, Any] | None = None,
    provenance: dict[str, Any],
    status: str = "ok",
    error: str = "",
    overwrite: bool = False,
) -> Path:
    n = len(prompts)
    for cond, values in texts.items():
        if len(values) != n:
            raise SaetoolError(f"condition {cond!r} has {len(values)} completions for {n} prompts")
    str_dt = h5py.string_dtype("utf-8")
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        fh.create_dataset("prompts", data=text_array(prompts), dtype=str_dt)
        fh.create_dataset("splits", data=text_array(s or "" for s in splits), dtype=str_dt)
        group = fh.create_group("completions")
        for cond, values in texts.items():
            group.create_dataset(cond, data=text_array(values), dtype=str_dt)
        mgroup = fh.create_group("metrics")
        names: set[str] = set()
        for cond, per_metric in (metrics or {}).items():
            cg = mgroup.require_group(cond)
            for name, values in per_metric.items():
                ds = cg.create_dataset(name, data=np.asarray(list(values), dtype="float64"))
                ds.attrs["saetool_dtype"] = "float64"
                names.add(name)
        fh.attrs["conditions"] = json.dumps(list(texts))
        fh.attrs["metrics"] = json.dumps(sorted(names))
        fh.attrs["settings"] = json.dumps(dict(settings or {}), sort_keys=True, default=str)
        fh.attrs["status"] = status
        fh.attrs["error"] = error.replace("\x00", NUL_SHOWN)
        fh.attrs["n_prompts"] = n
    return Path(path)


def _t(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def read_completions(path: str | Path) -> Completions:
    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        prompts = list(fh["prompts"].asstr()[()])
        splits = list(fh["splits"].asstr()[()]) if "splits" in fh else [""] * len(prompts)
        conds = json.loads(_t(fh.attrs.get("conditions", "[]")) or "[]") or list(fh.get("completions", {}))
        texts = {c: list(fh[f"completions/{c}"].asstr()[()]) for c in conds if f"completions/{c}" in fh}
        metrics: dict[str, dict[str, list[float]]] = {}
        if "metrics" in fh:
            for cond in fh["metrics"]:
                metrics[cond] = {name: [float(x) for x in fh[f"metrics/{cond}/{name}"][()]] for name in fh[f"metrics/{cond}"]}
        return Completions(
            prompts=prompts,
            splits=splits,
            texts=texts,
            metrics=metrics,
            settings=json.loads(_t(fh.attrs.get("settings", "{}")) or "{}"),
            status=str(_t(fh.attrs.get("status", "ok"))),
            error=str(_t(fh.attrs.get("error", ""))),
            provenance=art.provenance,
            path=Path(path),
        )
