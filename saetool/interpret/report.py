"""Interpretation results as text: a markdown report, a terminal report, a two-feature comparison.

All three are pure functions of :class:`~saetool.interpret.records.FeatureRecord`
lists. Corpus text (tokens, and labels, which may quote it) is made safe for
where it goes: markdown-special characters are backslash-escaped in the report,
control characters (terminal escape sequences included) are shown as visible
escapes in the terminal text. The activating token of an example is marked
``⟦like this⟧``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from saetool.artifacts.files import write_atomic
from saetool.interpret.records import Example, FeatureRecord
from saetool.interpret.scoring import mean_ci

MARK_OPEN, MARK_CLOSE = "⟦", "⟧"
RULE = "=" * 80
THIN_RULE = "-" * 80
_SPARK = "▁▂▃▄▅▆▇█"
# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that can make
# markup mid-line (emphasis, code, links, images, raw HTML, entities, table cells, strike-through,
# math, heading closers). Corpus text never starts a line in the report, so line-start markup
# (lists, block quotes, setext underlines) cannot form.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$#])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


# -- small helpers ------------------------------------------------------------------------------------
def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`saetool.artifacts.files.write_atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, text)


def visible(text: str) -> str:
    """``text`` on one line with nothing a terminal interprets: newlines and tabs as ↵ and ⇥,
    other control characters (ANSI escapes included) as ``\\xNN``-style escapes."""
    text = text.replace("\r\n", "\n").replace("\n", "↵").replace("\t", "⇥")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def token_repr(token: str) -> str:
    """A token quoted so that its leading and trailing spaces show: ``' cat'``."""
    return "'" + visible(token).replace("'", "\\'") + "'"


def md_escape(text: str) -> str:
    """Corpus text as inert markdown on one line (table-cell safe)."""
    return _MD_SPECIAL.sub(r"\\\1", visible(text))


def fmt_num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}"


def fmt_density(d: float | None) -> str:
    if d is None or not math.isfinite(d):
        return "–"
    return "0%" if d == 0 else f"{d * 100:.3g}%"


def fmt_score(score: float | None) -> str:
    return "–" if score is None or not math.isfinite(score) else f"{score:.2f}"


def marked_context(ex: Example, *, markdown: bool = False) -> str:
    """The example's window on one line, the activating token between ⟦ ⟧ and every other
    token where the feature is active shaded in text: ``⟨token·value⟩``."""
    esc = md_escape if markdown else visible
    values = ex.values if ex.values is not None and len(ex.values) == len(ex.tokens) else None
    parts = []
    for i, tok in enumerate(ex.tokens):
        if i == ex.position:
            parts.append(f"{MARK_OPEN}{esc(tok)}{MARK_CLOSE}")
        elif values is not None and values[i] is not None and values[i] > 0:
            parts.append(f"⟨{esc(tok)}·{fmt_num(values[i], 3)}⟩")
        else:
            parts.append(esc(tok))
    return "".join(parts)


SCORERS = ("detection", "fuzzing")
SCORES_NOTE = (
    "Above chance: the label's score has its 95% interval above 0.50; n.s. in the table: not significantly above chance "
    "(the interval reaches 0.50), the label cannot be told from a guess on held-out windows. True-positive rate: the share "
    "of held-out activating windows (not those the label was made from) the label picked out (detection), or of those windows "
    "with their activating tokens marked that it accepted (fuzzing); true-negative rate: the share of random non-activating "
    "windows it left out (detection), or of the same windows with other tokens marked that it rejected (fuzzing)."
)
#: What each scorer's positives and negatives are, for "on 10 activating + 10 other windows".
SCORE_SAMPLES = {"detection": ("activating", "other"), "fuzzing": ("correctly marked", "wrongly marked")}


def samples_text(name: str, details: dict[str, Any]) -> str:
    """``on 10 activating + 10 other windows`` (the scorer's positives and negatives)."""
    pos, neg = SCORE_SAMPLES.get(name, ("positive", "negative"))
    return f"on {details.get('n_positive', 0)} {pos} + {details.get('n_negative', 0)} {neg} windows"


def _scored(label: Any, name: str) -> dict[str, Any] | None:
    d = (label.details or {}).get(name) if label is not None else None
    return d if isinstance(d, dict) and d.get("score") is not None else None


def _reaches_chance(d: dict[str, Any]) -> bool:
    ci = d.get("ci95")
    return bool(ci) and ci[0] <= d.get("chance", 0.5)


def at_chance(label: Any, name: str = "detection") -> bool:
    """Whether the label's ``name`` score is not significantly above chance: its 95% interval reaches
    the chance level (False when it was not scored or has no interval)."""
    d = _scored(label, name)
    return d is not None and _reaches_chance(d)


def score_text(label: Any, name: str) -> str:
    """``detection 0.85 [0.70, 0.95], chance 0.50`` from a label's details ('' when absent),
    ``, not significantly above it`` added when the interval reaches the chance level."""
    d = _scored(label, name)
    if d is None:
        return ""
    ci = d.get("ci95")
    interval = f" [{fmt_score(ci[0])}, {fmt_score(ci[1])}]" if ci else ""
    verdict = ", not significantly above it" if at_chance(label, name) else ""
    return f"{name} {fmt_score(d['score'])}{interval}, chance {fmt_score(d.get('chance', 0.5))}{verdict}"


def score_cell(label: Any, name: str) -> str:
    """A score for a table: ``0.85``, ``0.50 (n.s.)`` when not significantly above chance, ``–``.
    A label without detection details (a plugin labeler's, an older artifact's) shows its bare
    ``score`` under detection, the first scorer's."""
    d = _scored(label, name)
    if d is None:
        return fmt_score(label.score) if name == "detection" and label is not None else "–"
    return fmt_score(d["score"]) + (" (n.s.)" if at_chance(label, name) else "")


def mean_scores(records: Sequence[FeatureRecord], names: Sequence[str] = SCORERS) -> dict[str, tuple[float | None, tuple[float, float] | None, int]]:
    """Per scorer, the mean score over the records' labels with its 95% interval and count."""
    out = {}
    for name in names:
        vals = [((r.label.details or {}).get(name) or {}).get("score") for r in records if r.label is not None]
        out[name] = mean_ci(vals)
    return out


def score_breakdown(records: Sequence[FeatureRecord], name: str) -> dict[str, Any]:
    """What a scorer's mean is made of: how many scored labels beat chance (their 95% interval
    above it), and the mean true-positive and true-negative rates (the share of held-out
    activating windows the labels caught, and of the other windows they rejected)."""
    scored = [d for d in (_scored(r.label, name) for r in records) if d is not None]
    rates = {key: [d[key] for d in scored if d.get(key) is not None] for key in ("true_positive_rate", "true_negative_rate")}
    above = sum(1 for d in scored if d.get("ci95") and not _reaches_chance(d))
    return {"n": len(scored), "above_chance": above, **{key: (sum(v) / len(v) if v else None) for key, v in rates.items()}}


def score_summaries(records: Sequence[FeatureRecord]) -> dict[str, dict[str, Any]]:
    """Per scorer with any score: its mean, 95% interval, count and chance level, with
    :func:`score_breakdown`'s figures (the manifest's and the browser's ``scores``)."""
    out = {}
    for name, (mean, ci, n) in mean_scores(records).items():
        if mean is not None:
            parts = {k: v for k, v in score_breakdown(records, name).items() if k != "n"}
            out[name] = {"mean": mean, "ci95": list(ci) if ci else None, "n": n, "chance": 0.5, **parts}
    return out


def mean_scores_text(records: Sequence[FeatureRecord]) -> list[str]:
    """One line per scorer: ``mean detection score 0.71 (95% CI 0.66-0.76, chance 0.50) over 40
    features; 31 above chance; true-positive rate 0.45, true-negative rate 0.97``."""
    lines = []
    for name, sc in score_summaries(records).items():
        ci = sc["ci95"]
        interval = f"95% CI {fmt_score(ci[0])}–{fmt_score(ci[1])}, " if ci else ""
        tpr, tnr = sc["true_positive_rate"], sc["true_negative_rate"]
        rates = f"; true-positive rate {fmt_score(tpr)}, true-negative rate {fmt_score(tnr)}" if tpr is not None and tnr is not None else ""
        lines.append(f"mean {name} score {fmt_score(sc['mean'])} ({interval}chance 0.50) over {sc['n']} features; {sc['above_chance']} above chance{rates}")
    return lines


def density_histogram_lines(summary: Any, width: int = 40) -> list[str]:
    """The log10 density histogram of a :class:`~saetool.interpret.selection.DensitySummary` as text rows."""
    top = max(summary.counts, default=0) or 1
    rows = []
    for lo, hi, c in zip(summary.edges[:-1], summary.edges[1:], summary.counts):
        rows.append(f"{lo:6.2f} to {hi:6.2f} | {'#' * math.ceil(c / top * width) if c else '':<{width}} {c}")
    return rows


def summary_lines(summary: Any) -> list[str]:
    """Dead and dense counts of all features, one line."""
    return [
        f"{summary.d_sae} features over {summary.n_tokens} tokens: {summary.live} live, {len(summary.dead)} dead (never active), "
        f"{len(summary.dense)} dense (active on more than {fmt_density(summary.dense_threshold)} of tokens)"
    ]


def dense_list(summary: Any, limit: int = 50) -> str:
    """The dense features of a :class:`~saetool.interpret.selection.DensitySummary`, densest first:
    ``91 (13.3%), 1776 (13.1%) and 3 more``."""
    shown = ", ".join(f"{f} ({fmt_density(d)})" for f, d in summary.dense[:limit])
    return shown + (f" and {len(summary.dense) - limit} more" if len(summary.dense) > limit else "")


def _logit_list(pairs: Sequence[tuple[str, float]], *, markdown: bool, limit: int = 10) -> str:
    quote = (lambda t: md_escape(token_repr(t))) if markdown else token_repr
    return ", ".join(f"{quote(t)} ({v:+.3g})" for t, v in pairs[:limit]) if pairs else "none"


def interval_index(r: FeatureRecord, activation: float) -> int | None:
    """Which of the record's equal intervals of ``(0, max]`` holds ``activation`` (as the collector
    assigns them), or ``None`` without interval edges."""
    edges = r.interval_edges
    if len(edges) < 2 or not edges[-1] > 0:
        return None
    n = len(edges) - 1
    return min(n - 1, max(0, int(activation / edges[-1] * n)))


def interval_shares(r: FeatureRecord) -> tuple[list[float], bool]:
    """``(shares, exact)``: the fraction of the feature's activations in each of its intervals, read
    off its histogram (each bin counted in the interval holding its centre); ``exact`` when the
    histogram's bins split every interval evenly (the defaults: 40 bins, 5 intervals).
    ``([], False)`` without a histogram or intervals."""
    edges, counts, iv = r.histogram_edges, r.histogram_counts, r.interval_edges
    total = sum(counts)
    if not total or len(edges) != len(counts) + 1 or len(iv) < 2 or not iv[-1] > 0:
        return [], False
    n = len(iv) - 1
    shares = [0.0] * n
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        shares[interval_index(r, (a + b) / 2)] += c / total  # type: ignore[index]
    exact = len(counts) % n == 0 and math.isclose(edges[-1], iv[-1], rel_tol=1e-6)
    return shares, exact


def interval_name(r: FeatureRecord, ex: Example) -> str:
    """Which equal interval of ``(0, max]`` an interval example was drawn from, and that interval's
    share of all the feature's activations: ``"20–40% of max, 12% of activations"`` (``≈`` when the
    share is approximate; ``""`` without the record's interval edges)."""
    i = interval_index(r, ex.activation)
    if i is None:
        return ""
    n = len(r.interval_edges) - 1
    name = f"{i * 100 // n}–{(i + 1) * 100 // n}% of max"
    shares, exact = interval_shares(r)
    return name + (f", {'' if exact else '≈'}{shares[i]:.0%} of activations" if shares else "")


def sparkline(counts: Sequence[int]) -> str:
    """One character per histogram bin, height proportional to the count (empty bins as spaces)."""
    top = max(counts, default=0)
    if top <= 0:
        return ""
    return "".join(" " if c <= 0 else _SPARK[min(len(_SPARK) - 1, int(c / top * (len(_SPARK) - 1) + 0.5))] for c in counts)


def coarse_histogram(edges: Sequence[float], counts: Sequence[int], rows: int = 10) -> list[tuple[float, float, int]]:
    """Merge adjacent bins so that at most ``rows`` remain: ``(low, high, count)`` each."""
    n = len(counts)
    if n == 0 or len(edges) != n + 1:
        return []
    step = max(1, math.ceil(n / rows))
    return [(edges[i], edges[min(i + step, n)], int(sum(counts[i : i + step]))) for i in range(0, n, step)]


def _label_line(record: FeatureRecord) -> tuple[str, str] | None:
    if record.label is None:
        return None
    extra = [record.label.labeler] if record.label.labeler else []
    scored = [t for t in (score_text(record.label, n) for n in SCORERS) if t]
    if scored:
        extra.append("; ".join(scored))  # one clause per scorer, its verdict inside it
    elif record.label.score is not None:
        extra.append(f"detection score {fmt_score(record.label.score)}")
    return record.label.text, ", ".join(extra)


def _token_list(pairs: Sequence[tuple[str, int]], *, markdown: bool, limit: int) -> str:
    if not pairs:
        return "none"
    quote = (lambda t: md_escape(token_repr(t))) if markdown else token_repr
    return ", ".join(f"{quote(tok)} ({count})" for tok, count in pairs[:limit])


# -- markdown report ----------------------------------------------------------------------------------
def report_markdown(
    records: Sequence[FeatureRecord],
    *,
    title: str = "saetool interpretability report",
    meta: dict[str, Any] | None = None,
    examples: int = 10,
    tokens: int = 10,
    summary: Any = None,
) -> str:
    """The markdown report: the feature-density summary of all features (with ``summary``, a
    :class:`~saetool.interpret.selection.DensitySummary`), a table of the reported features
    with their mean scores, then one section per live feature; dead ones listed."""
    live = [r for r in records if not r.dead]
    dead = [r for r in records if r.dead]
    labelled = sum(r.label is not None for r in records)
    out = [f"# {md_escape(title)}", ""]
    shown_meta = {k: v for k, v in (meta or {}).items() if v is not None}
    for key, value in shown_meta.items():
        out.append(f"- **{md_escape(str(key))}**: {md_escape(str(value))}")
    if shown_meta:
        out.append("")
    out += ["## Summary", ""]
    if summary is not None:
        out += [md_escape(line) for line in summary_lines(summary)] + [""]
        out += ["Feature density over all features (log10 of the fraction of tokens each live feature is active on):", "", "```text"]
        out += density_histogram_lines(summary) + ["```", ""]
    dense_ids = {f for f, _ in summary.dense} if summary is not None else set()
    out += [f"{len(records)} features: {len(live)} live, {len(dead)} dead; {labelled} labelled."]
    scores = mean_scores_text(records)
    out += ([""] + [f"**{line[0].upper() + line[1:]}.**" for line in scores] + ["", SCORES_NOTE]) if scores else []
    # without a single label (--labeler none, a samples folder) the label and score columns would be empty
    label_cols = ("Label", "Detection", "Fuzzing") if labelled else ()
    out += ["", "| " + " | ".join(("Feature", *label_cols, "Density", "Max", "Mean", "Top tokens")) + " |",
            "|---:|" + "---|---:|---:|" * bool(labelled) + "---:|---:|---:|---|"]
    for r in records:
        link = f"[{r.index}](#feature-{r.index})" if not r.dead else str(r.index)
        label = "*dead*" if r.dead and r.label is None else (md_escape(r.label.text) if r.label else "")
        det, fuzz = (score_cell(r.label, name) for name in SCORERS)
        top = _token_list(r.top_tokens, markdown=True, limit=3) if r.top_tokens else ""
        dense = " (dense)" if r.index in dense_ids else ""
        labels = f" {label} | {det} | {fuzz} |" if labelled else ""
        out.append(f"| {link} |{labels} {fmt_density(r.density)}{dense} | {fmt_num(r.max_activation)} | {fmt_num(r.mean_activation)} | {top} |")
    out.append("")
    if dead:
        out += ["**Dead features** (never active): " + ", ".join(str(r.index) for r in dead), ""]
    if summary is not None and summary.dense:
        out += [f"**Dense features** (active on more than {fmt_density(summary.dense_threshold)} of tokens; not sampled for this report): {dense_list(summary)}", ""]
    if summary is not None and summary.dead and not dead:
        shown = ", ".join(str(f) for f in summary.dead[:50])
        more = f" and {len(summary.dead) - 50} more" if len(summary.dead) > 50 else ""
        out += [f"**Dead features** (never active): {shown}{more}", ""]
    sections = {r.index for r in live}
    for r in live:
        out += _feature_markdown(r, sections, examples=examples, tokens=tokens)
    return "\n".join(out).rstrip("\n") + "\n"


def window_start_note(record: FeatureRecord) -> str | None:
    """A note when at least half of the record's located top examples are at the start of
    their window (sequence position 0 or 1: BOS and the first token, or the first two tokens
    of a window without BOS), where massive-activation tokens sit: the feature may mark that
    position rather than the text (``None`` otherwise)."""
    located = [e for e in record.top_examples if e.token_position >= 0]
    first = sum(1 for e in located if e.token_position <= 1)
    if not located or 2 * first < len(located):
        return None
    return (f"{first} of its {len(located)} top examples are at one of the first two positions of their window (BOS where there is one, then the first token), where massive-activation tokens sit: "
            "the feature may mark that position rather than the text")


def _feature_markdown(r: FeatureRecord, sections: set[int], *, examples: int, tokens: int) -> list[str]:
    out = [f"## Feature {r.index}", ""]
    label = _label_line(r)
    if label:
        text, extra = label
        out += [f"**Label:** {md_escape(text)}" + (f" ({md_escape(extra)})" if extra else ""), ""]
    else:
        out += ["**Label:** none", ""]
    note = window_start_note(r)
    if note:
        out += [f"**Note:** {md_escape(note)}.", ""]
    out += [
        "| Statistic | Value |",
        "|---|---:|",
        f"| Density (fraction of tokens active) | {fmt_density(r.density)} |",
        f"| Max activation | {fmt_num(r.max_activation)} |",
        f"| Mean activation (active tokens) | {fmt_num(r.mean_activation)} |",
        "",
    ]
    spark = sparkline(r.histogram_counts)
    if spark and len(r.histogram_edges) == len(r.histogram_counts) + 1:
        lo, hi = r.histogram_edges[0], r.histogram_edges[-1]
        out += [f"Activation histogram ({fmt_num(lo)} to {fmt_num(hi)}, {sum(r.histogram_counts)} activations): `{spark}`", ""]
    if r.logits_positive or r.logits_negative:
        out += [
            "**Logit effects** (decoder direction through the final norm's scale and the unembedding; logit change per unit of activation)  ",
            f"Promoted: {_logit_list(r.logits_positive, markdown=True)}  ",
            f"Suppressed: {_logit_list(r.logits_negative, markdown=True)}",
            "",
        ]
    if r.top_examples:
        out += ["**Top activating examples** (⟦activating token⟧, ⟨other active token·activation⟩)", "", "| # | Activation | Context |", "|---:|---:|---|"]
        for i, ex in enumerate(r.top_examples[:examples], 1):
            out.append(f"| {i} | {fmt_num(ex.activation)} | {marked_context(ex, markdown=True)} |")
        out.append("")
    if r.interval_examples:
        out += ["**Examples by activation interval** (random activating tokens, weakest first)", "", "| Interval | Activation | Context |", "|---|---:|---|"]
        for ex in r.interval_examples:
            out.append(f"| {interval_name(r, ex)} | {fmt_num(ex.activation)} | {marked_context(ex, markdown=True)} |")
        out.append("")
    if r.held_out:
        out += ["**Held-out examples**", "", "| Activation | Context |", "|---:|---|"]
        for ex in r.held_out[: max(1, examples // 2)]:
            out.append(f"| {fmt_num(ex.activation)} | {marked_context(ex, markdown=True)} |")
        out.append("")
    out.append(f"**Top tokens:** {_token_list(r.top_tokens, markdown=True, limit=tokens)}  ")
    out.append(f"**Context tokens:** {_token_list(r.context_tokens, markdown=True, limit=tokens)}")
    if r.neighbours:
        links = ", ".join((f"[{j}](#feature-{j})" if j in sections else str(j)) + f" ({c:.2f})" for j, c in r.neighbours)
        out += ["", f"**Nearest features** (decoder cosine): {links}"]
    out.append("")
    return out


def write_report(
    records: Sequence[FeatureRecord],
    path: str | Path,
    *,
    title: str = "saetool interpretability report",
    meta: dict[str, Any] | None = None,
    examples: int = 10,
    tokens: int = 10,
    summary: Any = None,
) -> Path:
    """Write :func:`report_markdown` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, report_markdown(records, title=title, meta=meta, examples=examples, tokens=tokens, summary=summary))


# -- terminal text ------------------------------------------------------------------------------------
def feature_report_text(record: FeatureRecord, *, examples: int | None = None, tokens: int = 10, note: str | None = None) -> str:
    """A plain-text report of one feature for the terminal (seed 004's ``print_feature_report``);
    ``examples`` caps the top and held-out examples shown (default: all the record holds);
    ``note`` says where the statistics come from, under the label."""
    r = record
    out = [RULE, f"FEATURE {r.index}" + (" (dead)" if r.dead else ""), RULE, ""]
    label = _label_line(r)
    out.append(f"Label: {visible(label[0])}" + (f" ({visible(label[1])})" if label[1] else "") if label else "Label: none")
    if note:
        out.append(f"Note: {note}")
    out += [
        "",
        "Statistics:",
        f"  Density: {fmt_density(r.density)} of tokens",
        f"  Max activation: {fmt_num(r.max_activation)}",
        f"  Mean activation (active tokens): {fmt_num(r.mean_activation)}",
        f"  Dead: {'yes' if r.dead else 'no'}",
    ]
    rows = coarse_histogram(r.histogram_edges, r.histogram_counts)
    if rows and any(c for _, _, c in rows):
        top = max(c for _, _, c in rows)
        out += ["", "Activation histogram:"]
        for lo, hi, c in rows:
            bar = "█" * (math.ceil(c / top * 40) if c else 0)
            out.append(f"  {fmt_num(lo):>8} – {fmt_num(hi):<8} {bar} {c}")
    if r.logits_positive or r.logits_negative:
        out += ["", "Logit effects (per unit of activation):", f"  Promoted: {_logit_list(r.logits_positive, markdown=False)}", f"  Suppressed: {_logit_list(r.logits_negative, markdown=False)}"]
    for heading, exs, n in (("Top {n} Activating Examples", r.top_examples, examples), ("{n} Held-out Examples", r.held_out, examples), ("{n} Examples by Activation Interval", r.interval_examples, examples)):
        if not exs:
            continue
        shown = exs[:n]
        out += ["", heading.format(n=len(shown)) + ":", THIN_RULE]
        for i, ex in enumerate(shown, 1):
            where_in = f" ({interval_name(r, ex)})" if exs is r.interval_examples else ""
            out += ["", f"[Example {i}] Activation: {fmt_num(ex.activation)}{where_in}", f"  Activating text: {token_repr(ex.token)}", f"  Context: {marked_context(ex)}"]
            if ex.token_position >= 0:
                where = f"  Position in sequence: {ex.token_position}"
                out.append(where + (f" (sequence {ex.seq_index})" if ex.seq_index >= 0 else ""))
    out += ["", f"Top tokens: {_token_list(r.top_tokens, markdown=False, limit=tokens)}"]
    out.append(f"Context tokens: {_token_list(r.context_tokens, markdown=False, limit=tokens)}")
    if r.neighbours:
        out.append("Nearest features (decoder cosine): " + ", ".join(f"{j} ({c:.3f})" for j, c in r.neighbours))
    return "\n".join(out) + "\n"


def _window(ex: Example) -> tuple[int, int, int] | None:
    """``(sequence, first, stop)`` token positions the example's window covers, if known."""
    if ex.seq_index < 0 or ex.token_position < 0:
        return None
    first = ex.token_position - ex.position
    return ex.seq_index, first, first + len(ex.tokens)


def example_overlap(a: Sequence[Example], b: Sequence[Example]) -> tuple[int, int]:
    """``(same_token, overlapping)``: how many of ``a``'s examples sit on the very token of one of
    ``b``'s, and how many have a window sharing tokens with one of ``b``'s. Examples without a
    known place in the corpus are matched by their text and marked position instead."""
    same = overlapping = 0
    b_windows = [w for w in map(_window, b) if w is not None]
    b_tokens = {(e.seq_index, e.token_position) for e in b if _window(e) is not None}
    b_texts = {(tuple(e.tokens), e.position) for e in b if _window(e) is None}
    for ex in a:
        w = _window(ex)
        if w is None:
            hit = (tuple(ex.tokens), ex.position) in b_texts
            same += hit
            overlapping += hit
            continue
        same += (ex.seq_index, ex.token_position) in b_tokens
        overlapping += any(s == w[0] and lo < w[2] and w[1] < hi for s, lo, hi in b_windows)
    return same, overlapping


def compare_text(a: FeatureRecord, b: FeatureRecord, cosine: float | None) -> str:
    """Two features side by side: statistics, labels, shared top tokens, overlap of their top
    example windows and the cosine similarity of their decoder directions."""
    col = 24
    out = [RULE, f"COMPARE FEATURE {a.index} AND FEATURE {b.index}", RULE, ""]

    def row(name: str, x: str, y: str) -> str:
        return f"  {name:<26}{x:<{col}}{y}"

    out.append(row("", f"feature {a.index}", f"feature {b.index}"))

    def label(r: FeatureRecord) -> str:
        return "none" if r.label is None else visible(r.label.text)

    def clip(s: str) -> str:
        return s if len(s) < col - 1 else s[: col - 2] + "…"

    out += [
        row("label", clip(label(a)), label(b)),
        row("detection score", fmt_score(a.label.score if a.label else None), fmt_score(b.label.score if b.label else None)),
        row("density", fmt_density(a.density), fmt_density(b.density)),
        row("max activation", fmt_num(a.max_activation), fmt_num(b.max_activation)),
        row("mean activation", fmt_num(a.mean_activation), fmt_num(b.mean_activation)),
        row("dead", "yes" if a.dead else "no", "yes" if b.dead else "no"),
        "",
        f"Decoder cosine similarity: {fmt_num(cosine, 4)}",
    ]
    ca, cb = dict(a.top_tokens), dict(b.top_tokens)
    shared = [t for t, _ in a.top_tokens if t in cb]
    union = set(ca) | set(cb)
    jaccard = len(shared) / len(union) if union else 0.0
    out.append(f"Shared top tokens: {len(shared)} of {len(ca)} / {len(cb)} (Jaccard {jaccard:.2f})")
    for t in shared[:10]:
        out.append(f"  {token_repr(t):<24}{ca[t]:>6} {cb[t]:>6}")
    same, overlapping = example_overlap(a.top_examples, b.top_examples)
    out.append(
        f"Top examples: {same} of {len(a.top_examples)} at the same token as one of feature {b.index}'s "
        f"{len(b.top_examples)}; {overlapping} with overlapping windows"
    )
    return "\n".join(out) + "\n"
