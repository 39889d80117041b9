"""The ``features`` artifact: writing :class:`FeatureRecord` arrays and reading them back.

Layout (see ``docs/artifacts.md``, "### `features` (schema 1)"): per-feature
statistics for all ``d_sae`` features under ``stats/``; for the ``F``
features in ``features/index``, the histogram, examples (``top``,
``held_out``, ``negatives``), common tokens, nearest neighbours, unit decoder
directions and labels; ``vocab/`` maps every stored token id to its text so
reading needs no tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np

from saetool.artifacts.arrays import text_array
from saetool.artifacts.kinds import ArtifactKind, Rows
from saetool.artifacts.provenance import file_sha256
from saetool.artifacts.store import open_artifact
from saetool.artifacts.validate import bad
from saetool.errors import SaetoolError
from saetool.interpret.records import Example, FeatureRecord, Label
from saetool.interpret.selection import DENSE_THRESHOLD, DensitySummary, density_summary

KIND = "features"
SCHEMA_VERSION = 1
EXAMPLE_GROUPS = ("top", "held_out", "negatives", "intervals")
REQUIRED_DATASETS = (
    "stats/count", "stats/density", "stats/max", "stats/mean", "features/index", "histogram/edges", "histogram/counts",
    "common/top_token_ids", "common/top_token_counts", "common/context_token_ids", "common/context_token_counts",
    "neighbours/index", "neighbours/cosine", "decoder/directions", "examples/top/values", "vocab/ids", "vocab/text",
)
#: The datasets every ``examples/{group}`` holds (``token_values`` and the intervals' ``edges`` are optional).
EXAMPLE_FIELDS = ("values", "row", "seq_index", "token_position", "token_ids", "position")
F = "features/index"  # the per-feature datasets have one row per stored feature


@dataclass
class ExampleArrays:
    """One kind of example for ``F`` features, ``m`` each (``row`` -1: none)."""

    values: "np.ndarray"  # [F, m] float32, NaN where none
    row: "np.ndarray"  # [F, m] int64 token row in the activations file
    seq_index: "np.ndarray"  # [F, m]
    token_position: "np.ndarray"  # [F, m] position in that window
    token_ids: "np.ndarray"  # [F, m, W] int32, -1 padded
    position: "np.ndarray"  # [F, m] index of the marked token in token_ids
    token_values: "np.ndarray | None" = None  # [F, m, W] float32 the feature's activation at each token (NaN: unknown)


def _ds(group: "h5py.Group", name: str, array: Any, **kw: Any) -> None:
    if name in group:
        del group[name]
    group.create_dataset(name, data=array, **kw)


def write_features(fh: "h5py.File", data: dict[str, Any]) -> None:
    """Write the arrays of a finished run into ``fh`` (an open partial artifact)."""
    for key in ("d_sae", "n_tokens", "hook", "model", "context", "settings", "sae_sha256"):
        fh.attrs[key] = data[key] if not isinstance(data[key], (dict, list)) else json.dumps(data[key], sort_keys=True)
    for name, arr in data["stats"].items():
        _ds(fh.require_group("stats"), name, arr)
    _ds(fh.require_group("features"), "index", np.asarray(data["index"], np.int64))
    h = fh.require_group("histogram")
    _ds(h, "edges", data["hist_edges"].astype(np.float32))
    _ds(h, "counts", data["hist_counts"].astype(np.int64))
    for g in EXAMPLE_GROUPS:
        ex: ExampleArrays = data["examples"][g]
        grp = fh.require_group(f"examples/{g}")
        for field in ("values", "row", "seq_index", "token_position", "token_ids", "position", "token_values"):
            if getattr(ex, field) is not None:
                _ds(grp, field, getattr(ex, field))
    c = fh.require_group("common")
    for name, arr in data["common"].items():
        _ds(c, name, arr)
    n = fh.require_group("neighbours")
    _ds(n, "index", data["neighbours_index"].astype(np.int64))
    _ds(n, "cosine", data["neighbours_cosine"].astype(np.float32))
    _ds(fh.require_group("decoder"), "directions", data["directions"].astype(np.float32))
    if data.get("interval_edges") is not None:
        _ds(fh["examples/intervals"], "edges", np.asarray(data["interval_edges"], np.float32))
    if data.get("logits") is not None:
        lg = fh.require_group("logits")
        for name, arr in data["logits"].items():
            _ds(lg, name, arr)
    if data.get("summary") is not None:
        fh.attrs["summary"] = json.dumps(data["summary"], sort_keys=True)
    v = fh.require_group("vocab")
    _ds(v, "ids", np.asarray(data["vocab_ids"], np.int64))
    _ds(v, "text", text_array(data["vocab_text"]), dtype=h5py.string_dtype())
    write_labels(fh, data.get("labels"), data.get("labeler") or "", len(data["index"]))


def write_labels(fh: "h5py.File", labels: Sequence[Label | None] | None, labeler: str, n: int) -> None:
    """Store labels (``labels/text``, ``score`` NaN when none, ``details`` JSON)."""
    labels = list(labels or [None] * n)
    g = fh.require_group("labels")
    g.attrs["labeler"] = labeler
    _ds(g, "text", text_array(lab.text if lab else "" for lab in labels), dtype=h5py.string_dtype())
    _ds(g, "labeler", text_array(lab.labeler if lab else "" for lab in labels), dtype=h5py.string_dtype())
    _ds(g, "score", np.asarray([np.nan if lab is None or lab.score is None else lab.score for lab in labels], np.float32))
    _ds(g, "details", text_array(json.dumps(lab.details if lab else {}, sort_keys=True, default=str) for lab in labels), dtype=h5py.string_dtype())


class FeaturesFile:
    """An open ``features`` artifact. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.artifact = open_artifact(path, kind=KIND)
        self.path = self.artifact.path
        fh = self.artifact.file
        self.d_sae = int(fh.attrs["d_sae"])
        self.n_tokens = int(fh.attrs["n_tokens"])
        self.hook = _text(fh.attrs["hook"])
        self.model = _text(fh.attrs.get("model")) or None
        self.settings: dict[str, Any] = json.loads(_text(fh.attrs.get("settings")) or "{}")
        self.sae_sha256 = _text(fh.attrs.get("sae_sha256")) or ""
        self.index = fh["features/index"][()]
        self._pos = {int(f): i for i, f in enumerate(self.index.tolist())}
        self.labeler = _text(fh["labels"].attrs.get("labeler", "")) if "labels" in fh else ""

    @property
    def provenance(self) -> dict[str, Any]:
        return self.artifact.provenance

    def stats(self) -> dict[str, "np.ndarray"]:
        """``count``, ``density``, ``max``, ``mean``, ``std`` for all ``d_sae`` features."""
        g = self.artifact.file["stats"]
        return {name: g[name][()] for name in g}

    def summary(self) -> Any:
        """The :class:`~saetool.interpret.selection.DensitySummary` of all features."""
        raw = _text(self.artifact.file.attrs.get("summary"))
        if raw:
            return DensitySummary.from_json(json.loads(raw))
        return density_summary(self.stats()["count"], self.n_tokens, float(self.settings.get("dense_threshold", DENSE_THRESHOLD)))

    def check_features(self, features: Iterable[int]) -> list[int]:
        """``features`` as ints; one-line error for ids out of range or not stored."""
        out = []
        for f in features:
            f = int(f)
            if not 0 <= f < self.d_sae:
                raise SaetoolError(f"feature {f} is out of range: the SAE has {self.d_sae} features (0..{self.d_sae - 1})")
            if f not in self._pos:
                raise SaetoolError(f"feature {f} has no examples in {self.path} ({len(self.index)} features stored)", hint="rerun saetool interpret with --features including it")
            out.append(f)
        return out

    def check_sae(self, sae_path: str | Path) -> None:
        """One-line error unless ``sae_path`` is the SAE this file was made from (sha256)."""
        p = Path(sae_path)
        if not p.is_file():
            return  # folders (SAELens, sparsify) have no single hash; nothing to compare
        if self.sae_sha256 and file_sha256(p) != self.sae_sha256:
            raise SaetoolError(f"{self.path} was not made from {p} (sha256 differs from its provenance)", hint="pass the SAE it came from, or rerun saetool interpret")

    def directions(self, features: Sequence[int]) -> "np.ndarray":
        rows = [self._pos[int(f)] for f in features]
        ds = self.artifact.file["decoder/directions"]
        return np.stack([ds[r] for r in rows]) if rows else np.zeros((0, ds.shape[1]), np.float32)

    def records(self, features: Sequence[int] | None = None) -> list[FeatureRecord]:
        """:class:`FeatureRecord` objects for ``features`` (default: all stored)."""
        feats = [int(f) for f in self.index.tolist()] if features is None else self.check_features(features)
        return records_from_h5(self.artifact.file, feats)

    def close(self) -> None:
        self.artifact.close()

    def __enter__(self) -> "FeaturesFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_features(path: str | Path, indices: Sequence[int] | None = None) -> list[FeatureRecord]:
    """The records stored in a ``features`` artifact (``indices``: feature ids; default all stored)."""
    with FeaturesFile(path) as ff:
        return ff.records(indices)


def records_from_h5(fh: "h5py.File | h5py.Group", feats: Sequence[int]) -> list[FeatureRecord]:
    """Records for feature ids ``feats`` (all stored in ``fh``) from an open file, finished or partial."""
    index = fh["features/index"][()]
    where = {int(f): i for i, f in enumerate(index.tolist())}
    pos = [where[int(f)] for f in feats]
    vocab = dict(zip(fh["vocab/ids"][()].tolist(), [_text(t) for t in fh["vocab/text"][()].tolist()]))
    stats = {name: fh["stats"][name][()] for name in fh["stats"]}
    edges, counts = fh["histogram/edges"][()], fh["histogram/counts"][()]
    com = {name: fh[f"common/{name}"][()] for name in fh["common"]}
    nb_i, nb_c = fh["neighbours/index"][()], fh["neighbours/cosine"][()]
    groups = [g for g in EXAMPLE_GROUPS if f"examples/{g}" in fh]
    ex = {g: {name: fh[f"examples/{g}/{name}"][()] for name in fh[f"examples/{g}"]} for g in groups}
    lg = {name: fh[f"logits/{name}"][()] for name in fh["logits"]} if "logits" in fh else None
    lab = fh["labels"] if "labels" in fh else None
    out = []
    for f, p in zip(feats, pos):
        examples = {g: _examples(ex[g], p, vocab) if g in ex else [] for g in EXAMPLE_GROUPS}
        label = None
        if lab is not None and _text(lab["text"][p]):
            score = float(lab["score"][p])
            label = Label(text=_text(lab["text"][p]), labeler=_text(lab["labeler"][p]), score=None if np.isnan(score) else score, details=json.loads(_text(lab["details"][p]) or "{}"))
        out.append(
            FeatureRecord(
                index=int(f),
                density=float(stats["density"][f]),
                max_activation=float(stats["max"][f]),
                mean_activation=float(stats["mean"][f]),
                histogram_edges=[float(x) for x in edges[p]],
                histogram_counts=[int(x) for x in counts[p]],
                top_examples=examples["top"],
                held_out=examples["held_out"],
                negatives=examples["negatives"],
                top_tokens=_pairs(com["top_token_ids"][p], com["top_token_counts"][p], vocab),
                context_tokens=_pairs(com["context_token_ids"][p], com["context_token_counts"][p], vocab),
                neighbours=[(int(i), float(c)) for i, c in zip(nb_i[p], nb_c[p]) if i >= 0],
                label=label,
                interval_examples=examples["intervals"],
                interval_edges=[float(x) for x in ex["intervals"]["edges"][p]] if "intervals" in ex and "edges" in ex["intervals"] else [],
                logits_positive=_logit_pairs(lg, "positive", p, vocab),
                logits_negative=_logit_pairs(lg, "negative", p, vocab),
            )
        )
    return out


def _examples(group: dict[str, Any], p: int, vocab: dict[int, str]) -> list[Example]:
    rows = group["row"][p]
    vals, seq, tpos = group["values"][p], group["seq_index"][p], group["token_position"][p]
    toks, mark = group["token_ids"][p], group["position"][p]
    tv = group["token_values"][p] if "token_values" in group else None
    out = []
    for j in np.flatnonzero(rows >= 0).tolist():
        keep = toks[j] >= 0
        ids = [int(t) for t in toks[j][keep]]
        values = None if tv is None else [None if np.isnan(v) else float(v) for v in tv[j][keep]]
        out.append(Example(activation=float(vals[j]), token_ids=ids, tokens=[vocab.get(t, f"<{t}>") for t in ids], position=int(mark[j]), seq_index=int(seq[j]), token_position=int(tpos[j]), values=values))
    return out


def _logit_pairs(lg: dict[str, Any] | None, side: str, p: int, vocab: dict[int, str]) -> list[tuple[str, float]]:
    if lg is None or f"{side}_ids" not in lg:
        return []
    return [(vocab.get(int(i), f"<{int(i)}>"), float(v)) for i, v in zip(lg[f"{side}_ids"][p], lg[f"{side}_values"][p]) if i >= 0]


def _pairs(ids: "np.ndarray", counts: "np.ndarray", vocab: dict[int, str]) -> list[tuple[str, int]]:
    return [(vocab.get(int(i), f"<{int(i)}>"), int(c)) for i, c in zip(ids, counts) if i >= 0 and c > 0]


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _validate(fh: "h5py.File", path: Path) -> None:
    """The ``features`` kind's own checks (after the per-dataset rules of :func:`artifact_kind`):
    every feature in ``features/index`` is one of the SAE's ``d_sae``, each example group holds
    all its fields with one shape, and the ``summary`` attribute reads as a density summary."""
    index = fh["features/index"][()]
    d_sae = int(fh.attrs["d_sae"])
    if index.size and (int(index.min()) < 0 or int(index.max()) >= d_sae):
        raise bad(path, f"features/index holds feature ids outside 0-{d_sae - 1} (attribute 'd_sae' is {d_sae})")
    for g in EXAMPLE_GROUPS:
        group = fh.get(f"examples/{g}")
        if group is None:
            continue
        missing = [f for f in EXAMPLE_FIELDS if f not in group]
        if missing:
            raise bad(path, f"it has no dataset examples/{g}/{missing[0]}")
        shape = group["values"].shape
        for name in (*EXAMPLE_FIELDS, "token_values"):
            if name in group and group[name].shape[:2] != shape:
                raise bad(path, f"dataset examples/{g}/{name} has shape {list(group[name].shape)}, but examples/{g}/values has {list(shape)}")
        if "token_values" in group and group["token_values"].shape != group["token_ids"].shape:
            raise bad(path, f"dataset examples/{g}/token_values has shape {list(group['token_values'].shape)}, but examples/{g}/token_ids has {list(group['token_ids'].shape)}")
    if "labels" in fh and (missing := [n for n in ("text", "labeler", "score", "details") if n not in fh["labels"]]):
        raise bad(path, f"it has no dataset labels/{missing[0]}")
    if fh.attrs.get("summary"):
        try:
            DensitySummary.from_json(json.loads(_text(fh.attrs["summary"])))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise bad(path, f"attribute 'summary' is not a density summary ({str(_text(fh.attrs['summary']))[:40]!r})") from None


def artifact_kind() -> Any:
    return ArtifactKind(
        name=KIND,
        schema_version=SCHEMA_VERSION,
        description="Per-feature statistics, examples, histograms, neighbours and labels of an SAE (saetool interpret)",
        required_datasets=REQUIRED_DATASETS,
        required_attrs=("d_sae", "n_tokens", "hook", "settings", "sae_sha256"),
        attrs={"d_sae": "positive", "n_tokens": "count", "hook": "text", "settings": "json-object", "summary": "text", "model": "text", "sae_sha256": "text"},
        datasets={
            "stats/{name}": Rows("d_sae", 1, "number"),
            F: Rows(None, 1, "int"),
            "histogram/edges": Rows(F, 2, "float"),
            "histogram/counts": Rows(F, 2, "int"),
            "common/{name}": Rows(F, 2, "int", min_width=0),
            "neighbours/index": Rows(F, 2, "int", min_width=0),
            "neighbours/cosine": Rows(F, 2, "float", min_width=0),
            "decoder/directions": Rows(F, 2, "float"),
            **{f"examples/{{group}}/{name}": Rows(F, 2, "int", min_width=0) for name in ("row", "seq_index", "token_position", "position")},
            "examples/{group}/values": Rows(F, 2, "float", min_width=0),
            "examples/{group}/token_ids": Rows(F, 3, "int", min_width=0),
            "examples/{group}/token_values": Rows(F, 3, "float", min_width=0),
            "examples/intervals/edges": Rows(F, 2, "float"),
            "logits/{name}": Rows(F, 2, "number", min_width=0),
            "labels/score": Rows(F, 1, "float"),
            **{f"labels/{name}": Rows(F, 1) for name in ("text", "labeler", "details")},
            "vocab/ids": Rows(None, 1, "int"),
            "vocab/text": Rows("vocab/ids", 1),
        },
        validate=_validate,
    )
