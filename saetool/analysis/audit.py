"""``saetool audit``: check a set of artifacts before an analysis uses them.

Per file: readable, registered kind, required datasets and attributes,
kind-specific consistency (lengths, ranges, feature ids within the SAE's
width), counts per layer and per condition. Across files: one model, the same
conditions in every completions artifact, and joins on shared keys (selected
features ``L{layer}-{id}`` vs SAEs, activations, steered features) with the
joinable count. Nothing raises for a bad file: it becomes a failed check.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from saetool.analysis.names import feature_name, parse_feature_name
from saetool.artifacts.kinds import get_kind
from saetool.artifacts.store import attr_value, open_artifact
from saetool.errors import SaetoolError
from saetool.models.hooks import layer_of_hook
from saetool.sae.config import SAEConfig
from saetool.sae.io import load_sae, same_model

SHOW_UNMATCHED = 10


@dataclass
class Check:
    check: str
    ok: bool
    detail: str = ""


@dataclass
class FileReport:
    path: str
    kind: str | None = None
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    #: join keys this file offers: "features" (L{l}-{id}), "sae_layers" {layer: d_sae},
    #: "act_layers" [layers], "steered" [feature names], "conditions" [names]
    keys: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "ok": self.ok, "model": self.model, "checks": [asdict(c) for c in self.checks], "counts": self.counts}


@dataclass
class Join:
    name: str
    left: str
    right: str
    n_left: int
    n_right: int
    joinable: int
    unmatched: list[str]
    ok: bool
    detail: str = ""


def _text(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _json_attr(fh: Any, name: str, default: Any = None) -> Any:
    return attr_value(fh.attrs[name]) if name in fh.attrs else default


# -- one file ----------------------------------------------------------------------------------------
def audit_file(path: str | Path) -> FileReport:
    """Every check on one file; never raises for a bad file."""
    p = Path(path)
    rep = FileReport(str(p))
    if p.is_dir():
        return _audit_sae_folder(p, rep)

    try:
        art = open_artifact(p)
    except SaetoolError as exc:
        rep.add("readable", False, exc.one_line())
        return rep
    except Exception as exc:  # a file h5py chokes on in a new way is still a failed check
        rep.add("readable", False, f"{p}: {type(exc).__name__}: {exc}")
        return rep
    with art:
        rep.add("readable", True, f"{art.kind} schema {art.schema_version}")
        rep.kind = art.kind
        rep.model = art.provenance.get("model") or _json_attr(art.file, "model") or None
        spec = get_kind(art.kind)
        fh = art.file
        missing = [ds for ds in spec.required_datasets if not _has_dataset(fh, ds)]
        rep.add("required datasets", not missing, "missing: " + ", ".join(missing) if missing else f"{len(spec.required_datasets)} present")
        missing_attrs = [a for a in spec.required_attrs if a not in fh.attrs]
        rep.add("required attributes", not missing_attrs, "missing: " + ", ".join(missing_attrs) if missing_attrs else f"{len(spec.required_attrs)} present")
        rep.add("complete", bool(fh.attrs.get("complete", True)), "" if fh.attrs.get("complete", True) else "the writer did not commit it")
        if missing or missing_attrs:
            return rep
        checker = KIND_CHECKS.get(art.kind)
        if checker is not None:
            try:
                checker(fh, rep)
            except Exception as exc:  # malformed content: report, do not crash
                rep.add(f"{art.kind} content", False, f"{type(exc).__name__}: {exc}")
    return rep


def _has_dataset(fh: Any, ds: str) -> bool:
    if "{" not in ds:
        return ds in fh
    group = ds.split("{", 1)[0].rstrip("/")
    return (group in fh and len(fh[group]) > 0) if group else True


def _audit_sae_folder(p: Path, rep: FileReport) -> FileReport:
    try:
        sae = load_sae(p)
    except SaetoolError as exc:
        rep.add("readable", False, exc.one_line())
        return rep
    except Exception as exc:
        rep.add("readable", False, f"{p}: {type(exc).__name__}: {exc}")
        return rep
    rep.add("readable", True, "SAE folder")
    rep.kind = "sae"
    _sae_keys(sae.cfg, rep)
    return rep


def _sae_keys(cfg: Any, rep: FileReport) -> None:
    layer = layer_of_hook(cfg.hook)
    rep.model = rep.model or cfg.model
    rep.counts.update({"layer": layer, "hook": cfg.hook, "d_sae": cfg.d_sae, "d_in": cfg.d_in})
    if rep.add("layer", layer is not None, f"layer {layer} ({cfg.hook})" if layer is not None else f"no blocks.N in hook {cfg.hook!r}"):
        rep.keys["sae_layers"] = {layer: int(cfg.d_sae)}


def _check_sae(fh: Any, rep: FileReport) -> None:
    cfg = SAEConfig.from_dict(_json_attr(fh, "config"))
    shapes = {name: tuple(fh[f"weights/{name}"].shape) for name in ("W_enc", "W_dec") if f"weights/{name}" in fh}
    want = {"W_enc": (cfg.d_in, cfg.d_sae), "W_dec": (cfg.d_sae, cfg.d_out)}
    bad = [f"{k} {v} != {want[k]}" for k, v in shapes.items() if v != want[k]]
    rep.add("weight shapes", not bad and len(shapes) == 2, "; ".join(bad) or ("ok" if len(shapes) == 2 else "weights missing"))
    _sae_keys(cfg, rep)


def _check_activations(fh: Any, rep: FileReport) -> None:
    hooks = _json_attr(fh, "hooks", [])
    n = int(fh.attrs["n_tokens"])
    short = [h for h in hooks if f"activations/{h}" not in fh or fh[f"activations/{h}"].shape[0] < n]
    short += [ds for ds in ("tokens/token_ids", "tokens/seq_index", "tokens/position") if fh[ds].shape[0] < n]
    rep.add("row counts", not short, "fewer than n_tokens rows: " + ", ".join(short) if short else f"{n} rows in every dataset")
    per_layer: dict[str, int] = {}
    for h in hooks:
        layer = layer_of_hook(h)
        if layer is not None:
            per_layer[str(layer)] = n
    rep.counts.update({"n_tokens": n, "hooks": hooks, "tokens_per_layer": per_layer})
    rep.keys["act_layers"] = sorted(int(k) for k in per_layer)


def _check_completions(fh: Any, rep: FileReport) -> None:
    conds = _json_attr(fh, "conditions", []) or list(fh["completions"])
    n = int(fh["prompts"].shape[0])
    missing = [c for c in conds if f"completions/{c}" not in fh]
    wrong = [c for c in conds if f"completions/{c}" in fh and fh[f"completions/{c}"].shape[0] != n]
    if "metrics" in fh:
        wrong += [f"metrics/{c}/{m}" for c in fh["metrics"] for m in fh[f"metrics/{c}"] if fh[f"metrics/{c}/{m}"].shape[0] != n]
    rep.add("conditions present", not missing, "missing: " + ", ".join(missing) if missing else ", ".join(conds))
    rep.add("rows per condition", not wrong, f"not {n} rows: " + ", ".join(wrong) if wrong else f"{n} prompts")
    status = str(_text(fh.attrs.get("status", "ok")))
    rep.add("status", status == "ok", status if status == "ok" else f"{status}: {_text(fh.attrs.get('error', ''))}")
    per_cond = {}
    for c in conds:
        if f"completions/{c}" in fh:
            texts = fh[f"completions/{c}"].asstr()[()]
            per_cond[c] = {"n": int(len(texts)), "non_empty": int(sum(1 for t in texts if t.strip()))}
    splits = Counter(fh["splits"].asstr()[()]) if "splits" in fh else Counter()
    settings = _json_attr(fh, "settings", {}) or {}
    rep.counts.update({"n_prompts": n, "per_condition": per_cond, "per_split": {k or "(none)": v for k, v in splits.items()}})
    rep.keys["conditions"] = list(conds)
    layer, feature = settings.get("layer"), settings.get("feature")
    if layer is None and settings.get("hook"):
        layer = layer_of_hook(settings["hook"])
    if feature is not None and settings.get("feature_layer") is not None:
        layer = settings["feature_layer"]  # steered with a `vector from-sae` file: the feature's own layer
    if feature is not None and layer is not None:
        rep.keys["steered"] = [feature_name(layer, feature)]
        rep.counts["steered_feature"] = feature_name(layer, feature)
    if layer is not None:
        rep.counts["layer"] = int(layer)


def _check_vector(fh: Any, rep: FileReport) -> None:
    d = int(_json_attr(fh, "d"))
    rep.add("vector width", fh["vector"].shape == (d,), f"shape {fh['vector'].shape}, d={d}")
    layer = _json_attr(fh, "layer", -1)
    details = _json_attr(fh, "details", {}) or {}
    rep.counts.update({"layer": layer, "method": _json_attr(fh, "method")})
    if isinstance(details, dict) and details.get("feature") is not None and layer not in (None, -1):
        rep.keys["steered"] = [feature_name(layer, details["feature"])]


def _check_selection(fh: Any, rep: FileReport) -> None:
    names = list(fh["name"].asstr()[()])
    cols = ("layer", "feature", "d", "mean_a", "mean_b", "n_a", "n_b")
    lengths = {c: fh[c].shape[0] for c in cols}
    bad_len = [c for c, v in lengths.items() if v != len(names)]
    if not rep.add("column lengths", not bad_len, f"not {len(names)} rows: " + ", ".join(bad_len) if bad_len else f"{len(names)} rows"):
        return
    layers, feats, d = fh["layer"][()], fh["feature"][()], fh["d"][()]
    wrong = [n for n, l, f in zip(names, layers, feats) if n != feature_name(l, f)]
    rep.add("names are L{layer}-{id}", not wrong, "mismatched: " + ", ".join(wrong[:SHOW_UNMATCHED]) if wrong else "")
    dup = [n for n, c in Counter(names).items() if c > 1]
    rep.add("unique features", not dup, "duplicates: " + ", ".join(dup[:SHOW_UNMATCHED]) if dup else "")
    d_sae = {int(k): int(v) for k, v in (_json_attr(fh, "d_sae", {}) or {}).items()}
    out = [n for n, l, f in zip(names, layers, feats) if int(l) in d_sae and not 0 <= int(f) < d_sae[int(l)]]
    nolayer = sorted({int(l) for l in layers} - set(d_sae))
    rep.add("feature ids in range", not out and not nolayer, ("out of range: " + ", ".join(out[:SHOW_UNMATCHED]) if out else "") + (f" layers without d_sae: {nolayer}" if nolayer else ""))
    rep.add("d is a number", not np.isnan(d).any(), f"{int(np.isnan(d).sum())} NaN" if np.isnan(d).any() else f"{int((~np.isfinite(d)).sum())} infinite")
    rep.counts.update({"n_features": len(names), "per_layer": {str(k): int(v) for k, v in sorted(Counter(int(l) for l in layers).items())}, "unit": _json_attr(fh, "unit")})
    rep.keys["features"] = names
    rep.keys["selection_d_sae"] = d_sae


def _check_tokens(fh: Any, rep: FileReport) -> None:
    cols = ("token_id", "token", "count_a", "count_b", "log_odds", "z", "p", "q")
    n = fh["token_id"].shape[0]
    bad = [c for c in cols if fh[c].shape[0] != n]
    if not rep.add("column lengths", not bad, "differ: " + ", ".join(bad) if bad else f"{n} tokens"):
        return
    p, q = fh["p"][()], fh["q"][()]
    ok = bool(np.all((p >= 0) & (p <= 1)) and np.all((q >= 0) & (q <= 1)) and np.all(q >= p - 1e-12))
    rep.add("p and q in [0, 1], q >= p", ok)
    labels = _json_attr(fh, "labels", ["a", "b"])
    alpha = float(_json_attr(fh, "alpha", 0.05))
    lo = fh["log_odds"][()]
    rep.counts.update({"n_tested": int(n), "significant": {labels[0]: int(((q <= alpha) & (lo > 0)).sum()), labels[1]: int(((q <= alpha) & (lo < 0)).sum())}})
    rep.keys["conditions"] = list(labels)


KIND_CHECKS: dict[str, Callable[[Any, FileReport], None]] = {
    "sae": _check_sae,
    "activations": _check_activations,
    "completions": _check_completions,
    "vector": _check_vector,
    "selection": _check_selection,
    "token-associations": _check_tokens,
}


# -- across files ------------------------------------------------------------------------------------
def _join(name: str, left: str, right: str, keys: Sequence[str], matches: Callable[[str], bool], n_right: int, *, strict: bool, problems: Sequence[str] = ()) -> Join:
    """Join ``keys`` against the right side: fails when nothing joins (both
    sides non-empty), with ``strict`` when anything is left over, and on ``problems``."""
    keys = list(dict.fromkeys(keys))
    matched = [k for k in keys if matches(k)]
    unmatched = [k for k in keys if not matches(k)]
    ok = bool(matched) or not keys or n_right == 0
    if strict and unmatched:
        ok = False
    if problems:
        ok = False
    return Join(name, left, right, len(keys), n_right, len(matched), unmatched[:SHOW_UNMATCHED], ok, "; ".join(problems))


def audit(paths: Sequence[str | Path], *, strict: bool = False, expect_conditions: Sequence[str] = ()) -> dict[str, Any]:
    """The audit report of ``paths`` (a JSON-ready dict; ``ok`` false when any check failed)."""
    files = [audit_file(p) for p in paths]
    checks: list[Check] = []
    joins: list[Join] = []

    models = [(f.path, f.model) for f in files if f.model]
    distinct: list[str] = []
    for _, m in models:
        if not any(same_model(m, d) for d in distinct):
            distinct.append(m)
    checks.append(Check("one model", len(distinct) <= 1, ", ".join(distinct) or "none recorded"))

    comp = [f for f in files if f.kind == "completions" and "conditions" in f.keys]
    if comp:
        sets = {tuple(sorted(f.keys["conditions"])) for f in comp}
        checks.append(Check("same conditions in every completions artifact", len(sets) == 1, "; ".join(",".join(s) for s in sorted(sets))))
    for cond in expect_conditions:
        lacking = [f.path for f in comp if cond not in f.keys["conditions"]]
        checks.append(Check(f"condition {cond!r} everywhere", bool(comp) and not lacking, ("missing in: " + ", ".join(lacking)) if lacking else (f"{len(comp)} completions artifacts" if comp else "no completions artifact given")))

    sae_layers: dict[int, int] = {}
    for f in files:
        for layer, d in f.keys.get("sae_layers", {}).items():
            if layer in sae_layers and sae_layers[layer] != d:
                checks.append(Check(f"one SAE width at layer {layer}", False, f"{sae_layers[layer]} vs {d} ({f.path})"))
            sae_layers[layer] = d
    act_layers = {layer for f in files for layer in f.keys.get("act_layers", [])}
    steered = {k for f in files for k in f.keys.get("steered", [])}

    for f in files:
        feats = f.keys.get("features")
        if feats is None:
            continue
        parsed = {}
        for n in feats:
            try:
                parsed[n] = parse_feature_name(n)
            except SaetoolError:
                continue  # reported by the file's name check
        feats = list(parsed)
        if sae_layers:
            out = [n for n, (layer, i) in parsed.items() if layer in sae_layers and i >= sae_layers[layer]]
            problems = [f"ids past the SAE width: {', '.join(out[:SHOW_UNMATCHED])}"] if out else []
            in_sae = lambda n: parsed[n][0] in sae_layers and parsed[n][1] < sae_layers[parsed[n][0]]  # noqa: E731
            joins.append(_join("selected features -> SAEs", f.path, "SAE layers", feats, in_sae, len(sae_layers), strict=strict, problems=problems))
        if act_layers:
            joins.append(_join("selected features -> activations", f.path, "activation layers", feats, lambda n: parsed[n][0] in act_layers, len(act_layers), strict=strict))
        if steered:
            joins.append(_join("selected features -> steered features", f.path, "steered features", feats, lambda n: n in steered, len(steered), strict=strict))

    n_failed = sum(not c.ok for f in files for c in f.checks) + sum(not c.ok for c in checks) + sum(not j.ok for j in joins)
    per_layer: dict[str, dict[str, int]] = defaultdict(dict)
    per_condition: dict[str, int] = defaultdict(int)
    for f in files:
        if f.kind == "selection":
            for layer, n in f.counts.get("per_layer", {}).items():
                per_layer[layer]["selected_features"] = per_layer[layer].get("selected_features", 0) + n
        if f.kind == "sae" and f.counts.get("layer") is not None:
            key = str(f.counts["layer"])
            per_layer[key]["saes"] = per_layer[key].get("saes", 0) + 1
        if f.kind == "activations":
            for layer, n in f.counts.get("tokens_per_layer", {}).items():
                per_layer[layer]["activation_tokens"] = per_layer[layer].get("activation_tokens", 0) + n
        if f.kind == "completions":
            for cond, c in f.counts.get("per_condition", {}).items():
                per_condition[cond] += c["non_empty"]
            if f.counts.get("layer") is not None:
                key = str(f.counts["layer"])
                per_layer[key]["completions"] = per_layer[key].get("completions", 0) + 1
    return {
        "ok": n_failed == 0,
        "n_files": len(files),
        "n_failed_checks": n_failed,
        "files": [f.to_dict() for f in files],
        "checks": [asdict(c) for c in checks],
        "joins": [asdict(j) for j in joins],
        "counts": {"per_layer": dict(sorted(per_layer.items(), key=lambda kv: int(kv[0]))), "per_condition": dict(per_condition)},
    }
