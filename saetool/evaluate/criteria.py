"""``saetool check --criteria seed000``: seed 000's go/no-go on its own four criteria.

1. **SAE reconstruction**: mean cosine between the activations and their
   reconstruction > ``min_cosine`` (0.9), at the transition tokens of a
   ``transitions`` artifact (where the seed measures it), else on the
   activations given to ``check``.
2. **Feature coherence**: at least ``min_common`` (2) features common at the
   transition token *and specific to it*: active in at least ``min_share`` of
   the labeled samples (and in two or more) and at least ``min_lift`` times as
   often there as on ordinary text (their density over the activations given
   to ``check``). A feature that fires everywhere is common but says nothing.
   When the artifact holds a control (``transitions --control``: the same
   bridge after neutral inputs), also ``min_lift`` times as often as at the
   control's tokens, significantly (one-sided Fisher's exact test,
   Benjamini-Hochberg over the features tested, q below ``level``): the
   bridge is the same word in every text, so features of that word are
   common and pass against ordinary text alone. "inconclusive" when the
   samples are too few for any feature to reach significance.
3. **Steering effectiveness**: a ``completions`` artifact (``steer``): the
   steered condition (and any ``prompted`` one) against ``baseline`` on
   ``sentiment`` (else ``refusal``), paired over the prompts as ``steer``
   tests (paired t; exact McNemar for a rate), Holm-adjusted over the
   conditions, below ``level`` in the direction of alpha (the row names the
   conditions that showed it: the seed's prompting variant is not the
   vector); or a sweep (its folder,
   ``summary.csv`` or ``best.json``): its best cell beats alpha 0
   significantly (see :mod:`saetool.steer.best`).
4. **Pipeline completeness**: at least 5 transition texts, at least 3 of them
   labeled, and a steering result (the seed's "Transitions generated" and
   "Activations extracted" rows).

A criterion whose input is missing is not measured and does not pass: the
verdict is SCALE UP only when all four pass. Every row carries its reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from saetool.analysis.names import feature_name
from saetool.artifacts.activations import ActivationsFile
from saetool.errors import SaetoolError
from saetool.evaluate.check import FIX_FIRST, SCALE_UP, CheckReport, CheckRow, measured
from saetool.models.hooks import layer_of_hook
from saetool.sae.io import load_sae
from saetool.steer.completions import read_completions
from saetool.steer.metrics import get_metric

if TYPE_CHECKING:
    from saetool.evaluate.api import Evaluation
    from saetool.sae.model import SAE

# Deferred imports: every `saetool check` imports this module; the seed000 evidence readers (transitions, the sweep's
# best.json and summary with pandas, completions statistics with scipy) load only when --transitions or --steering asks
# for them.

PROFILES = ("default", "seed000")
MIN_TEXTS, MIN_SAMPLES = 5, 3


@dataclass
class Seed000Thresholds:
    min_cosine: float = 0.9
    min_common: int = 2
    min_share: float = 0.5
    min_lift: float = 2.0
    level: float = 0.05
    only_turning: bool = False  # judge the transitions that turn from negative to positive (by their stored VADER sentiment) only

    def validate(self) -> None:
        if not 0 < self.min_share <= 1:
            raise SaetoolError(f"--min-share must be a fraction in (0, 1] (got {self.min_share})")
        if self.min_lift < 1:
            raise SaetoolError(f"--min-lift must be at least 1 (got {self.min_lift})")
        if self.min_common < 1:
            raise SaetoolError(f"--min-common must be at least 1 (got {self.min_common})")
        if not 0 < self.level <= 1:
            raise SaetoolError(f"--level must be a probability in (0, 1] (got {self.level})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- inputs ------------------------------------------------------------------------------------------
def feature_density(sae: "SAE", activations: str | Path, max_rows: int) -> "torch.Tensor":
    """Per-feature firing frequency (> 0) over up to ``max_rows`` rows of an activations artifact."""
    counts = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    seen = 0
    with ActivationsFile(activations) as acts, torch.no_grad():
        for x in acts.iter_chunks(str(sae.cfg.hook), 4096, dtype=sae.dtype):
            x = x[: max_rows - seen].to(sae.device)
            counts += (sae.encode(x) > 0).sum(0).double().cpu()
            seen += x.shape[0]
            if seen >= max_rows:
                break
    return counts / max(seen, 1)


def transition_codes(sae: "SAE", path: str | Path, *, only_turning: bool = False) -> tuple[dict[str, Any], "torch.Tensor", "torch.Tensor", "torch.Tensor | None"]:
    """``(transitions data, activations at the labeled tokens, their codes under this SAE, the control's codes or None)``;
    ``only_turning`` keeps the samples whose text turns from negative to positive there (the stored sentiment;
    ``data["only_turning"]`` is then True)."""
    from saetool.analysis.transitions import read_transitions

    data = read_transitions(path)
    if only_turning:
        data = turning_samples(data, path)
    if data.get("hook") != str(sae.cfg.hook):
        raise SaetoolError(f"the transitions in {path} were read at {data.get('hook')} but the SAE reads {sae.cfg.hook}",
                           hint="run saetool transitions with this SAE")
    if data.get("control") is not None and not len(data["control"]["activations"]):
        raise SaetoolError(f"the control in {path} has no labeled token", hint="rerun saetool transitions with a --control whose texts hold the transition word")
    sets = [data["activations"]] + ([data["control"]["activations"]] if data.get("control") is not None else [])
    for acts in sets:
        if acts.ndim != 2 or (len(acts) and acts.shape[1] != sae.cfg.d_in):
            raise SaetoolError(f"the transitions in {path} hold activations of width {acts.shape[-1]}, the SAE reads d_in={sae.cfg.d_in}",
                               hint="run saetool transitions with this SAE")
    with torch.no_grad():
        codes = [sae.encode(torch.from_numpy(a).to(device=sae.device, dtype=sae.dtype)) for a in sets]
    x = torch.from_numpy(data["activations"]).to(device=sae.device, dtype=sae.dtype)
    return data, x, codes[0], (codes[1] if len(codes) > 1 else None)


def turning_samples(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``data`` (as read by ``read_transitions``) with only the samples whose text turns from
    negative to positive at the labeled token, by the stored VADER sentiment."""
    from saetool.analysis.transitions import turns

    if data.get("sentiment") is None:
        raise SaetoolError(f"the transitions in {path} hold no sentiment (written by an older saetool)", hint="rerun saetool transitions, or leave out --only-turning")
    keep = turns(data["sentiment"])[data["sample_text"]]
    if not keep.any():
        raise SaetoolError(f"none of the {len(keep)} labeled transition text(s) in {path} turns from negative to positive at its labeled token (by VADER sentiment)",
                           hint="generate more transitions, or leave out --only-turning")
    return {**data, "activations": data["activations"][keep], "sample_text": data["sample_text"][keep],
            "codes": {k: v[keep] for k, v in data["codes"].items()}, "only_turning": True}


def _cosine(sae: "SAE", x: "torch.Tensor", f: "torch.Tensor") -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cosine_similarity(x.double(), (sae.decode(f) + sae.skip_term(x)).double(), dim=-1).mean())


def specific_features(f: "torch.Tensor", density: "torch.Tensor", th: Seed000Thresholds, layer: int | None) -> list[dict[str, Any]]:
    """Features common at the transition (``min_share`` of the samples, two or more) and
    ``min_lift`` times as common there as on ordinary text (``density``), strongest lift first."""
    n = f.shape[0]
    count = (f > 0).sum(0).cpu()
    out = []
    for i in range(f.shape[1]):
        c = int(count[i])
        share = c / n if n else 0.0
        if c < 2 or share < th.min_share:
            continue
        base = float(density[i])
        lift = share / base if base > 0 else math.inf
        if lift >= th.min_lift:
            out.append({"feature": i, "name": feature_name(layer, i) if layer is not None else str(i), "count": c, "share": share, "density": base, "lift": lift})
    return sorted(out, key=lambda r: (-r["lift"], -r["share"], r["feature"]))


@dataclass
class ControlTest:
    """The features that pass against the control, how many were tested, the sample sizes,
    the smallest p those sizes allow, and how many pass before the correction."""

    found: list[dict[str, Any]]
    tested: int
    n: int
    n_control: int
    min_p: float
    uncorrected: int


def against_control(candidates: list[dict[str, Any]], f: "torch.Tensor", control: "torch.Tensor", th: Seed000Thresholds) -> ControlTest:
    """Each candidate's share at the control's tokens, its lift over it and a one-sided Fisher's
    exact p (more common at the transition), Benjamini-Hochberg adjusted over the candidates
    (``control_q``). A feature passes with a lift of at least ``min_lift`` and q below ``level``;
    those that pass, smallest q first."""
    from scipy.stats import fisher_exact

    from saetool.analysis.transitions import lift_of
    from saetool.steer.stats import benjamini_hochberg

    n, n_c = f.shape[0], control.shape[0]
    c_count = (control > 0).sum(0).cpu()
    recs = []
    for r in candidates:
        cc = int(c_count[r["feature"]])
        p = float(fisher_exact([[r["count"], n - r["count"]], [cc, n_c - cc]], alternative="greater")[1])
        recs.append({**r, "control_count": cc, "control_share": cc / n_c, "control_lift": lift_of(r["share"], cc / n_c), "control_p": p})
    qs = benjamini_hochberg([r["control_p"] for r in recs])
    for r, q in zip(recs, qs):
        r["control_q"] = float(q)
    found = [r for r in recs if r["control_lift"] >= th.min_lift and r["control_q"] < th.level]
    found.sort(key=lambda r: (r["control_q"], r["control_p"], -r["control_lift"], r["feature"]))
    # the smallest p the test can give: active in every transition sample and in no control sample
    min_p = float(fisher_exact([[n, 0], [0, n_c]], alternative="greater")[1]) if n and n_c else 1.0
    uncorrected = sum(1 for r in recs if r["control_lift"] >= th.min_lift and r["control_p"] < th.level)
    return ControlTest(found, len(recs), n, n_c, min_p, uncorrected)


def steering_effect(path: str | Path, level: float) -> tuple[bool, str, dict[str, Any]]:
    """``(works, reason, details)`` from a completions artifact or a sweep (folder, summary.csv, best.json)."""
    p = Path(path)
    if not p.exists():
        raise SaetoolError(f"steering result {p} does not exist", hint="pass a steer completions .h5, a sweep folder, its summary.csv or best.json")
    if p.is_dir() or p.suffix.lower() in (".csv", ".json"):
        return _sweep_effect(p, level)
    return _completions_effect(p, level)


def _sweep_effect(p: Path, level: float) -> tuple[bool, str, dict[str, Any]]:
    from saetool.steer.best import BEST_JSON, pick_best, refusal_metric_of

    if p.is_dir():
        p = p / "summary.csv"
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "rule" not in data:
                raise ValueError
        else:
            import pandas as pd

            data = pick_best(pd.read_csv(p), level, _refusal_metric_of(p.parent))
    except (OSError, ValueError, KeyError):
        raise SaetoolError(f"{p} is not a sweep's summary.csv or {BEST_JSON}", hint="pass the sweep's run folder") from None
    best = data.get("best")
    if not best:
        return False, f"the sweep has no eligible best cell ({data.get('reason', 'none')})", data
    works = bool(best.get("significant"))
    what = refusal_metric_of(data)
    where = f"layer {best['layer']} {best['intervention']} alpha {best['alpha']:g}: {what} {best['refusal_rate']:.2f} on {data['target_split']}"
    p_adj = best.get("refusal_p_adj")
    p_text = f"p_adj {p_adj:.3g}" if isinstance(p_adj, (int, float)) else "p_adj n/a"
    return works, f"best cell {where} ({'significant' if works else 'not significant'} vs alpha 0, {p_text})", data


def _refusal_metric_of(run_dir: Path) -> str:
    """The refusal metric the sweep in ``run_dir`` decides by, as its best.json records it (``refusal`` without one)."""
    from saetool.steer.best import BEST_JSON, refusal_metric_of

    try:
        data = json.loads((run_dir / BEST_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "refusal"
    return refusal_metric_of(data)


def _completions_effect(p: Path, level: float) -> tuple[bool, str, dict[str, Any]]:
    """Each condition against the baseline on the same prompts, paired as ``saetool steer``'s
    table tests it (exact McNemar for a rate, paired t for a mean)."""
    from saetool.steer.stats import holm, paired_p

    comp = read_completions(p)
    base = comp.metrics.get("baseline", {})
    metric = next((m for m in ("sentiment", "refusal") if m in base), None)
    if metric is None:
        raise SaetoolError(f"{p} has no baseline with a sentiment or refusal score", hint="steer with --baseline and --metrics sentiment (or refusal)")
    alpha = comp.settings.get("alpha")
    sign = 1 if (alpha is None or float(alpha) >= 0 or comp.settings.get("intervention") != "add") else -1
    rate = get_metric(metric).kind == "rate"
    results = []
    for cond in [c for c in comp.metrics if c != "baseline"]:
        raw = comp.metrics[cond].get(metric, [])
        pairs = [(x, y) for x, y in zip(base[metric], raw) if not math.isnan(x) and not math.isnan(y)]
        if not pairs or len(raw) != len(base[metric]):
            continue
        b, v = [x for x, _ in pairs], [y for _, y in pairs]
        delta = sum(v) / len(v) - sum(b) / len(b)
        pv = paired_p(b, v, rate=rate)
        # the smallest p the test can give on n pairs: every pair changing one way (McNemar), or fewer than 3 pairs (t)
        can_show = (2 * 0.5 ** len(pairs) < level) if rate else len(pairs) >= 3
        results.append({"condition": cond, "metric": metric, "delta": delta, "p": pv, "n": len(pairs), "can_show": can_show})
    if not results:
        raise SaetoolError(f"{p} has no condition to compare with its baseline on the same prompts")
    # any of the conditions may show the effect: Holm over them keeps the family-wise error at level
    for r, adj in zip(results, holm([r["p"] for r in results])):
        r["p_holm"] = adj
        r["works"] = bool(r["can_show"] and r["delta"] * sign > 0 and not math.isnan(adj) and adj < level)
    many = len(results) > 1
    text = "; ".join(f"{r['condition']} {r['metric']} {r['delta']:+.3f} vs baseline (paired p {r['p']:.3g}"
                     + (f", Holm {r['p_holm']:.3g} over {len(results)} conditions" if many else "") + f", n {r['n']}"
                     + ("" if r["can_show"] else f": too few prompts for any result to reach p < {level:g}") + ")" for r in results)
    return any(r["works"] for r in results), text, {"metric": metric, "alpha": alpha, "conditions": results, "can_show": any(r["can_show"] for r in results)}


# -- the rows ----------------------------------------------------------------------------------------
def seed000_rows(ev: "Evaluation", sae: "SAE", th: Seed000Thresholds, *, transitions: str | Path | None, steering: str | Path | None,
                 max_rows: int) -> tuple[list["CheckRow"], dict[str, Any]]:
    """The four criteria as check rows (``passed`` False when not measured), and their details."""
    rows: list[CheckRow] = []
    details: dict[str, Any] = {}
    data = x = f = fc = None
    if transitions is not None:
        data, x, f, fc = transition_codes(sae, transitions, only_turning=th.only_turning)

    # 1. reconstruction
    target = f"> {th.min_cosine:g}"
    if x is not None and len(x):
        cos = _cosine(sae, x, f)
        where = f"at {len(x)} transition token(s)"
        overall = ev.metrics.get("cosine_similarity", math.nan)
        if not math.isnan(overall):  # a few transition tokens are a small sample: the activation rows' figure beside it
            where += f" (over the {ev.n_rows} activation rows: {overall:.3f})"
    else:
        cos, where = ev.metrics.get("cosine_similarity", math.nan), f"over {ev.n_rows} activation rows (no --transitions)"
    if math.isnan(cos):
        rows.append(CheckRow("SAE reconstruction (cosine)", math.nan, target, False, reason="not measured: pass --transitions FILE or ACTIVATIONS"))
    else:
        ok = cos > th.min_cosine
        rows.append(CheckRow("SAE reconstruction (cosine)", cos, target, ok, "" if ok else "train a custom SAE or find a better pretrained one",
                             reason=f"cosine {cos:.3f} {where} {'>' if ok else '<='} {th.min_cosine:g}"))

    # 2. feature coherence
    target = f">= {th.min_common} features, share >= {th.min_share:g}, lift >= {th.min_lift:g}"
    if f is None or not len(f):
        rows.append(CheckRow("common features at the transition", math.nan, target, False, reason="not measured: pass --transitions FILE (saetool transitions)"))
    elif not ev.activations:
        rows.append(CheckRow("common features at the transition", math.nan, target, False, reason="not measured: the base rate needs ACTIVATIONS of ordinary text"))
    else:
        density = feature_density(sae, ev.activations, max_rows)
        candidates = specific_features(f, density, th, layer_of_hook(str(sae.cfg.hook)))
        n_common = int(((f > 0).sum(0) >= max(2, math.ceil(th.min_share * len(f)))).sum())
        value: Any
        if fc is None:
            found = candidates
            value, ok = len(found), len(found) >= th.min_common
            against = (f"share vs density on {Path(ev.activations).name}; no control: the transition's bridge words are the same in every text, "
                       "so features of those words pass too (saetool transitions --control tells them apart)")
            shown = ", ".join(f"{r['name']} ({r['share']:.0%} vs {r['density']:.1%})" for r in found[:3])
            fix = "" if ok else "improve transition quality or labeling, or use more samples"
        else:
            test = against_control(candidates, f, fc, th)
            found = test.found
            value, ok = len(found), len(found) >= th.min_common
            against = (f"share vs density on {Path(ev.activations).name}, then vs share at the {test.n_control} control token(s) "
                       f"(the same bridge after neutral inputs): one-sided Fisher's exact test, Benjamini-Hochberg q < {th.level:g} "
                       f"over the {test.tested} feature(s) tested")
            shown = ", ".join(f"{r['name']} ({r['share']:.0%} vs {r['control_share']:.0%} at the control, q {r['control_q']:.2g})" for r in found[:3])
            if ok:
                fix = ""
            elif test.tested and not test.min_p < th.level:
                value = "inconclusive"
                against += f"; with {test.n} transition and {test.n_control} control samples no feature can reach p < {th.level:g}"
                fix = "generate more transitions and control texts: at these sizes no feature can be significant"
            elif test.uncorrected > len(found):
                against += f"; {test.uncorrected} reach p < {th.level:g} before the correction"
                fix = "generate more transitions and control texts to tell whether those features are specific"
            else:
                fix = "the features at the transition are those of its words: improve the transitions, label another token (--offset), or use more samples"
        details["specific_features"] = found[:20]
        rows.append(CheckRow("common features at the transition", value, target, ok, fix,
                             reason=f"{len(found)} of {n_common} common feature(s) are specific to the transition ({against})" + (f": {shown}" if shown else "")
                             + (f", and {len(found) - 3} more (details.specific_features in --json)" if len(found) > 3 else "")))

    # 3. steering
    target = f"significant (p < {th.level:g}) in the steered direction"
    if steering is None:
        rows.append(CheckRow("steering effectiveness", math.nan, target, False, reason="not measured: pass --steering FILE (steer completions or a sweep)"))
    else:
        works, reason, info = steering_effect(steering, th.level)
        details["steering"] = info
        verdict = "works" if works else ("inconclusive" if info.get("can_show") is False else "not shown")
        if works and info.get("conditions"):  # which condition showed it: the seed's prompting variant is not the vector
            verdict += " (" + ", ".join(c["condition"] for c in info["conditions"] if c["works"]) + ")"
        fix = "" if works else ("steer more prompts: at this n no effect can be significant" if verdict == "inconclusive"
                                else "develop better steering vectors (layer, alpha, more prompts)")
        rows.append(CheckRow("steering effectiveness", verdict, target, works, fix, reason=reason))

    # 4. pipeline completeness
    target = f">= {MIN_TEXTS} transitions, >= {MIN_SAMPLES} labeled, a steering result"
    n_texts = int(data["n_texts"]) if data is not None else 0
    n_samples = len(data["activations"]) if data is not None else 0
    missing = [m for m, bad in (("--transitions", data is None), ("--steering", steering is None)) if bad]
    filtered = data is not None and (data.get("only_turning") or (data.get("settings") or {}).get("only_turning"))
    if filtered:  # the transitions are the texts that turn: they must be as many as the seed asks of transitions
        from saetool.analysis.transitions import n_labeled

        ok = not missing and n_samples >= max(MIN_TEXTS, MIN_SAMPLES)
        value = f"{n_texts} texts, {n_samples} turning"
        reason = (f"{n_texts} transition text(s), {n_labeled(data['sentiment'])} labeled, {n_samples} kept: those that turn from negative to positive "
                  f"there by VADER sentiment (--only-turning; the {MIN_TEXTS} transitions asked for count these)")
    else:
        ok = not missing and n_texts >= MIN_TEXTS and n_samples >= MIN_SAMPLES
        value = f"{n_texts} texts, {n_samples} labeled"
        reason = f"{n_texts} transition text(s), {n_samples} labeled"
        if data is not None and "n_turning" in data:  # a manipulation check: a generated text need not turn where the bridge was put
            reason += f" ({int(data['n_turning'])} turn from negative to positive there by VADER sentiment)"
    reason += ", steering result given" if steering is not None else ""
    if missing:
        reason += "; missing " + " and ".join(missing)
    fix = "" if ok else f"generate at least {MIN_TEXTS} transitions with {MIN_SAMPLES}+ labeled, and steer"
    rows.append(CheckRow("pipeline completeness", value, target, ok, fix, reason=reason))
    return rows, details


def build_seed000_check(ev: Evaluation, sae_path: str | Path, th: Any, *, transitions: str | Path | None, steering: str | Path | None,
                        max_rows: int, device: str = "cpu") -> CheckReport:
    """Seed 000's four criteria (:mod:`saetool.evaluate.criteria`) decide; the default
    profile's measurements follow as information."""
    rows, details = seed000_rows(ev, load_sae(sae_path, device), th, transitions=transitions, steering=steering, max_rows=max_rows)
    verdict = SCALE_UP if all(r.passed for r in rows) else FIX_FIRST
    for key, label in (("explained_variance", "explained variance"), ("ce_loss_recovered", "CE loss recovered"), ("l0", "L0 (active features/token)"),
                       ("dead_fraction", "dead features (fraction)")):
        if measured(ev.metrics.get(key)):
            rows.append(CheckRow(label, ev.metrics[key], "", None))
    return CheckReport(rows=rows, verdict=verdict, evaluation=ev, thresholds=th, criteria="seed000", details=details)
