"""Top-activating tokens per feature, collected during training (seed 004).

:class:`SampleCollector` keeps, for every feature, the ``per_feature`` largest
activations above a threshold seen at collection steps, as two
``[d_sae, per_feature]`` tensors (values, global row ids). Each collection
merges the batch's per-feature top-k into the running top-k with one
``topk`` over the concatenation: no Python loop over features.

At the end the most frequently active features are stored in the SAE
artifact's ``samples`` group, with the context of every sample taken from the
activation artifact's ``sequences/token_ids``:

=========================  ===============  ==============================================
dataset                    shape            meaning
=========================  ===============  ==============================================
``feature_idx``            ``[F]``          which features are stored
``activation_count``       ``[F]``          activations above the threshold seen
``mean_activation``        ``[F]``          their mean
``max_activation``         ``[F]``          the largest activation seen
``values``                 ``[F, m]``       sample activations, descending (NaN: none)
``token_ids``              ``[F, m]``       the token (-1: none)
``source`` / ``row``       ``[F, m]``       activation file (index into ``sources``) and row
``seq_index``/``position`` ``[F, m]``       window in that file and position in it
``context_tokens``         ``[F, m, C]``    tokens around it (-1 padded)
``context_position``       ``[F, m]``       where the token sits in ``context_tokens``
=========================  ===============  ==============================================

Attributes: ``settings`` (JSON), ``sources`` (JSON list of paths), ``model``,
``d_sae``, ``collections``, ``tokens_seen``, ``values_from``,
``statistics_from``, ``dropped_samples``, ``dropped_features`` (see
:func:`write_samples`). Activations are in the saved
SAE's units (raw activations in, ``sae.encode`` out).
:func:`saetool.interpret.samples_view.export_samples_dir` writes the seed's folder layout
(``collection_summary.json`` + ``feature_XXXXX_samples.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from saetool.artifacts.activations import token_contexts
from saetool.artifacts.store import open_artifact
from saetool.console import log
from saetool.errors import SaetoolError
from saetool.sae.features import batch_topk, merge_topk, values_at
from saetool.train.sparse import SparseCodes

if TYPE_CHECKING:
    import h5py

    from saetool.train.config import SampleSettings
    from saetool.train.source import ActivationSource

GROUP = "samples"


class SampleCollector:
    """Running per-feature top-k of activations (vectorised, checkpointable)."""

    def __init__(self, d_sae: int, settings: "SampleSettings", device: "str | torch.device" = "cpu") -> None:
        self.d_sae = int(d_sae)
        self.settings = settings
        m = settings.per_feature
        self.values = torch.full((d_sae, m), float("-inf"), device=device)
        self.rows = torch.full((d_sae, m), -1, dtype=torch.long, device=device)
        self.count = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.total = torch.zeros(d_sae, dtype=torch.float64, device=device)
        self.max = torch.zeros(d_sae, device=device)
        self.collections = 0
        self.tokens_seen = 0

    def update(self, acts: "SparseCodes | torch.Tensor", rows: "torch.Tensor", *, scale: float = 1.0) -> None:
        """Merge one batch: ``acts`` (sparse codes or ``[n, d_sae]``) times ``scale``, for global ``rows``."""
        dense = acts.to_dense(self.d_sae) if isinstance(acts, SparseCodes) else acts.detach()
        dense = dense.to(device=self.values.device, dtype=torch.float32) * scale
        rows = rows.to(self.values.device)
        thr = float(self.settings.threshold)
        above = dense > thr
        self.count += above.sum(0)
        self.total += torch.where(above, dense, 0.0).sum(0, dtype=torch.float64)
        self.max = torch.maximum(self.max, dense.max(0).values)
        batch_vals, batch_rows = batch_topk(dense, rows, min(self.settings.per_feature, dense.shape[0]), threshold=thr)
        self._merge(batch_vals, batch_rows)
        self.collections += 1
        self.tokens_seen += int(dense.shape[0])

    def _merge(self, vals: "torch.Tensor", rows: "torch.Tensor") -> None:
        self.values, self.rows = merge_topk(self.values, self.rows, vals, rows, self.settings.per_feature, dedup=True)

    # -- checkpoints -------------------------------------------------------------
    def state(self) -> dict[str, "torch.Tensor"]:
        counters = torch.tensor([self.collections, self.tokens_seen], dtype=torch.long)
        return {"values": self.values, "rows": self.rows, "count": self.count, "total": self.total, "max": self.max, "counters": counters}

    def load_state(self, state: dict[str, "torch.Tensor"]) -> None:
        dev = self.values.device
        self.values = state["values"].to(dev)
        self.rows = state["rows"].to(dev)
        self.count = state["count"].to(dev)
        self.total = state["total"].to(dev)
        self.max = state["max"].to(dev)
        self.collections, self.tokens_seen = (int(v) for v in state["counters"].tolist())

    # -- results -------------------------------------------------------------------
    def chosen_features(self) -> "np.ndarray":
        """Features to store: those with samples, most frequently active first."""
        count = self.count.cpu().numpy()
        has = (self.rows[:, 0] >= 0).cpu().numpy()
        mx = self.max.cpu().numpy()
        idx = np.flatnonzero(has)
        idx = idx[np.lexsort((idx, -mx[idx], -count[idx]))]
        n = self.settings.features
        return idx if n == 0 else idx[:n]


def final_values(sae: Any, source: "ActivationSource", feats: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """The final SAE's activations ``[F, m]`` of features ``feats`` at global ``rows`` (-1: NaN)."""
    out = np.full(rows.shape, np.nan, np.float32)
    valid = rows >= 0
    if valid.any():
        fi, mi = np.nonzero(valid)
        file_idx, local = source.locate(rows[valid])
        vals = np.empty(len(fi), np.float32)
        for i, f in enumerate(source.files):
            sel = np.flatnonzero(file_idx == i)
            if sel.size:
                vals[sel] = values_at(sae, f, source.hook, local[sel], np.asarray(feats)[fi[sel]])
        out[fi, mi] = vals
    return out


#: What the summary's provenance fields mean, for readers of ``collection_summary.json``.
SUMMARY_NOTES = {
    "values_from": "'final SAE': the tokens were chosen at the collection steps, and their values recomputed with the saved SAE; "
                   "'collection steps': the values are those the SAE of each collection step gave",
    "statistics_from": "activation counts and means are those of the SAEs of the collection steps",
    "dropped_samples": "collected tokens where the saved SAE's activation is at or below sample_activation_threshold: "
                       "no longer samples of their feature, so left out (the SAE changed after collecting them)",
    "dropped_features": "features left without any sample by that, and so not saved",
}


def write_samples(fh: "h5py.File", collector: SampleCollector, source: "ActivationSource", *, scale: float = 1.0, model: str | None = None, sae: Any = None) -> None:
    """Store the collector's chosen features, with contexts, as ``fh['samples']``.

    With the final ``sae``, each stored token's value is recomputed with it (the
    collector saw the SAE of the step it collected at) and the samples re-sorted;
    ``values_from`` says which. A token where the final SAE's activation is at or
    below the threshold is no longer a sample of the feature and is dropped, and a
    feature left without samples with it (``dropped_samples``/``dropped_features``
    count them). Counts and means stay those of the collection steps."""
    feats = collector.chosen_features()
    m, ctx = collector.settings.per_feature, collector.settings.context
    values = collector.values[feats].cpu().numpy().astype(np.float32)
    rows = collector.rows[feats].cpu().numpy()
    valid = rows >= 0
    values[~valid] = np.nan
    values *= scale
    dropped_samples = dropped_features = 0
    if sae is not None:
        values = final_values(sae, source, feats, rows)
        silent = valid & ~(values > float(collector.settings.threshold))
        dropped_samples = int(silent.sum())
        values[silent], rows[silent] = np.nan, -1
        keep = (rows >= 0).any(1)
        dropped_features = int((~keep).sum())
        feats, values, rows = feats[keep], values[keep], rows[keep]
        if dropped_samples:
            log(f"samples: recomputed with the final SAE, {dropped_samples} of {int(valid.sum())} collected tokens fell to or below the threshold "
                f"{float(collector.settings.threshold):g} and were left out" + (f", and {dropped_features} feature{'s' if dropped_features != 1 else ''} with them" if dropped_features else "")
                + " (the SAE changed after it collected them)")
        order = np.argsort(np.where(np.isnan(values), np.inf, -values), axis=1, kind="stable")
        values, rows = np.take_along_axis(values, order, 1), np.take_along_axis(rows, order, 1)
        valid = rows >= 0
    F = len(feats)
    out = {
        "token_ids": np.full((F, m), -1, np.int32),
        "source": np.full((F, m), -1, np.int32),
        "row": np.full((F, m), -1, np.int64),
        "seq_index": np.full((F, m), -1, np.int64),
        "position": np.full((F, m), -1, np.int32),
        "context_tokens": np.full((F, m, ctx), -1, np.int32),
        "context_position": np.full((F, m), -1, np.int32),
    }
    if valid.any():
        file_idx, local = source.locate(rows[valid])
        tok, seq, pos, contexts, cpos = token_contexts(source.files, file_idx, local, ctx)
        out["token_ids"][valid] = tok
        out["source"][valid] = file_idx
        out["row"][valid] = local
        out["seq_index"][valid] = seq
        out["position"][valid] = pos
        out["context_tokens"][valid] = contexts
        out["context_position"][valid] = cpos
    count = collector.count[feats].cpu().numpy()
    total = collector.total[feats].cpu().numpy()
    g = fh.create_group(GROUP)
    g.attrs["settings"] = json.dumps(asdict(collector.settings), sort_keys=True)
    g.attrs["sources"] = json.dumps([str(p.resolve()) for p in source.paths])
    g.attrs["model"] = model or source.model or ""
    g.attrs["d_sae"] = collector.d_sae
    g.attrs["collections"] = collector.collections
    g.attrs["tokens_seen"] = collector.tokens_seen
    g.attrs["values_from"] = "final SAE" if sae is not None else "collection steps"
    g.attrs["statistics_from"] = "collection steps"
    g.attrs["dropped_samples"] = dropped_samples
    g.attrs["dropped_features"] = dropped_features
    _dataset(g, "feature_idx", np.asarray(feats, np.int64))
    _dataset(g, "activation_count", count.astype(np.int64))
    _dataset(g, "mean_activation", (np.where(count > 0, total / np.maximum(count, 1), 0.0) * scale).astype(np.float32))
    mx = collector.max[feats].cpu().numpy() * scale
    if sae is not None:  # the largest stored value is the final SAE's; the collection maximum may be an earlier step's
        mx = np.where(np.isnan(values).all(1), 0.0, np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1))
    _dataset(g, "max_activation", mx.astype(np.float32))
    _dataset(g, "values", values)
    for name, array in out.items():
        _dataset(g, name, array)


def _dataset(group: "h5py.Group", name: str, array: "np.ndarray") -> None:
    ds = group.create_dataset(name, data=array)
    ds.attrs["saetool_dtype"] = str(array.dtype)


# -- reading and exporting ----------------------------------------------------------------
@dataclass
class StoredSamples:
    """The ``samples`` group of an SAE artifact, loaded into numpy arrays."""

    settings: dict[str, Any]
    sources: list[str]
    model: str
    d_sae: int
    collections: int
    tokens_seen: int
    arrays: dict[str, "np.ndarray"]

    def features(self, decode: Callable[[list[int]], str] | None = None) -> list[dict[str, Any]]:
        """One record per stored feature in the seed's ``feature_XXXXX_samples.json`` shape."""
        a = self.arrays
        records = []
        for i, feat in enumerate(a["feature_idx"].tolist()):
            valid = np.flatnonzero(~np.isnan(a["values"][i]))
            samples = []
            for j in valid.tolist():
                ctx = [int(t) for t in a["context_tokens"][i, j] if t >= 0]
                token = int(a["token_ids"][i, j])
                samples.append(
                    {
                        "feature_idx": int(feat),
                        "activation_value": float(a["values"][i, j]),
                        "tokens": [token],
                        "text": decode([token]) if decode else None,
                        "position": int(a["position"][i, j]),
                        "context_tokens": ctx,
                        "context_text": decode(ctx) if decode else None,
                        "context_token_texts": [decode([t]) for t in ctx] if decode else None,
                        "context_position": int(a["context_position"][i, j]),
                        "seq_index": int(a["seq_index"][i, j]),
                        "source": self.sources[int(a["source"][i, j])] if 0 <= int(a["source"][i, j]) < len(self.sources) else None,
                    }
                )
            stats = {
                "feature_idx": int(feat),
                "max_activation": float(a["max_activation"][i]),
                "mean_activation": float(a["mean_activation"][i]),
                "num_samples": len(samples),
                "activation_count": int(a["activation_count"][i]),
            }
            records.append({"statistics": stats, "top_samples": samples})
        return records


def read_samples(path: str | Path) -> StoredSamples:
    """The samples stored in an ``sae`` artifact (one-line error if it has none)."""
    with open_artifact(path, kind="sae") as art:
        if GROUP not in art.file:
            raise SaetoolError(f"{path} has no stored samples", hint="train with --collect-samples")
        g = art.file[GROUP]
        arrays = {name: g[name][()] for name in g}
        return StoredSamples(
            settings={**json.loads(_text(g.attrs.get("settings")) or "{}"), "values_from": _text(g.attrs.get("values_from")) or "collection steps",
                      "statistics_from": _text(g.attrs.get("statistics_from")) or "collection steps",
                      "dropped_samples": int(g.attrs.get("dropped_samples", 0)), "dropped_features": int(g.attrs.get("dropped_features", 0))},
            sources=json.loads(_text(g.attrs.get("sources")) or "[]"),
            model=_text(g.attrs.get("model")) or "",
            d_sae=int(g.attrs.get("d_sae", 0)),
            collections=int(g.attrs.get("collections", 0)),
            tokens_seen=int(g.attrs.get("tokens_seen", 0)),
            arrays=arrays,
        )


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
