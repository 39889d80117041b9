"""``saetool track --texts`` / ``--compare``: hypothesis tracks per token of given prompts.

At every counted token (not padding, not BOS or other special tokens) of each
prompt, the ``top_features`` most active features of each SAE layer are the
hypotheses of that layer. Hypotheses of adjacent layers are linked by decoder
cosine (``min_cosine``, ``min_ratio``; :func:`saetool.track.link.choose_links`)
and turned into tracks with births, continues, splits, merges and deaths by the
same tracker as corpus mode. A track's score is the sum of its features'
activations. Per token: the tracks, the **competing** tracks (those alive at
the last layer), their mean length, the mean layer where tracks are born (not
counting the first layer) and die, and the top track's share of the competing
tracks' score. Per prompt: the mean over its tokens.

With two prompt sets (``--compare A B``) each measure is compared across
prompts. Sets of equal size are **paired by line** (``pairing`` ``auto``; the
same question with a true and a false answer): each prompt is scored on its
tokens **from the first one where it differs from its pair** (``tokens``
``differing``; the answer, not the shared question), and the test is the paired
t-test on the per-pair differences (:func:`saetool.steer.stats.paired_t_p`)
with a t-interval of the mean difference. Unpaired sets are scored on all their
tokens and compared by Welch's t-test (:func:`saetool.steer.stats.welch_p`),
with Welch's interval of the difference. Mean and t-interval per set
(:func:`saetool.steer.stats.mean_ci`), and Holm (or BH) adjustment over the
measures tested.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import torch

from saetool.analysis.names import feature_name
from saetool.analysis.pairing import check_pairing, decide_pairing
from saetool.analysis.pathways import check_model, check_saes_fit
from saetool.analysis.pathways_inputs import batch, batches, check_rows, read_texts, rows_from_texts, special_ids
from saetool.analysis.select import LayerSAE, load_layer_saes
from saetool.artifacts.files import write_atomic
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import check_output_path
from saetool.console import log
from saetool.corpus.packing import bos_id
from saetool.errors import SaetoolError
from saetool.models.registry import load_model
from saetool.steer.prompts import pad_id_of
from saetool.steer.stats import CORRECTIONS, adjust, mcnemar_exact_p, mean_ci, paired_t_p, welch_ci, welch_p
from saetool.track.checklist import warn_failed_checklists
from saetool.track.link import choose_links, decoder_cosine
from saetool.track.store import write_tracks
from saetool.track.tracker import Link, Track, build_tracks

if TYPE_CHECKING:
    from saetool.models.base import HookedModel

MEASURES = ("n_tracks", "competing", "mean_length", "birth_layer", "death_layer", "top_share")
TOKEN_CHOICES = ("differing", "all")


@dataclass
class TextConfig:
    """Settings of a text-mode run (see the module docstring)."""

    min_cosine: float = 0.5
    min_ratio: float = 0.5
    top_features: int = 16
    context_size: int = 64
    batch_size: int = 8
    correction: str = "holm"
    pairing: str = "auto"
    tokens: str = "differing"

    def validate(self) -> None:
        if not (math.isfinite(self.min_cosine) and -1 <= self.min_cosine <= 1):
            raise SaetoolError(f"--min-cosine must be between -1 and 1 (got {self.min_cosine})")
        if not (math.isfinite(self.min_ratio) and 0 <= self.min_ratio <= 1):
            raise SaetoolError(f"--min-ratio must be between 0 and 1 (got {self.min_ratio})")
        if self.top_features < 1:
            raise SaetoolError(f"--top-features must be at least 1 (got {self.top_features})")
        if self.context_size < 2:
            raise SaetoolError(f"--context-size must be at least 2 (got {self.context_size})")
        if self.correction not in CORRECTIONS:
            raise SaetoolError(f"unknown --correction {self.correction!r}", hint="choose one of: " + ", ".join(CORRECTIONS))
        check_pairing(self.pairing)
        if self.tokens not in TOKEN_CHOICES:
            raise SaetoolError(f"unknown --tokens {self.tokens!r}", hint="choose one of: " + ", ".join(TOKEN_CHOICES))


@dataclass
class TextResult:
    path: Path
    tables: dict[str, pd.DataFrame]
    n_prompts: int
    n_tracks: int
    lines: list[str] = field(default_factory=list)


def token_tracks(codes: Sequence[torch.Tensor], cosines: Sequence[np.ndarray], config: TextConfig) -> tuple[list[Track], list]:
    """Tracks and events of one token: ``codes[L]`` its ``[d_sae]`` codes at each layer."""
    live = []
    for f in codes:
        k = min(config.top_features, int((f > 0).sum()))
        live.append(np.sort(torch.topk(f, k).indices.numpy()) if k else np.zeros(0, np.int64))
    links = []
    for i in range(len(codes) - 1):  # on the active features' block of the cosines only
        a, b = live[i], live[i + 1]
        sub = cosines[i][np.ix_(a, b)]
        found = choose_links(i, sub, None, np.ones(len(a), bool), np.ones(len(b), bool), min_cosine=config.min_cosine, min_correlation=-1.0, min_ratio=config.min_ratio)
        links.append([Link(i, int(a[ln.source]), int(b[ln.target]), ln.cosine, ln.correlation) for ln in found])
    tracks, events = build_tracks(live, links)
    for t in tracks:
        t.score = float(sum(codes[t.start + i][f] for i, f in enumerate(t.features)))
    return tracks, events


def token_measures(tracks: Sequence[Track], n_layers: int, layers: Sequence[int]) -> dict[str, float]:
    """The per-token measures of the module docstring (NaN where undefined)."""
    competing = [t for t in tracks if t.end == n_layers - 1]
    born = [layers[t.start] for t in tracks if t.start > 0]
    died = [layers[t.end] for t in tracks if t.end < n_layers - 1]
    total = sum(t.score for t in competing)
    return {
        "n_tracks": float(len(tracks)),
        "competing": float(len(competing)),
        "mean_length": float(np.mean([t.length for t in tracks])) if tracks else math.nan,
        "birth_layer": float(np.mean(born)) if born else math.nan,
        "death_layer": float(np.mean(died)) if died else math.nan,
        "top_share": max(t.score for t in competing) / total if total > 0 else math.nan,
    }


@dataclass
class Pairing:
    """How two prompt sets are compared: ``paired`` by line or not, and per prompt (the
    same for both prompts of a pair) the first position scored."""

    paired: bool
    starts: list[list[int]]
    note: str


def choose_pairing(rows: Sequence[Sequence[Sequence[int]]], labels: Sequence[str], config: TextConfig, *, skip: int = 0) -> Pairing:
    """Pair two sets by line when ``config.pairing`` says so (:func:`saetool.analysis.pairing.decide_pairing`),
    and then score each pair from its first differing token (``config.tokens``). ``skip``: leading
    tokens every row has (BOS), not counted as a shared opening."""
    if len(rows) != 2:
        return Pairing(False, [[0] * len(r) for r in rows], "")
    decision = decide_pairing(config.pairing, rows[0], rows[1], skip=skip)
    if not decision.paired:
        return Pairing(False, [[0] * len(r) for r in rows], f"compared unpaired ({decision.why}): every token scored, Welch's t-test")
    if config.tokens == "all":
        return Pairing(True, [[0] * len(r) for r in rows], f"paired by line: {len(rows[0])} pairs, every token scored, paired t-test")
    firsts = decision.firsts
    return Pairing(True, [firsts, firsts], f"paired by line: {len(rows[0])} pairs, each scored from the first token where it differs "
                   f"from its pair ({labels[0]} vs {labels[1]}), paired t-test")


def prompt_set_tables(
    model: "HookedModel", saes: Sequence[LayerSAE], texts: Sequence[str], rows: Sequence[Sequence[int]], starts: Sequence[int],
    label: str, config: TextConfig, cosines: Sequence[np.ndarray], start_id: int, *, logprob: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Rows of the ``tracks``, ``members``, ``events``, ``tokens`` and ``prompts`` tables for one prompt set;
    a prompt's measures are the means over its tokens scored (from ``starts[prompt]`` on). ``logprob``:
    each prompt also gets the model's log-probability of its scored tokens (:func:`scored_logprob`)."""
    tok = model.tokenizer
    special, pad = special_ids(tok), pad_id_of(tok)
    layers = [s.layer for s in saes]
    hooks = [s.hook for s in saes]
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("tracks", "members", "events", "tokens", "prompts")}
    next_id = start_id
    prompt = 0
    for chunk in batches(rows, config.batch_size):
        ids, mask, pos = batch(chunk, pad, special)
        with torch.inference_mode():
            acts = model.run_with_cache(ids.to(model.device), hooks, attention_mask=mask.to(model.device))
            codes = [s.sae.encode(acts[s.hook].to(s.sae.device, s.sae.dtype)).float().cpu() for s in saes]
            logp = next_token_logprobs(model, ids, mask) if logprob else None
        for b in range(ids.shape[0]):
            per_token, scored = [], []
            for t in np.nonzero(pos[b].numpy())[0]:
                tracks, events = token_tracks([c[b, t] for c in codes], cosines, config)
                m = token_measures(tracks, len(saes), layers)
                per_token.append(m)
                if t >= starts[prompt]:
                    scored.append(m)
                token = tok.decode([int(ids[b, t])])
                out["tokens"].append({"set": label, "prompt": prompt, "position": int(t), "token": token, "scored": int(t >= starts[prompt]), **m})
                for tr in tracks:
                    tid = next_id + tr.id
                    out["tracks"].append({
                        "id": tid, "set": label, "prompt": prompt, "position": int(t), "start_layer": layers[tr.start], "end_layer": layers[tr.end],
                        "length": tr.length, "start_event": tr.start_event, "end_event": tr.end_event, "score": tr.score,
                        "features": " ".join(feature_name(layers[tr.start + i], f) for i, f in enumerate(tr.features)),
                    })
                    for i, f in enumerate(tr.features):
                        out["members"].append({"track": tid, "layer": layers[tr.start + i], "feature": int(f), "activation": float(codes[tr.start + i][b, t, f])})
                for e in events:
                    out["events"].append({"set": label, "prompt": prompt, "position": int(t), "kind": e.kind, "layer_from": layers[e.step],
                                          "layer_to": layers[e.step + 1], "sources": " ".join(map(str, e.sources)), "targets": " ".join(map(str, e.targets))})
                next_id += len(tracks)
            means = {k: float(np.nanmean([m[k] for m in scored])) if any(math.isfinite(m[k]) for m in scored) else math.nan for k in MEASURES}
            if logp is not None:
                means["logprob"] = scored_logprob(logp[b], pos[b], starts[prompt])
            out["prompts"].append({"set": label, "prompt": prompt, "text": texts[prompt], "n_tokens": len(per_token), "first_scored": int(starts[prompt]),
                                   "n_scored": len(scored), **means})
            prompt += 1
    return out


def next_token_logprobs(model: "HookedModel", ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[batch, pos]``: the log-probability the model gives each token given the tokens before it
    (position 0, which nothing predicts, is NaN); the vocabulary never leaves the device."""
    logits = model.logits(ids.to(model.device), mask.to(model.device)).float()
    picked = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None].to(logits.device))[..., 0]
    return torch.cat([torch.full((ids.shape[0], 1), math.nan), picked.cpu()], dim=1)


def scored_logprob(logp: torch.Tensor, counted: torch.Tensor, start: int) -> float:
    """The summed log-probability (nats) of a prompt's scored tokens (counted, from ``start`` on, not
    the first position), each given the tokens before it; NaN when none is scored. Paired, the
    difference of two prompts' sums is their log-likelihood ratio (the shared opening cancels).
    ``logp``: the prompt's row of :func:`next_token_logprobs`."""
    positions = [int(t) for t in np.nonzero(counted.numpy())[0] if t >= max(start, 1)]
    return float(logp[positions].double().sum()) if positions else math.nan


def model_check(prompts: pd.DataFrame, labels: Sequence[str], *, paired: bool) -> tuple[dict[str, Any], str]:
    """How differently the model itself scores the two sets: each set's mean log-probability of its
    scored tokens and the difference, compared as the measures are (:func:`compare_values`), and,
    paired, in how many pairs the first set's prompt is the likelier (``pairs_a_likelier``, with a
    two-sided sign test, ``sign_p``). Whether the model prefers one set's answers, not one of the
    measures the adjustment covers; a longer answer pays for more tokens."""
    a, b = ([float(v) for v in prompts[prompts["set"] == lab].sort_values("prompt")["logprob"]] for lab in labels)
    r = compare_values(a, b, paired=paired)
    check = {k: _nan_none(v) if isinstance(v, float) else v for k, v in r.items()}
    if not r["n"] or not (math.isfinite(r["mean_a"]) and math.isfinite(r["mean_b"])):
        return check, "model check: no prompt has a token scored"
    line = (f"model check: log-probability of the scored tokens, {labels[0]} {r['mean_a']:.3g} vs {labels[1]} {r['mean_b']:.3g} nats, "
            f"difference {r['difference']:+.3g} [{r['low_difference']:.3g}, {r['high_difference']:.3g}] ({r['test']} p = {r['p']:.3g}; "
            "a check, not adjusted with the measures)")
    if paired:
        pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
        check["pairs_a_likelier"] = sum(x > y for x, y in pairs)
        check["sign_p"] = _nan_none(mcnemar_exact_p([float(x > y) for x, y in pairs], [float(y > x) for x, y in pairs]))
        line += f"; {labels[0]} the likelier in {check['pairs_a_likelier']} of {r['n']} pairs (sign test p = {check['sign_p']:.3g})"
    return check, line


def compare_values(va: Sequence[float], vb: Sequence[float], *, paired: bool) -> dict[str, Any]:
    """One measure of two sets: mean and 95% t-interval of each, the difference ``a - b`` with its 95%
    interval and p. ``paired``: ``va[i]`` pairs with ``vb[i]``; means, difference and paired t-test over
    the pairs where both are finite (``n``). Otherwise Welch's test and interval over every finite
    value. With no spread to test against (paired: one difference on every pair; unpaired: one value
    on every prompt of each set) the measure is not testable (``testable`` 0, p NaN)."""
    va, vb = [float(v) for v in va], [float(v) for v in vb]
    if paired:
        pairs = [(x, y) for x, y in zip(va, vb) if math.isfinite(x) and math.isfinite(y)]
        va, vb = [x for x, _ in pairs], [y for _, y in pairs]
        diff, low, high = mean_ci([x - y for x, y in pairs])
        n = len(pairs)
        testable = len({x - y for x, y in pairs}) > 1  # one difference on every pair has no spread to test against
    else:
        va, vb = [v for v in va if math.isfinite(v)], [v for v in vb if math.isfinite(v)]
        low, high = welch_ci(va, vb)
        n = len(va) + len(vb)
        testable = len(set(va)) > 1 or len(set(vb)) > 1
    ma, la, ha = mean_ci(va)
    mb, lb, hb = mean_ci(vb)
    if not paired:
        diff = ma - mb
    p = (paired_t_p(va, vb) if paired else welch_p(va, vb)) if testable else math.nan
    return {"n": n, "mean_a": ma, "low_a": la, "high_a": ha, "mean_b": mb, "low_b": lb, "high_b": hb,
            "difference": diff, "low_difference": low, "high_difference": high,
            "test": "paired t" if paired else "Welch", "p": p, "testable": int(testable)}


def compare_sets(prompts: pd.DataFrame, labels: Sequence[str], correction: str, *, paired: bool = False) -> pd.DataFrame:
    """Per measure, :func:`compare_values` (``paired``: the prompts of the two sets pair in order) and
    the p-value's adjustment over the measures tested (those not testable are left out of it)."""
    a, b = (prompts[prompts["set"] == lab].sort_values("prompt") for lab in labels)
    rows = [{"measure": m, **compare_values(a[m], b[m], paired=paired)} for m in MEASURES]
    table = pd.DataFrame(rows)
    tested = [i for i, r in enumerate(rows) if r["testable"] and math.isfinite(r["p"])]
    adjusted = adjust([rows[i]["p"] for i in tested], correction) if tested else []
    table["p_adjusted"] = math.nan
    for i, q in zip(tested, adjusted):
        table.loc[i, "p_adjusted"] = q
    return table


def run_text_track(
    config: TextConfig,
    sae_paths: Sequence[str | Path],
    prompt_files: Sequence[str | Path],
    *,
    output: str | Path | None = None,
    overwrite: bool = False,
    csv: str | Path | None = None,
    model_name: str | None = None,
    backend: str = "transformers",
    device: str = "cpu",
    dtype: str = "float32",
    model: "HookedModel | None" = None,
) -> TextResult:
    """Hypothesis tracks per token of one prompt set, or two compared; writes a ``tracks`` artifact (mode ``text``)."""
    config.validate()
    saes = load_layer_saes([str(p) for p in sae_paths], device)
    if len(saes) < 2:
        raise SaetoolError("track needs SAEs at two or more layers", hint="pass SAE files, one per layer (or an sae-set)")
    warn_failed_checklists(saes)
    sets = [read_texts(p, what="prompt file") for p in prompt_files]
    labels = [Path(p).stem for p in prompt_files]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [str(p) for p in prompt_files]
    ins = [*sae_paths, *prompt_files]
    out = check_output_path(output or Path("tracks.h5"), overwrite=overwrite, inputs=ins)
    if csv is not None:
        check_outputs([("--output", out), ("--csv", Path(csv))], ins, overwrite=True)
        check_output_path(csv, overwrite=overwrite, inputs=ins, option="--csv")
    name = check_model(saes, model_name if model is None else (model_name or model.model_id))
    if model is None:
        model = load_model(name, backend=backend, device=device, dtype=dtype)
    check_saes_fit(model, saes)
    for s in saes:
        s.sae.to(model.device)
    cosines = [decoder_cosine(saes[i].sae, saes[i + 1].sae) for i in range(len(saes) - 1)]
    token_rows = [rows_from_texts(model.tokenizer, texts, config.context_size) for texts in sets]
    for r, label in zip(token_rows, labels):
        check_rows(r, model.tokenizer, source=label)
    pairing = choose_pairing(token_rows, labels, config, skip=int(bos_id(model.tokenizer) is not None))
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ("tracks", "members", "events", "tokens", "prompts")}
    for texts, r, starts, label in zip(sets, token_rows, pairing.starts, labels):
        part = prompt_set_tables(model, saes, texts, r, starts, label, config, cosines, start_id=len(rows["tracks"]), logprob=len(sets) == 2)
        for k in rows:
            rows[k] += part[k]
    tables = {k: pd.DataFrame(v) for k, v in rows.items()}
    layer_rows = []
    for s in saes:
        ev = tables["events"]
        layer_rows.append({"layer": s.layer, "hook": s.hook, "births": int(((ev["kind"] == "birth") & (ev["layer_to"] == s.layer)).sum()),
                           "deaths": int(((ev["kind"] == "death") & (ev["layer_from"] == s.layer)).sum())})
    tables["layers"] = pd.DataFrame(layer_rows)
    lines = [f"{lab}: {len(tables['prompts'][tables['prompts']['set'] == lab])} prompts" for lab in labels]
    pairing_info: dict[str, Any] = {}
    check: dict[str, Any] = {}
    if len(sets) == 2:
        prompts = tables["prompts"]
        unscored = sorted(set(prompts.loc[prompts["n_scored"] == 0, "prompt"])) if pairing.paired else []
        lines.append(pairing.note)
        if pairing.paired and config.tokens == "differing":
            scored = prompts[~prompts["prompt"].isin(unscored)]
            lines.append(f"scored tokens per prompt: {scored['n_scored'].mean():.1f} of {scored['n_tokens'].mean():.1f} on average" if len(scored) else
                         "no pair differs: nothing to compare")
        if unscored:
            shown = ", ".join(str(i + 1) for i in unscored[:10]) + (" ..." if len(unscored) > 10 else "")
            lines.append(f"{len(unscored)} pair(s) left out: a prompt with no token scored (identical lines, one line a prefix of the other, "
                         f"or the difference past --context-size {config.context_size}; line {shown})")
        pairing_info = {"paired": pairing.paired, "tokens": config.tokens if pairing.paired else "all", "left_out": [int(i) for i in unscored]}
        tables["compare"] = compare_sets(prompts, labels, config.correction, paired=pairing.paired)
        check, check_line = model_check(prompts[~prompts["prompt"].isin(unscored)], labels, paired=pairing.paired)
        for r in tables["compare"].to_dict(orient="records"):
            if not r["testable"]:
                both = math.isfinite(r["mean_a"]) and math.isfinite(r["mean_b"])
                if not (math.isfinite(r["mean_a"]) or math.isfinite(r["mean_b"])):
                    why = "no value on any prompt"
                elif not both:
                    why = f"values in one set only ({labels[0] if math.isfinite(r['mean_a']) else labels[1]})"
                elif pairing.paired:
                    why = ("one value in both prompts of every pair" if r["difference"] == 0
                           else f"the same difference ({r['difference']:+.3g}) on every pair, no spread to test against")
                else:
                    why = (f"{r['mean_a']:.3g} on every prompt of both sets" if r["mean_a"] == r["mean_b"]
                           else f"one value in each set ({r['mean_a']:.3g}, {r['mean_b']:.3g}), no spread to test against")
                lines.append(f"{r['measure']}: {why}: not testable")
                continue
            lines.append(f"{r['measure']}: {labels[0]} {r['mean_a']:.3g} vs {labels[1]} {r['mean_b']:.3g}, difference {r['difference']:+.3g} "
                         f"[{r['low_difference']:.3g}, {r['high_difference']:.3g}] ({r['test']} p = {r['p']:.3g}, {config.correction} {r['p_adjusted']:.3g}; n {r['n']})")
        lines.append(check_line)
    summary = {"n_prompts": len(tables["prompts"]), "n_tracks": len(tables["tracks"]), "sets": labels, **({"pairing": pairing_info, "model_check": check} if pairing_info else {}),
               "means": {lab: {m: _nan_none(tables["prompts"][tables["prompts"]["set"] == lab][m].mean()) for m in MEASURES} for lab in labels}}
    settings = {**asdict(config), "prompts": [str(Path(p).resolve()) for p in prompt_files], "model": model.model_id}
    sae_info = [{"layer": s.layer, "hook": s.hook, "path": str(Path(s.path).resolve()), "d_sae": s.sae.cfg.d_sae} for s in saes]
    attrs = {"mode": "text", "layers": [s.layer for s in saes], "hooks": [s.hook for s in saes], "saes": sae_info, "settings": settings,
             "summary": summary, "n_tracks": len(tables["tracks"])}
    prov = build_provenance(model=model.model_id, backend=model.backend_name, hooks=[s.hook for s in saes],
                            parents=[s.path for s in saes if Path(s.path).is_file()], track=settings)
    write_tracks(out, tables, attrs=attrs, provenance=prov, overwrite=overwrite)
    if csv is not None:
        write_atomic(csv, tables["tokens"].to_csv(index=False))
    log(f"[dim]track (text): {summary['n_prompts']} prompts, {summary['n_tracks']} tracks[/dim]")
    return TextResult(out, tables, summary["n_prompts"], summary["n_tracks"], lines)


def _nan_none(v: Any) -> Any:
    v = float(v)
    return None if not math.isfinite(v) else v
