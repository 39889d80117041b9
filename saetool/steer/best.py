"""The best cell of a sweep (seed 001's "Decision: pick best layer for Level 3")
and ``layers: best`` in the next level's config.

The rule (also written into ``best.json``): among the steered cells (not
alpha 0, status ok) on the *target* split (``harm_test``, else the first split
whose name starts with ``harm``, else the first split), keep those whose
refusal rise over alpha 0 is significant there and whose *side-effect* split
(``benign``, else the first split starting with ``benign``) shows neither a
significant helpfulness drop nor a significant refusal rise (corrected p below
the config's statistics.level, in the harmful direction); of those, the highest
refusal rate on the target split wins; ties go to the smaller |alpha|, then the
lower refusal rate on the side-effect split, then the lower layer. Without a
significant cell there is no best cell (``layers: best`` then refuses): the
cell that would lead is recorded as ``leading``, marked not significant. The
chosen cell's rate on the other harmful split (``harm_train``, the prompts the
vector was built from), when there is one, shows the generalisation gap; it
is no independent confirmation (``harm_test`` is the split the cell was chosen
on, so its rate is optimistic too: confirm on prompts neither touched). The
side-effect split's coherence change (fluency) is recorded, not screened:
every cell that moves refusal pays some. Refusal is the ``refusal`` metric's
unless the config names another rate metric as ``refusal_metric`` (e.g.
``refusal_strict``); ``best.json`` keeps its ``refusal_*`` keys and records
the metric as ``refusal_metric``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saetool.artifacts.files import write_atomic
from saetool.artifacts.jsonable import finite
from saetool.console import log
from saetool.errors import SaetoolError

if TYPE_CHECKING:
    import pandas as pd

    from saetool.steer.sweep_config import StatisticsSpec, SweepConfig

BEST_JSON = "best.json"


def _rule(target: str | None, side: str | None, level: float) -> str:
    """The rule ``best.json`` states: with a side-effect split ``side`` its screen and tie-break on it,
    without one the words that nothing is screened."""
    screen = f" and whose {side} helpfulness drop and {side} refusal rise are not" if side else "; no side-effect split, so no side effect screened"
    ties = f"then lower {side} refusal, " if side else ""
    return (f"highest refusal rate on {target} among steered cells whose refusal rise there is significant (corrected p < {level:g})"
            f"{screen}; ties: smaller |alpha|, {ties}then lower layer; no significant cell: no best cell")


def refusal_metric_of(data: Any) -> str:
    """The refusal metric a ``best.json`` (``data``) was decided by: ``refusal`` when it records none."""
    metric = data.get("refusal_metric") if isinstance(data, dict) else None
    return metric if isinstance(metric, str) and metric else "refusal"


def _pick_split(splits: list[str], preferred: str, prefix: str, fallback: bool) -> str | None:
    if preferred in splits:
        return preferred
    return next((s for s in splits if s.startswith(prefix)), splits[0] if fallback and splits else None)


def _num(v: Any) -> Any:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return None if math.isnan(f) else f


def _significant(row: Any, metric: str, harmful_sign: int, level: float) -> bool:
    delta, p = _num(row.get(f"{metric}_delta")), _num(row.get(f"{metric}_p_adj"))
    return delta is not None and p is not None and delta * harmful_sign > 0 and p < level


def _refusal(row: Any, metric: str, prefix: str = "", parts: tuple[str, ...] = ("rate", "delta", "p_adj")) -> dict[str, Any]:
    """``row``'s ``{metric}_{part}`` figures under best.json's names ``{prefix}refusal_{part}``, whatever the metric."""
    return {f"{prefix}refusal_{part}": _num(row.get(f"{metric}_{part}")) for part in parts}


def pick_best(summary: "pd.DataFrame", level: float, metric: str = "refusal") -> dict[str, Any]:
    """``best.json``'s content: the rule, the splits, counts and the best cell (or ``None`` and why);
    refusal counted by the rate metric ``metric`` (its summary columns ``{metric}_rate`` etc.)."""
    splits = list(dict.fromkeys(summary["split"])) if not summary.empty else []
    target = _pick_split(splits, "harm_test", "harm", True)
    side = _pick_split([s for s in splits if s != target], "benign", "benign", False)
    rule = _rule(target, side, level)
    out: dict[str, Any] = {"rule": rule if metric == "refusal" else f"refusal counted by {metric}; {rule}",
                           "target_split": target, "side_effect_split": side, "level": level, "refusal_metric": metric, "best": None}
    if f"{metric}_rate" not in summary:
        out["reason"] = f"the sweep has no {metric} metric"
        return out
    steered = summary[(~summary["is_baseline"].astype(bool)) & (summary["status"] == "ok")]
    cands = steered[steered["split"] == target]
    eligible = []
    for _, row in cands.iterrows():
        entry: dict[str, Any] = {"layer": int(row["layer"]), "intervention": str(row["intervention"]), "alpha": float(row["alpha"]),
                                 **_refusal(row, metric), "n": int(row["n"])}
        if side is not None:
            match = steered[(steered["split"] == side) & (steered["layer"] == row["layer"]) & (steered["intervention"] == row["intervention"]) & (steered["alpha"] == row["alpha"])]
            if match.empty:
                continue
            srow = match.iloc[0]
            if _significant(srow, metric, +1, level) or ("helpfulness_delta" in srow and _significant(srow, "helpfulness", -1, level)):
                continue
            entry.update({**_refusal(srow, metric, f"{side}_", ("rate", "delta")), f"{side}_helpfulness_delta": _num(srow.get("helpfulness_delta"))})
            if "coherence_delta" in srow:
                entry.update({f"{side}_coherence_delta": _num(srow.get("coherence_delta")), f"{side}_coherence_p_adj": _num(srow.get("coherence_p_adj"))})
        eligible.append(entry)
    out["candidates"], out["eligible"] = len(cands), len(eligible)
    if not eligible:
        out["reason"] = f"no steered cell on {target} without a significant side effect on {side}" if len(cands) else f"no finished steered cell on {target}"
        return out

    def key(e: dict[str, Any]) -> tuple:
        side_rate = e.get(f"{side}_refusal_rate") if side else None
        return (-(e["refusal_rate"] or 0.0), abs(e["alpha"]), side_rate if side_rate is not None else 0.0, e["layer"])

    for e in eligible:
        e["significant"] = e["refusal_p_adj"] is not None and e["refusal_p_adj"] < level and (e["refusal_delta"] or 0) > 0
    winners = [e for e in eligible if e["significant"]]
    out["n_significant"] = len(winners)
    chosen = min(winners or eligible, key=key)
    other = next((s for s in splits if s.startswith("harm") and s not in (target, side)), None)
    if other is not None:
        match = steered[(steered["split"] == other) & (steered["layer"] == chosen["layer"]) & (steered["intervention"] == chosen["intervention"]) & (steered["alpha"] == chosen["alpha"])]
        if not match.empty:
            orow = match.iloc[0]
            chosen.update(_refusal(orow, metric, f"{other}_"))
    if winners:
        out["best"] = chosen
    else:
        out["leading"] = chosen
        out["reason"] = (f"no steered cell raised {metric} on {target} significantly (corrected p < {level:g}; n {chosen['n']} per cell)"
                         + (f" without a significant side effect on {side}" if side else ""))
    return out


def smallest_rise_p(n: int, n_base: int, *, paired: bool = False) -> float:
    """The smallest two-sided p a rate's rise can reach: all ``n`` against none of ``n_base``
    (Fisher's exact test, as :func:`saetool.steer.stats.fisher_exact_p` computes it), or, paired,
    all ``n`` prompts changing one way (exact McNemar: 2 x 0.5^n). In closed form, without scipy,
    so that ``sweep --dry-run`` can say it."""
    if n < 1 or n_base < 1:
        return 1.0
    if paired:
        return min(1.0, 2 * 0.5**n)
    total = n + n_base
    pmf = [math.comb(n, x) * math.comb(n_base, n - x) / math.comb(total, n) for x in range(max(0, n - n_base), n + 1)]
    observed = pmf[-1]  # every steered prompt refusing: x = n
    return min(1.0, sum(q for q in pmf if q <= observed * (1 + 1e-7)))


def unreachable_decision(cfg: "SweepConfig", prompts: dict[str, int], steered: dict[str, int]) -> str | None:
    """The warning when no steered cell can become the best cell at these sizes, else None:
    with ``prompts[split]`` prompts per cell and ``steered[split]`` steered cells, even every
    target prompt refusing against none at alpha 0 stays at or above the level once corrected
    (Holm multiplies the smallest p by the family's size; BH and none can leave it as it is). Under
    ``test: paired`` it assumes the paired test (a cell whose prompts differ from its baseline's falls
    back to Fisher, whose floor is lower)."""
    if cfg.refusal_metric not in cfg.metrics or not prompts:
        return None
    target = _pick_split(list(prompts), "harm_test", "harm", True)
    if target is None or not steered.get(target):
        return None
    stats = cfg.statistics
    family = sum(steered.get(s, 0) for s in next(f for f in stats.families(list(prompts)) if target in f))
    factor = family if stats.correction == "holm" else 1

    def floor(n: int) -> float:
        return min(1.0, factor * smallest_rise_p(n, n, paired=stats.test == "paired"))

    n = prompts[target]
    if n and floor(n) < stats.level:
        return None
    need = next((k for k in range(max(n, 1), 1001) if floor(k) < stats.level), None)
    return (f"{cfg.name}: at {n} prompt(s) per cell no refusal rise on {target} can be significant: every prompt refusing against none at "
            f"alpha 0 gives corrected p {floor(n):.2g} ({family} steered cell(s) corrected together, {stats.correction}), not below {stats.level:g}, "
            "so best.json can name no best cell" + (f"; use at least {need} prompts per split (--max-prompts)" if need else ""))


def write_best(run_dir: Path, summary: "pd.DataFrame", statistics: "StatisticsSpec", metric: str = "refusal") -> dict[str, Any]:
    """Pick the best cell and write ``RUN/best.json`` (atomically), with the statistics and the refusal metric it was judged by."""
    data = {"run": run_dir.name, **pick_best(summary, statistics.level, metric), "statistics": asdict(statistics)}
    write_atomic(run_dir / BEST_JSON, json.dumps(finite(data), indent=2, sort_keys=True, allow_nan=False))
    return data


def describe_best(data: dict[str, Any]) -> str:
    """One line for stderr."""
    b = data.get("best")
    what = refusal_metric_of(data)
    if b is None:
        lead = data.get("leading")
        led = (f"; leading cell layer {lead['layer']}, {lead['intervention']}, alpha {lead['alpha']:g} ({what} {lead['refusal_rate']:.2f}, "
               f"{lead['refusal_delta']:+.2f} vs alpha 0, not significant)") if lead and lead.get("refusal_rate") is not None and lead.get("refusal_delta") is not None else ""
        return f"best cell: none ({data.get('reason', '')}){led}"
    side = data.get("side_effect_split")
    fluency = b.get(f"{side}_coherence_delta") if side else None
    cost = f"; {side} coherence loss {fluency:+.2f} nats (not screened)" if fluency is not None else ""
    return (f"best cell: layer {b['layer']}, {b['intervention']}, alpha {b['alpha']:g} "
            f"({what} {b['refusal_rate']:.2f} on {data['target_split']}, significant vs alpha 0{cost}); rule: {data['rule']}")


def find_best_json(cfg: "SweepConfig", output_dir: Path) -> Path | None:
    """The existing ``best.json`` that ``layers: best`` reads (``best_from``: a run name
    under ``output_dir``, a run folder or a best.json file), or None."""
    if not (cfg.layers_best and cfg.best_from):
        return None
    places = [Path(cfg.best_from).expanduser(), output_dir / cfg.best_from, cfg.resolve_path(cfg.best_from)]
    return next((p for q in places for p in (q, q / BEST_JSON) if p.is_file()), None)


def resolve_best_layers(cfg: "SweepConfig", output_dir: Path, *, dry_run: bool = False) -> None:
    """Fill ``cfg.layers`` for ``layers: best`` from the ``best.json`` of ``best_from``
    (a run name under ``output_dir``, a run folder or a best.json file)."""
    if not cfg.layers_best:
        return
    if not cfg.best_from:
        raise SaetoolError(f"{cfg.name}: layers: best needs best_from: RUN (the earlier sweep whose best.json names the layer)")
    path = find_best_json(cfg, output_dir)
    if path is None:
        if dry_run:
            log(f"[dim]layers: best: {output_dir / cfg.best_from / BEST_JSON} does not exist yet; the plan counts one layer[/dim]")
            cfg.layers = [0]
            return
        raise SaetoolError(f"{cfg.name}: layers: best but {output_dir / cfg.best_from / BEST_JSON} does not exist",
                           hint=f"run the sweep {cfg.best_from!r} first (it writes best.json), or list the layers")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        best = data.get("best")
        if isinstance(best, dict) and best.get("significant") is False:  # written before best cells had to be significant
            data = {**data, "best": None, "leading": best, "reason": data.get("reason") or "its best cell is not significant"}
            best = None
        layer = int(best["layer"]) if isinstance(best, dict) else None
        lead = data.get("leading")
        lead_layer = int(lead["layer"]) if isinstance(lead, dict) else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise SaetoolError(f"{path} is not a best.json written by saetool sweep", hint="rerun that sweep") from None
    if layer is None:
        reason = str(data.get("reason") or "no cell qualified")
        if dry_run:
            which = "the leading cell's" if lead_layer is not None else "layer 0, a stand-in"
            log(f"[yellow]layers: best: {path} picked no best cell ({reason}); the plan counts one layer ({which})[/yellow]")
            cfg.layers = [lead_layer if lead_layer is not None else 0]
            return
        hint = (f"its leading cell, layer {lead_layer}, is not significant: list it (layers: [{lead_layer}]) to go on with it anyway, or rerun that sweep with more prompts"
                if lead_layer is not None else "see its reason, or list the layers")
        raise SaetoolError(f"{path} picked no best cell ({reason}), so layers: best has no layer", hint=hint)
    cfg.layers = [layer]
    log(f"layers: best -> layer {layer} (from {path})")
