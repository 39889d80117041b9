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
``d_sae``, ``collections``, ``tokens_seen``. Activations are in the saved
SAE's units (raw activations in, ``sae.encode`` out).
:func:`export_samples_dir` writes the seed's folder layout
(``collection_summary.json`` + ``feature_XXXXX_samples.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from saetool.artifacts.files import write_atomic
from saetool.console import warn
from saetool.errors import SaetoolError
from saetool.sae.format_api import ExportSettings, SAEExporter

if TYPE_CHECKING:
    import h5py
    import numpy as np
    import torch

    from saetool.train.config import SampleSettings
    from saetool.train.source import ActivationSource
    from saetool.train.sparse import SparseCodes

GROUP = "samples"


class SampleCollector:
    """Running per-feature top-k of activations (vectorised, checkpointable)."""

    def __init__(self, d_sae: int, settings: "SampleSettings", device: "str | torch.device" = "cpu") -> None:
        import torch

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
        import torch

        from saetool.train.sparse import SparseCodes

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
        import torch

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
        import numpy as np

        count = self.count.cpu().numpy()
        has = (self.rows[:, 0] >= 0).cpu().numpy()
        mx = self.max.cpu().numpy()
        idx = np.flatnonzero(has)
        idx = idx[np.lexsort((idx, -mx[idx], -count[idx]))]
        n = self.settings.features
        return idx if n == 0 else idx[:n]


def batch_topk(dense: "torch.Tensor", rows: "torch.Tensor", k: int, *, threshold: float = float("-inf")) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-column top-``k`` of ``dense [n, F]``: ``[F, k]`` values and the matching
    ``rows`` entries; entries not above ``threshold`` (or missing, n < k) are ``-inf`` / -1."""
    import torch

    kb = min(k, dense.shape[0])
    vals, idx = dense.topk(kb, dim=0)  # [kb, F]
    vals = torch.where(vals > threshold, vals, float("-inf")).t()
    out_rows = torch.where(vals > float("-inf"), rows[idx].t(), -1)
    if kb < k:
        pad = k - kb
        vals = torch.cat([vals, vals.new_full((vals.shape[0], pad), float("-inf"))], dim=1)
        out_rows = torch.cat([out_rows, out_rows.new_full((out_rows.shape[0], pad), -1)], dim=1)
    return vals, out_rows


def merge_topk(values: "torch.Tensor", rows: "torch.Tensor", cand_values: "torch.Tensor", cand_rows: "torch.Tensor", k: int, *, dedup: bool = False) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Merge per-row candidates ``[F, c]`` into a running top-``k`` ``[F, k]`` (values, ids).

    One ``topk`` over the concatenation, no loop over features. Empty slots
    hold ``-inf`` / -1. With ``dedup`` an id present twice in a row (the same
    token seen again) is kept once, the newer value winning.
    """
    import torch

    cand_v = torch.cat([values, cand_values], dim=1)
    cand_r = torch.cat([rows, cand_rows], dim=1)
    if dedup:
        order = torch.argsort(cand_r, dim=1, stable=True)
        cand_r = cand_r.gather(1, order)
        cand_v = cand_v.gather(1, order)
        dup = (cand_r[:, 1:] == cand_r[:, :-1]) & (cand_r[:, 1:] >= 0)
        cand_v[:, :-1] = cand_v[:, :-1].masked_fill(dup, float("-inf"))
    top_v, top_i = cand_v.topk(k, dim=1)
    return top_v, torch.where(top_v > float("-inf"), cand_r.gather(1, top_i), -1)


def merge_topk_sparse(values: "torch.Tensor", rows: "torch.Tensor", feat: "torch.Tensor", cand_values: "torch.Tensor", cand_rows: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """:func:`merge_topk` for sparse candidates: flat ``(feat, value, row)`` triples.

    ``values``/``rows`` ``[F, k]`` hold each feature's running top-k (descending;
    ``-inf``/-1 empty). Candidate values must be finite and >= 0 (activations,
    random priorities). Cost is linear in the candidates, not in ``F`` x tokens:
    those not above their feature's current k-th value are dropped, the rest
    sorted once by (feature, value), each feature's first k scattered into a
    ``[F, k]`` block and merged with :func:`merge_topk`. No loop over features.
    """
    import torch

    F, k = values.shape
    keep = cand_values > values[:, k - 1][feat]
    if not bool(keep.any()):
        return values, rows
    feat, cand_values, cand_rows = feat[keep].long(), cand_values[keep].to(values.dtype), cand_rows[keep].to(rows.dtype)
    # non-negative float32 bit patterns sort like the values: key = (feature, -value)
    bits = cand_values.float().contiguous().view(torch.int32).long()
    order = torch.argsort((feat << 31) | (0x7FFFFFFF - bits), stable=True)
    f_s = feat[order]
    counts = torch.bincount(f_s, minlength=F)
    rank = torch.arange(len(f_s)) - (torch.cumsum(counts, 0) - counts)[f_s]
    sel = rank < k
    slot = f_s[sel] * k + rank[sel]
    block_v = torch.full_like(values, float("-inf"))
    block_r = torch.full_like(rows, -1)
    block_v.view(-1)[slot] = cand_values[order[sel]]
    block_r.view(-1)[slot] = cand_rows[order[sel]]
    return merge_topk(values, rows, block_v, block_r, k)


def values_at(sae: Any, acts: Any, hook: str, rows: "np.ndarray", feats: "np.ndarray") -> "np.ndarray":
    """``sae.encode(x[rows])[feats]`` pairwise for an activations file, encoding each distinct
    row once, in blocks of 4096."""
    import numpy as np
    import torch

    from saetool.artifacts.arrays import from_storage

    out = np.empty(len(rows), np.float32)
    if not len(rows):
        return out
    uniq, inv = np.unique(rows, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(0, len(uniq) + 4096, 4096))
    ds = acts.artifact.file[f"activations/{hook}"]
    for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if lo == hi:
            continue
        x = from_storage(_read_sorted(ds, uniq[b * 4096 : (b + 1) * 4096]), ds.attrs.get("saetool_dtype", "float32"))
        with torch.no_grad():
            f = sae.encode(x.to(device=sae.device, dtype=sae.dtype)).float().cpu()
        sel = order[lo:hi]
        out[sel] = f[torch.as_tensor(inv[sel] - b * 4096), torch.as_tensor(np.asarray(feats)[sel])].numpy()
    return out


def final_values(sae: Any, source: "ActivationSource", feats: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """The final SAE's activations ``[F, m]`` of features ``feats`` at global ``rows`` (-1: NaN)."""
    import numpy as np

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


def write_samples(fh: "h5py.File", collector: SampleCollector, source: "ActivationSource", *, scale: float = 1.0, model: str | None = None, sae: Any = None) -> None:
    """Store the collector's chosen features, with contexts, as ``fh['samples']``.

    With the final ``sae``, each stored token's value is recomputed with it (the
    collector saw the SAE of the step it collected at) and the samples re-sorted;
    ``values_from`` says which. Counts and means stay those of the collection steps."""
    import numpy as np

    feats = collector.chosen_features()
    m, ctx = collector.settings.per_feature, collector.settings.context
    values = collector.values[feats].cpu().numpy().astype(np.float32)
    rows = collector.rows[feats].cpu().numpy()
    valid = rows >= 0
    values[~valid] = np.nan
    values *= scale
    if sae is not None:
        values = final_values(sae, source, feats, rows)
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
        tok, seq, pos, contexts, cpos = _contexts(source, file_idx, local, ctx)
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


def _read_sorted(ds: "h5py.Dataset", index: "np.ndarray") -> "np.ndarray":
    """``ds[index]`` for any (unsorted, repeated) row indices, reading blocks of about 16 MB."""
    import numpy as np

    block = max(1, (1 << 22) // max(1, int(np.prod(ds.shape[1:]))))

    index = np.asarray(index, dtype=np.int64)
    out = np.empty((len(index),) + ds.shape[1:], dtype=ds.dtype)
    order = np.argsort(index, kind="stable")
    sorted_idx = index[order]
    start = 0
    while start < len(sorted_idx):
        lo = sorted_idx[start]
        stop = int(np.searchsorted(sorted_idx, lo + block, side="left"))
        hi = sorted_idx[stop - 1] + 1
        chunk = ds[lo:hi]
        out[order[start:stop]] = chunk[sorted_idx[start:stop] - lo]
        start = stop
    return out


def _contexts(source: "ActivationSource", file_idx: "np.ndarray", local: "np.ndarray", ctx: int) -> tuple["np.ndarray", ...]:
    import numpy as np

    n = len(local)
    tok = np.empty(n, np.int32)
    seq = np.empty(n, np.int64)
    pos = np.empty(n, np.int32)
    contexts = np.full((n, ctx), -1, np.int32)
    cpos = np.empty(n, np.int32)
    for i, f in enumerate(source.files):
        sel = np.flatnonzero(file_idx == i)
        if sel.size == 0:
            continue
        fh = f.artifact.file
        rows = local[sel]
        tok[sel] = _read_sorted(fh["tokens/token_ids"], rows)
        seq[sel] = _read_sorted(fh["tokens/seq_index"], rows)
        pos[sel] = _read_sorted(fh["tokens/position"], rows)
        windows = _read_sorted(fh["sequences/token_ids"], seq[sel])
        length = windows.shape[1]
        width = min(ctx, length)
        starts = np.clip(pos[sel] - (width * 3) // 4, 0, length - width)
        take = starts[:, None] + np.arange(width)[None, :]
        contexts[sel, :width] = np.take_along_axis(windows, take, axis=1)
        cpos[sel] = pos[sel] - starts
    return tok, seq, pos, contexts, cpos


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
        import numpy as np

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
    from saetool.artifacts.store import open_artifact

    with open_artifact(path, kind="sae") as art:
        if GROUP not in art.file:
            raise SaetoolError(f"{path} has no stored samples", hint="train with --collect-samples")
        g = art.file[GROUP]
        arrays = {name: g[name][()] for name in g}
        return StoredSamples(
            settings={**json.loads(_text(g.attrs.get("settings")) or "{}"), "values_from": _text(g.attrs.get("values_from")) or "collection steps"},
            sources=json.loads(_text(g.attrs.get("sources")) or "[]"),
            model=_text(g.attrs.get("model")) or "",
            d_sae=int(g.attrs.get("d_sae", 0)),
            collections=int(g.attrs.get("collections", 0)),
            tokens_seen=int(g.attrs.get("tokens_seen", 0)),
            arrays=arrays,
        )


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _load_tokenizer(model: str) -> Any:
    try:
        from saetool.models.registry import resolve_model

        return resolve_model(model).load_tokenizer()
    except Exception as exc:  # text is a convenience: export the token ids anyway
        warn(f"could not load the tokenizer of {model!r} ({type(exc).__name__}: {' '.join(str(exc).split())[:100]}); samples are written without text")
        return None


def export_samples_dir(sae_artifact_path: str | Path, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Write ``collection_summary.json`` and one ``feature_XXXXX_samples.json`` per
    stored feature into ``out_dir`` (created if missing). ``tokenizer``: a
    tokenizer, a model name, or ``None`` for the model the samples came from."""
    stored = read_samples(sae_artifact_path)
    if tokenizer is None or isinstance(tokenizer, str):
        name = tokenizer or stored.model
        tokenizer = _load_tokenizer(name) if name else None
    decode = (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) if tokenizer is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = stored.features(decode)
    for rec in records:
        feat = rec["statistics"]["feature_idx"]
        write_atomic(out / f"feature_{feat:05d}_samples.json", json.dumps(rec, indent=2))
    s = stored.settings
    summary = {
        "sae": str(Path(sae_artifact_path).resolve()),
        "model": stored.model or None,
        "total_features": stored.d_sae,
        "num_features_saved": len(records),
        "collection_frequency": s.get("every"),
        "max_samples_per_feature": s.get("per_feature"),
        "sample_context_size": s.get("context"),
        "sample_activation_threshold": s.get("threshold"),
        "collections": stored.collections,
        "values_from": stored.settings.get("values_from"),
        "tokens_seen": stored.tokens_seen,
        "sources": stored.sources,
        "features": [rec["statistics"] for rec in records],
    }
    write_atomic(out / "collection_summary.json", json.dumps(summary, indent=2))
    from saetool.interpret.samples_view import write_samples_report

    write_samples_report(out)
    return out


class SamplesExporter(SAEExporter):
    """``export --format samples`` (registered in saetool.builtins.sae)."""

    name = "samples"
    description = "the samples stored in a saetool 'sae' artifact, as a folder of JSON files and a report"

    def check(self, sae: Path) -> None:
        from saetool.sae.io import is_sae_artifact

        if not is_sae_artifact(sae):
            raise SaetoolError(f"--format samples needs a saetool 'sae' artifact, and {sae} is not one", hint="pass the .h5 file `saetool train` wrote")

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        export_samples_dir(sae, out)
        return f"samples of {sae}"
