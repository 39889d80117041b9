"""Seed 002's per-layer interpretation file: ``layer_{L}_interpretations.json``.

One JSON object per layer, written beside the ``features`` artifact by
``saetool interpret --json-dir DIR``: the layer and hook, which features are
dead, and per reported feature (keyed by its id) the fields the seed's
``analyze_sae``/``print_feature_summary`` use: ``feature_id``, ``is_dead``,
``activation_frequency``, ``max_activation``, ``mean_activation``,
``top_examples`` (text, token, activation, context), ``common_tokens`` (the
activating tokens) and ``context_tokens`` (the tokens around them), with the
label and its scores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from saetool.artifacts.jsonable import finite
from saetool.errors import SaetoolError
from saetool.interpret.report import write_text_atomic
from saetool.interpret.store import FeaturesFile
from saetool.models.hooks import layer_of_hook


def layer_of(hook: str) -> str:
    """``blocks.15.hook_resid_post`` -> ``"15"`` (the hook name, made file-safe, without a layer)."""
    layer = layer_of_hook(hook or "")
    return str(layer) if layer is not None else re.sub(r"[^A-Za-z0-9_.-]", "_", hook or "unknown")


def interpretations(features_path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(layer, data)`` for a ``features`` artifact."""
    with FeaturesFile(features_path) as ff:
        records = ff.records()
        summary = ff.summary()
        layer = layer_of(ff.hook)
        data: dict[str, Any] = {
            "layer": int(layer) if layer.isdigit() else layer,
            "hook": ff.hook,
            "model": ff.model,
            "features_artifact": str(Path(features_path).resolve()),
            "n_features": ff.d_sae,
            "n_tokens": ff.n_tokens,
            "dead_features": summary.dead,
            "dense_features": [f for f, _ in summary.dense],
            "dense_threshold": summary.dense_threshold,
            "features": {},
        }
    for r in records:
        data["features"][str(r.index)] = {
            "feature_id": r.index,
            "is_dead": r.dead,
            "activation_frequency": r.density,
            "max_activation": r.max_activation,
            "mean_activation": r.mean_activation,
            "top_examples": [{"text": e.text, "token": e.token, "activation": e.activation, "position": e.token_position, "sequence": e.seq_index} for e in r.top_examples],
            "common_tokens": [[t, c] for t, c in r.top_tokens],
            "context_tokens": [[t, c] for t, c in r.context_tokens],
            "label": r.label.text if r.label else None,
            "scores": {k: v for k, v in ((r.label.details or {}).items() if r.label else []) if isinstance(v, dict) and "score" in v},
            "neighbours": [[i, c] for i, c in r.neighbours],
        }
    return layer, data


def interpretations_path(out_dir: str | Path, hook: str) -> Path:
    """Where ``--json-dir OUT_DIR`` puts the file for an SAE at ``hook``."""
    return Path(out_dir) / f"layer_{layer_of(hook)}_interpretations.json"


def write_interpretations_json(features_path: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir/layer_{L}_interpretations.json`` (atomically); returns its path.
    The caller checks the path first (:func:`saetool.artifacts.outputs.check_outputs`)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SaetoolError(f"{out_dir} is not a folder", hint="give --json-dir a folder")
    _, data = interpretations(features_path)
    return write_text_atomic(interpretations_path(out_dir, data["hook"]), json.dumps(finite(data), indent=1, default=_null, allow_nan=False))


def _null(value: Any) -> Any:
    return None
