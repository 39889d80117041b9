"""``export --format neuronpedia``: a ``features`` artifact as Neuronpedia's feature-dashboard batch files.

Neuronpedia takes SAE dashboards as the JSON batches SAEDashboard's ``neuronpedia-runner``
writes (``sae_dashboard/neuronpedia/neuronpedia_dashboard.py``): a folder with
``batch-N.json`` files, each ``{"model_id", "layer", "sae_set", "features": [...]}``, one
object per feature with these keys:

- ``feature_index``; ``frac_nonzero`` (density); ``freq_hist_data_bar_values`` (bin centres)
  and ``freq_hist_data_bar_heights`` (counts) of the activation histogram;
- ``pos_str``/``pos_values`` and ``neg_str``/``neg_values``: the tokens whose logits the
  decoder direction raises / lowers most, and by how much (``interpret``'s logit effects);
- ``correlated_features_indices``/``_l1``/``_pearson``: the nearest features by decoder
  cosine (saetool's ``neighbours``; the cosine goes where SAEDashboard puts its cosine);
- ``neuron_alignment_indices``/``_values``/``_l1``: the residual dimensions the decoder
  direction weighs most, their weights and shares of its L1 norm;
- ``activations``: windows, each ``{"bin_min", "bin_max", "bin_contains", "tokens",
  "values"}``: the top examples (``bin_min = -1``, ``bin_max`` the feature's max,
  ``bin_contains = -1``, as SAEDashboard marks its top group) and the interval samples
  (``bin_min``/``bin_max`` the interval's edges, ``bin_contains`` the share of the
  feature's active tokens in it, read off the histogram);
- ``n_prompts_total``, ``n_tokens_in_prompt``, ``dataset``; ``logits_hist_*``,
  ``correlated_neurons_*`` and ``decoder_weights_dist`` are empty (saetool does not
  compute them).

Beside the batches: ``run_settings.json`` (what made them) and ``skipped_indexes.json``
(the features not reported, as SAEDashboard lists the ones it skips), and
``explanations.json`` with saetool's labels and scores. Neuronpedia's converter
(SAEDashboard's ``neuronpedia_export``) turns such a folder into its bulk-import layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

import saetool
from saetool.artifacts.jsonable import finite
from saetool.artifacts.store import read_header
from saetool.errors import SaetoolError
from saetool.interpret.records import Example, FeatureRecord
from saetool.interpret.report import interval_index, interval_shares
from saetool.interpret.store import FeaturesFile
from saetool.models.hooks import layer_of_hook
from saetool.sae.format_api import ExportSettings, SAEExporter

#: features per batch file (SAEDashboard's default --n-features-per-batch is 128)
FEATURES_PER_BATCH = 128
#: residual dimensions listed per feature in neuron_alignment_*
ALIGNMENT_TOP = 3


def _round(values: Sequence[float | None], digits: int = 3) -> list[float]:
    """Rounded as SAEDashboard rounds; a missing value (None, NaN: no stored activation) is 0."""
    return [0.0 if v is None or not math.isfinite(float(v)) else round(float(v), digits) for v in values]


def _window(example: Example) -> tuple[list[str], list[float]]:
    """A window's tokens and per-token values, padding dropped, missing values as 0."""
    keep = [i for i, t in enumerate(example.token_ids) if t >= 0]
    values = example.values or [0.0] * len(example.token_ids)
    return [example.tokens[i] for i in keep], _round([values[i] for i in keep])


def _activations(record: FeatureRecord) -> list[dict[str, Any]]:
    out = []
    for ex in record.top_examples:
        tokens, values = _window(ex)
        out.append({"bin_min": -1, "bin_max": round(record.max_activation, 3), "bin_contains": -1, "tokens": tokens, "values": values})
    edges = record.interval_edges
    shares, _ = interval_shares(record)
    for ex in record.interval_examples:
        tokens, values = _window(ex)
        i = interval_index(record, ex.activation)
        lo, hi = (edges[i], edges[i + 1]) if i is not None else (0.0, 0.0)
        share = round(shares[i], 4) if i is not None and shares else 0.0
        out.append({"bin_min": round(lo, 3), "bin_max": round(hi, 3), "bin_contains": share, "tokens": tokens, "values": values})
    return out


def feature_dashboard(record: FeatureRecord, direction: Sequence[float] | None, *, n_prompts: int, context: int, dataset: str) -> dict[str, Any]:
    """One feature in SAEDashboard's ``NeuronpediaDashboardFeature`` layout."""
    edges = record.histogram_edges
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    align_idx: list[int] = []
    align_val: list[float] = []
    align_l1: list[float] = []
    if direction is not None and len(direction):
        d = np.asarray(direction, dtype=np.float64)
        order = np.argsort(-np.abs(d))[:ALIGNMENT_TOP]
        l1 = float(np.abs(d).sum()) or 1.0
        align_idx = [int(i) for i in order]
        align_val = _round(d[order])
        align_l1 = _round(np.abs(d[order]) / l1)
    return {
        "feature_index": int(record.index),
        "neuron_alignment_indices": align_idx,
        "neuron_alignment_values": align_val,
        "neuron_alignment_l1": align_l1,
        "correlated_neurons_indices": [],
        "correlated_neurons_l1": [],
        "correlated_neurons_pearson": [],
        "correlated_features_indices": [int(i) for i, _ in record.neighbours],
        "correlated_features_l1": _round([c for _, c in record.neighbours]),
        "correlated_features_pearson": [],
        "neg_str": [t for t, _ in record.logits_negative],
        "neg_values": _round([v for _, v in record.logits_negative]),
        "pos_str": [t for t, _ in record.logits_positive],
        "pos_values": _round([v for _, v in record.logits_positive]),
        "frac_nonzero": float(record.density),
        "freq_hist_data_bar_values": _round(centres),
        "freq_hist_data_bar_heights": [float(c) for c in record.histogram_counts],
        "logits_hist_data_bar_heights": [],
        "logits_hist_data_bar_values": [],
        "n_prompts_total": int(n_prompts),
        "n_tokens_in_prompt": int(context),
        "dataset": dataset,
        "decoder_weights_dist": [],
        "activations": _activations(record),
    }


def _source_windows(prov: dict[str, Any]) -> tuple[int, str]:
    """(tokens per window, corpus) of the activations the features were read from, when still there."""
    for parent in prov.get("parents", []):
        if parent.get("kind") == "activations" and Path(parent.get("path", "")).is_file():
            try:
                header = read_header(parent["path"])
                with h5py.File(parent["path"], "r") as fh:
                    width = int(fh.attrs.get("context_size", 0))
                corpus = header["provenance"].get("corpus") or ""
                return width, corpus if isinstance(corpus, str) else json.dumps(corpus)
            except Exception:  # moved, unreadable: leave them unknown
                break
    return 0, ""


def _set_name(hook: str) -> str:
    for key, name in (("resid", "res"), ("mlp", "mlp"), ("attn", "att"), ("hook_z", "att")):
        if key in hook:
            return f"{name}-saetool"
    return "saetool"


def export_neuronpedia(features: str | Path, out: Path, *, model_id: str | None = None, sae_set: str | None = None, per_batch: int = FEATURES_PER_BATCH) -> dict[str, Any]:
    """Write the batch folder ``out`` (new) for the ``features`` artifact; returns run settings."""
    with FeaturesFile(features) as ff:
        records = ff.records()
        directions = ff.directions([r.index for r in records]) if records else None
        hook, d_sae, n_tokens, settings = ff.hook, ff.d_sae, ff.n_tokens, ff.settings
        model = model_id or ff.model or ""
        prov = ff.provenance
    layer = layer_of_hook(hook)
    if layer is None:
        raise SaetoolError(f"{features} is for hook {hook}, which has no layer: Neuronpedia sources are per layer", hint="export features of an SAE at a blocks.N hook")
    context, dataset = _source_windows(prov)
    n_prompts = n_tokens // context if context else 0
    sae_set = sae_set or _set_name(hook)
    out.mkdir()
    for b in range(0, max(len(records), 1), per_batch):
        chunk = records[b : b + per_batch]
        if not chunk:
            break
        feats = [feature_dashboard(r, None if directions is None else directions[b + i], n_prompts=n_prompts, context=context, dataset=dataset) for i, r in enumerate(chunk)]
        batch = {"model_id": model, "layer": layer, "sae_set": sae_set, "features": feats}
        (out / f"batch-{b // per_batch}.json").write_text(json.dumps(finite(batch), allow_nan=False))
    reported = {r.index for r in records}
    (out / "skipped_indexes.json").write_text(json.dumps({"model_id": model, "layer": str(layer), "sae_set": sae_set, "skipped_indexes": [i for i in range(d_sae) if i not in reported]}))
    explanations = [{"index": r.index, "description": r.label.text, "typeName": r.label.labeler, "score": r.label.score} for r in records if r.label is not None]
    (out / "explanations.json").write_text(json.dumps(finite({"model_id": model, "layer": str(layer), "sae_set": sae_set, "explanations": explanations}), allow_nan=False))
    run = {
        "model_id": model, "layer": layer, "sae_set": sae_set, "hook": hook, "d_sae": d_sae, "n_features": len(records),
        "n_features_per_batch": per_batch, "n_prompts_total": n_prompts, "n_tokens_in_prompt": context, "dataset": dataset,
        "source": str(Path(features).resolve()), "saetool_version": saetool.__version__,
    }
    (out / "run_settings.json").write_text(json.dumps(finite(run), indent=2, allow_nan=False) + "\n")
    return run


class NeuronpediaExporter(SAEExporter):
    """``export FEATURES --format neuronpedia`` (registered in saetool.builtins.interpret)."""

    name = "neuronpedia"
    description = "a features artifact (saetool interpret) as Neuronpedia's feature-dashboard batch files (batch-N.json)"

    def check(self, sae: Path) -> None:
        try:
            kind = read_header(sae)["saetool_kind"] if Path(sae).is_file() else None
        except Exception:  # not an artifact
            kind = None
        if kind != "features":
            raise SaetoolError(f"--format neuronpedia needs a 'features' artifact, and {sae} is not one", hint="run saetool interpret SAE ACTS -o features.h5 and export that")

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        run = export_neuronpedia(sae, out, model_id=settings.model_name, sae_set=settings.set_name)
        return f"Neuronpedia dashboards for {run['n_features']} features of layer {run['layer']} ({run['sae_set']}), model {run['model_id'] or '?'}"
