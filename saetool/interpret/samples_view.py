"""Seed 004's samples folder (and an SAE artifact's stored samples) read as feature records.

``saetool export --format samples`` writes ``collection_summary.json`` and one
``feature_XXXXX_samples.json`` per feature; :class:`SamplesSource` reads that
folder, or the ``samples`` group of the ``sae`` artifact ``train
--collect-samples`` wrote, and offers what the ``features`` commands use from a
``features`` artifact (records, statistics, decoder directions with ``--sae``).
What a samples folder lacks is said, not invented: no held-out or negative
examples, no neighbours without the SAE, and the histogram is of the stored
top samples only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from saetool.artifacts.files import write_atomic
from saetool.artifacts.jsonable import finite
from saetool.errors import SaetoolError
from saetool.interpret.records import Example, FeatureRecord
from saetool.interpret.report import write_report
from saetool.models.registry import tokenizer_or_none
from saetool.sae.format_api import ExportSettings, SAEExporter
from saetool.sae.io import is_sae_artifact, load_sae
from saetool.sae.quality import quality_warning
from saetool.train.samples import SUMMARY_NOTES, read_samples

SUMMARY = "collection_summary.json"
REPORT = "interpretability_report.md"


def sample_file(feature: int) -> str:
    return f"feature_{int(feature):05d}_samples.json"


def is_samples_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / SUMMARY).is_file()


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SaetoolError(f"cannot read {path}: {' '.join(str(exc).split())[:120]}", hint="export the samples again with saetool export --format samples") from None


def record_from_sample_json(data: dict[str, Any], *, tokens_seen: int, decode: Any = None, bins: int = 16) -> FeatureRecord:
    """A :class:`FeatureRecord` from one ``feature_XXXXX_samples.json`` object."""
    stats = data.get("statistics") or {}
    if "feature_idx" not in stats:
        raise SaetoolError("a samples file has no statistics.feature_idx", hint="export the samples again with saetool export --format samples")
    examples = []
    for s in data.get("top_samples") or []:
        ids = [int(t) for t in s.get("context_tokens") or []]
        texts = s.get("context_token_texts")
        if not isinstance(texts, list) or len(texts) != len(ids):
            texts = [decode([i]) if decode else f"<{i}>" for i in ids]
        pos = int(s.get("context_position", -1))
        if not 0 <= pos < len(ids):
            pos = max(0, min(len(ids) - 1, pos))
        values = [None] * len(ids)
        if ids:
            values[pos] = float(s["activation_value"])
        examples.append(Example(activation=float(s["activation_value"]), token_ids=ids, tokens=[str(t) for t in texts], position=pos, seq_index=int(s.get("seq_index", -1)), token_position=int(s.get("position", -1)), values=values))
    examples.sort(key=lambda e: -e.activation)
    vals = np.array([e.activation for e in examples], np.float64)
    top = float(vals.max()) if len(vals) else 0.0
    counts, edges = np.histogram(vals, bins=bins, range=(0.0, top if top > 0 else 1.0)) if len(vals) else (np.zeros(bins, int), np.linspace(0, 1, bins + 1))
    count = int(stats.get("activation_count", 0))
    tokens = [e.token for e in examples]
    ranked = sorted(set(tokens), key=lambda t: (-tokens.count(t), tokens.index(t)))
    around = [t for e in examples for j, t in enumerate(e.tokens) if j != e.position]
    ranked_around = sorted(set(around), key=lambda t: (-around.count(t), around.index(t)))
    return FeatureRecord(
        index=int(stats["feature_idx"]),
        density=count / tokens_seen if tokens_seen else float("nan"),
        max_activation=float(stats.get("max_activation", top)),
        mean_activation=float(stats.get("mean_activation", float("nan"))),
        histogram_edges=[float(x) for x in edges],
        histogram_counts=[int(c) for c in counts],
        top_examples=examples,
        top_tokens=[(t, tokens.count(t)) for t in ranked[:10]],
        context_tokens=[(t, around.count(t)) for t in ranked_around[:10]],
    )


class SamplesSource:
    """A samples folder or an ``sae`` artifact's ``samples`` group, read like a features artifact."""

    def __init__(self, path: str | Path) -> None:

        self.path = Path(path)
        self.sae_path: Path | None = None
        if self.path.is_dir():
            if not is_samples_folder(self.path):
                raise SaetoolError(f"{self.path} is a folder without {SUMMARY}", hint="pass a features artifact, or a folder written by saetool export --format samples")
            summary = _load_json(self.path / SUMMARY)
            self.summary = summary
            self.d_sae = int(summary.get("total_features") or 0)
            self.n_tokens = int(summary.get("tokens_seen") or 0)
            self.model = summary.get("model")
            sae = summary.get("sae")
            self.sae_path = Path(sae) if sae else None
            stored = [int(f["feature_idx"]) for f in summary.get("features") or []]
            self._raw: dict[int, dict[str, Any]] = {}
            self._decode = None
        else:
            stored_samples = read_samples(self.path)
            self.sae_path = self.path
            self.d_sae, self.n_tokens, self.model = stored_samples.d_sae, stored_samples.tokens_seen, stored_samples.model
            tok = tokenizer_or_none(self.model) if self.model else None
            self._decode = (lambda ids: tok.decode(ids, skip_special_tokens=False)) if tok is not None else None
            self._raw = {rec["statistics"]["feature_idx"]: rec for rec in stored_samples.features(self._decode)}
            stored = list(self._raw)
            self.summary = {k: stored_samples.settings.get(k) for k in ("values_from", "dropped_samples", "dropped_features")}
        self.index = __import__("numpy").asarray(stored, dtype="int64")
        self._stored = set(stored)

    # -- the FeaturesFile interface the features commands use ------------------------------
    def check_features(self, features: Iterable[int]) -> list[int]:
        out = []
        for f in features:
            f = int(f)
            if not 0 <= f < max(self.d_sae, 1):
                raise SaetoolError(f"feature {f} is out of range: the SAE has {self.d_sae} features (0..{self.d_sae - 1})")
            if f not in self._stored:
                raise SaetoolError(f"feature {f} has no samples in {self.path} ({len(self._stored)} features stored)", hint="train with a larger --sample-features, or pick a stored feature")
            out.append(f)
        return out

    def _raw_record(self, f: int) -> dict[str, Any]:
        if f not in self._raw:
            self._raw[f] = _load_json(self.path / sample_file(f))
        return self._raw[f]

    def records(self, features: Sequence[int] | None = None) -> list[FeatureRecord]:
        feats = [int(f) for f in self.index.tolist()] if features is None else self.check_features(features)
        return [record_from_sample_json(self._raw_record(f), tokens_seen=self.n_tokens, decode=self._decode) for f in feats]

    def stats(self) -> dict[str, Any]:
        out = {k: np.full(max(self.d_sae, 1), np.nan) for k in ("count", "density", "max", "mean", "std")}
        for r in self.records():
            stats = self._raw_record(r.index)["statistics"]
            out["count"][r.index] = stats.get("activation_count", np.nan)
            out["density"][r.index] = r.density
            out["max"][r.index] = r.max_activation
            out["mean"][r.index] = r.mean_activation
            vals = [e.activation for e in r.top_examples]
            out["std"][r.index] = float(np.std(vals)) if vals else np.nan
        return out

    def note(self, record: FeatureRecord) -> str:
        """Where a record's numbers come from (the terminal views print it with them)."""
        return (
            f"from samples collected during training: density and mean over the {self.n_tokens} tokens of the collection steps; "
            f"the max, histogram and std over the {len(record.top_examples)} stored top samples; "
            f"sample values from the {self.summary.get('values_from') or 'collection steps'} "
            "(the samples were ranked by the SAE as it was while collecting, so the final SAE's strongest activations "
            "over all the tokens can lie elsewhere: saetool interpret finds those)"
        )

    def check_sae(self, sae_path: str | Path) -> None:
        return None

    def directions(self, features: Sequence[int], sae: str | Path | None = None) -> Any:
        """Unit decoder rows; needs the SAE (``--sae``, or the one the samples name, if it exists)."""
        where = Path(sae) if sae else self.sae_path
        if where is None or not where.exists():
            raise SaetoolError(f"{self.path} holds no decoder directions and its SAE ({where}) is not there", hint="pass --sae SAE")
        W = load_sae(str(where), "cpu").W_dec.detach().float().numpy()[list(features)]
        return W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)

    def close(self) -> None:
        return None

    def __enter__(self) -> "SamplesSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_samples_report(folder: str | Path, *, examples: int = 10) -> Path:
    """Seed 004's ``interpretability_report.md`` in a samples folder, from its own files."""
    src = SamplesSource(folder)
    records = src.records()
    meta = {
        "sae": src.summary.get("sae"),
        "model": src.model,
        "features stored": f"{len(records)} of {src.d_sae}",
        "tokens seen at collection steps": src.n_tokens,
        "sample values": src.summary.get("values_from") or "collection steps",
        "dropped": _dropped_text(src.summary),
        "statistics (count, mean, density)": "collection steps during training",
    }
    note = quality_warning(src.summary.get("sae") or "")
    if note is not None:
        meta = {"warning": note, **meta}
    return write_report(records, Path(folder) / REPORT, title="Interpretability report: samples collected during training", meta=meta, examples=examples)


def _dropped_text(summary: dict[str, Any]) -> str | None:
    """What recomputing with the final SAE removed, in words (``None`` when nothing)."""
    samples, features = int(summary.get("dropped_samples") or 0), int(summary.get("dropped_features") or 0)
    if not samples:
        return None
    return (f"{samples} collected samples where the final SAE's activation is at or below the threshold"
            + (f", and {features} features left without samples" if features else ""))


def export_samples_dir(sae_artifact_path: str | Path, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Write ``collection_summary.json`` and one ``feature_XXXXX_samples.json`` per
    stored feature into ``out_dir`` (created if missing). ``tokenizer``: a
    tokenizer, a model name, or ``None`` for the model the samples came from."""
    stored = read_samples(sae_artifact_path)
    if tokenizer is None or isinstance(tokenizer, str):
        name = tokenizer or stored.model
        tokenizer = tokenizer_or_none(name) if name else None
    decode = (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) if tokenizer is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = stored.features(decode)
    for rec in records:
        feat = rec["statistics"]["feature_idx"]
        write_atomic(out / f"feature_{feat:05d}_samples.json", json.dumps(finite(rec), indent=2, allow_nan=False))
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
        "dropped_samples": stored.settings.get("dropped_samples", 0),
        "dropped_features": stored.settings.get("dropped_features", 0),
        "statistics_from": stored.settings.get("statistics_from"),
        "notes": SUMMARY_NOTES,
        "tokens_seen": stored.tokens_seen,
        "sources": stored.sources,
        "features": [rec["statistics"] for rec in records],
    }
    write_atomic(out / "collection_summary.json", json.dumps(finite(summary), indent=2, allow_nan=False))
    write_samples_report(out)
    return out


class SamplesExporter(SAEExporter):
    """``export --format samples`` (registered in saetool.builtins.sae)."""

    name = "samples"
    description = "the samples stored in a saetool 'sae' artifact, as a folder of JSON files and a report"

    def check(self, sae: Path) -> None:
        if not is_sae_artifact(sae):
            raise SaetoolError(f"--format samples needs a saetool 'sae' artifact, and {sae} is not one", hint="pass the .h5 file `saetool train` wrote")

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        export_samples_dir(sae, out)
        return f"samples of {sae}"
