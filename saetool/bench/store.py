"""The ``bench`` artifact: every SAE x eval result of a run, and what each number means.

Layout (schema 1): attributes ``saes`` (JSON list, one object per SAE: name,
path, ``random_of`` for a random floor, widths), ``evals`` (JSON list of names),
``settings`` (JSON object) and ``cards`` (JSON object: eval -> its metric
cards); one group ``results/{i}/{eval}`` per finished SAE x eval, its
``result`` attribute the JSON of an :class:`~saetool.bench.base.EvalResult`
(``i`` indexes ``saes``). A result is written as soon as it is finished, so
``--resume`` skips it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saetool.artifacts.jsonable import finite
from saetool.artifacts.kinds import ArtifactKind
from saetool.artifacts.store import open_artifact
from saetool.artifacts.validate import bad, json_attr
from saetool.bench.base import EvalResult
from saetool.bench.config import KIND

if TYPE_CHECKING:
    import h5py

SCHEMA_VERSION = 1


@dataclass
class BenchResults:
    """A run's results: ``saes`` (descriptions), ``evals``, ``results[(sae name, eval)]``, ``cards[eval]``."""

    saes: list[dict[str, Any]]
    evals: list[str]
    results: dict[tuple[str, str], EvalResult] = field(default_factory=dict)
    cards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.saes]

    def value(self, sae: str, ev: str, metric: str) -> float | None:
        res = self.results.get((sae, ev))
        return None if res is None else res.metrics.get(metric)

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (non-finite numbers as null)."""
        out = {
            "saes": self.saes,
            "evals": self.evals,
            "settings": self.settings,
            "cards": self.cards,
            "results": [{"sae": s, "eval": e, **r.to_dict()} for (s, e), r in self.results.items()],
        }
        return finite(out)


def dumps(value: Any) -> str:
    return json.dumps(finite(value), sort_keys=True)


def write_header(fh: "h5py.File", results: BenchResults) -> None:
    fh.attrs["saes"] = dumps(results.saes)
    fh.attrs["evals"] = json.dumps(results.evals)
    fh.attrs["settings"] = dumps(results.settings)
    fh.attrs["cards"] = dumps(results.cards)


def write_result(fh: "h5py.File", index: int, ev: str, result: EvalResult) -> None:
    group = fh.require_group(f"results/{index}/{ev}")
    group.attrs["result"] = dumps(result.to_dict())


def stored_results(fh: "h5py.File", saes: list[dict[str, Any]]) -> dict[tuple[str, str], EvalResult]:
    """The results in an open file, keyed by (SAE name, eval)."""
    out = {}
    if "results" not in fh:
        return out
    for key in fh["results"]:
        if not key.isdigit() or int(key) >= len(saes):
            continue
        for ev, group in fh["results"][key].items():
            if "result" in group.attrs:
                out[(saes[int(key)]["name"], ev)] = EvalResult.from_dict(json.loads(group.attrs["result"]))
    return out


def read_bench(path: str | Path) -> BenchResults:
    """A ``bench`` artifact as :class:`BenchResults`."""
    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        saes = json.loads(fh.attrs["saes"])
        res = BenchResults(saes=saes, evals=json.loads(fh.attrs["evals"]), settings=json.loads(fh.attrs["settings"]),
                           cards=json.loads(fh.attrs["cards"]), path=Path(path))
        res.results = stored_results(fh, saes)
    return res


def _validate(fh: "h5py.File", path: Path) -> None:
    saes = json_attr(fh.attrs["saes"], path, "saes", list)
    if not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in saes):
        raise bad(path, "attribute 'saes' must list objects with a 'name'")
    if "results" in fh:
        for key in fh["results"]:
            if not key.isdigit() or int(key) >= len(saes):
                raise bad(path, f"results/{key} names no SAE of 'saes'")
            for ev, group in fh["results"][key].items():
                json_attr(group.attrs.get("result", ""), path, f"results/{key}/{ev} result", dict)


def artifact_kind() -> Any:
    return ArtifactKind(
        name=KIND,
        schema_version=SCHEMA_VERSION,
        description="SAE x eval results of saetool bench (core, stability, probing, absorption, autointerp) with metric cards",
        required_attrs=("saes", "evals", "settings", "cards"),
        attrs={"saes": "json-list", "evals": "json-text-list", "settings": "json-object", "cards": "json-object"},
        validate=_validate,
    )


