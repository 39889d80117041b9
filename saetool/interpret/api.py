"""The Python API behind ``saetool interpret``.

:func:`interpret` streams an activations artifact through an SAE twice (pass 1:
statistics and examples, pass 2: histograms), then gathers each example's
context window, common tokens, decoder-cosine neighbours and a label, and
writes a ``features`` artifact. Memory is bounded by one chunk of
activations plus ``[d_sae, k]`` running tensors. The collector state is
checkpointed into the partial artifact (two alternating slots, so a kill while
writing one leaves the other intact); ``resume=True`` continues from it and
gives the same arrays as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import h5py
import numpy as np
import torch

from saetool.artifacts.activations import ActivationsFile, token_contexts
from saetool.artifacts.provenance import build_provenance, file_sha256, redact_value
from saetool.artifacts.resume import check_resumable
from saetool.artifacts.store import ArtifactWriter, check_not_being_written, check_output_path, partial_path
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.extract.api import ExtractConfig, extract_activations
from saetool.interpret.collect import CollectSettings, FeatureCollector
from saetool.interpret.logits import logit_effects
from saetool.interpret.records import FeatureRecord, Label, LabelContext
from saetool.interpret.scoring import parse_scorers
from saetool.interpret.selection import check_order, density_summary, report_order, select_features
from saetool.interpret.store import KIND, ExampleArrays, records_from_h5, write_features, write_labels
from saetool.models.registry import tokenizer_or_none
from saetool.plugins import host
from saetool.progress import token_progress
from saetool.sae.features import unit_rows, values_at
from saetool.sae.io import load_sae

if TYPE_CHECKING:
    from saetool.sae.model import SAE

#: Settings that must match for ``resume`` to continue a partial run.
RESUME_KEYS = ("features", "examples", "held_out", "negatives", "bins", "seed", "chunk_rows", "hook", "intervals", "per_interval")
CHECKPOINT = "checkpoint"


@dataclass
class InterpretConfig:
    """What to collect. ``features`` restricts the run to those ids; ``top`` keeps
    ``top`` features chosen by ``order`` (:mod:`saetool.interpret.selection`:
    by default sampled across log-density bands, dense features listed apart)."""

    features: list[int] | None = None
    top: int | None = None
    order: str = "bands"
    dense_threshold: float = 0.1
    intervals: int = 5
    per_interval: int = 2
    logit_tokens: int = 10
    scorers: list[str] | None = field(default_factory=lambda: ["detection", "fuzzing"])
    examples: int = 20
    held_out: int = 10
    negatives: int = 10
    context: int = 24
    bins: int = 40
    neighbours: int = 10
    common_tokens: int = 10
    labeler: str | None = "tokens"
    labeler_options: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    chunk_rows: int | None = None
    checkpoint_every: int | None = None  # chunks; default: every 30 s
    checkpoint_seconds: float = 30.0

    def validate(self, d_sae: int) -> None:
        for name in ("examples", "context", "bins"):
            if getattr(self, name) < 1:
                raise SaetoolError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("held_out", "negatives", "neighbours"):
            if getattr(self, name) < 0:
                raise SaetoolError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(self, name)})")
        if self.features is not None and self.top is not None:
            raise SaetoolError("give --features or --top, not both")
        if self.features is not None:
            if not self.features:
                raise SaetoolError("--features is empty")
            bad = [f for f in self.features if not 0 <= f < d_sae]
            if bad:
                raise SaetoolError(f"feature {bad[0]} is out of range: the SAE has {d_sae} features (0..{d_sae - 1})")
            if len(set(self.features)) != len(self.features):
                raise SaetoolError("--features lists a feature twice")
        if self.top is not None and not 1 <= self.top:
            raise SaetoolError(f"--top must be at least 1 (got {self.top})")

        check_order(self.order)
        if not 0 < self.dense_threshold <= 1:
            raise SaetoolError(f"--dense-threshold must be in (0, 1] (got {self.dense_threshold})")
        for name in ("intervals", "per_interval", "logit_tokens"):
            if getattr(self, name) < 0:
                raise SaetoolError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(self, name)})")


@dataclass
class InterpretResult:
    path: Path
    records: list[FeatureRecord]
    d_sae: int
    n_tokens: int
    dead: int
    labeler: str | None


def default_output(sae_path: str | Path) -> Path:
    return Path(f"features-{Path(sae_path).stem}.h5")


def parse_features(spec: str | None) -> list[int] | None:
    """``"0,5,10-12"`` -> ``[0, 5, 10, 11, 12]`` (one-line error on junk)."""
    if spec is None:
        return None
    out: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise SaetoolError(f"--features must be comma-separated ids or ranges like 0,5,10-12 (got {spec!r})") from None
    return out


def check_compatible(sae: "SAE", acts: "ActivationsFile") -> str:
    """The hook to read; one-line error when the SAE cannot read these activations."""
    hook = sae.cfg.hook if sae.cfg.hook in acts.hooks else acts.hooks[0]
    sae.check_input(acts.d(hook), hook, what=f"activations in {acts.path.name}")
    return hook


def interpret(
    config: InterpretConfig,
    activations: str | Path,
    sae_path: str | Path,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    tokenizer: Any = None,
) -> InterpretResult:
    """Collect statistics, examples and labels for an SAE's features; write a ``features`` artifact."""
    sae = load_sae(str(sae_path), config.device)
    out = check_output_path(output or default_output(sae_path), overwrite=overwrite, resume=resume, inputs=[activations, sae_path])
    with ActivationsFile(activations) as acts:
        hook = check_compatible(sae, acts)
        d_sae = sae.cfg.d_sae
        config.validate(d_sae)
        acts.require_tokens()
        if config.labeler:
            check_labeler(config.labeler, config.labeler_options)

            config.scorers = parse_scorers(config.scorers)
        chunk_rows = config.chunk_rows or max(256, min(8192, (1 << 24) // d_sae))
        settings = {**asdict(config), "chunk_rows": chunk_rows, "hook": hook}
        settings["labeler_options"] = {k: redact_value(k, v) for k, v in config.labeler_options.items()}
        sae_sha = file_sha256(sae_path) if Path(sae_path).is_file() else ""
        model = acts.model or sae.cfg.model
        provenance = build_provenance(model=model, hooks=[hook], parents=[activations] + ([sae_path] if Path(sae_path).is_file() else []), interpret=settings)
        tracked = torch.tensor(config.features, dtype=torch.long) if config.features is not None else None
        s = CollectSettings(examples=config.examples, held_out=config.held_out, negatives=config.negatives, bins=config.bins, seed=config.seed, intervals=config.intervals, per_interval=config.per_interval)
        collectors = {"main": FeatureCollector(d_sae, s, tracked)}
        if resume and not _check_resumable(out, settings, sae_sha):
            resume = False
        with ArtifactWriter(out, KIND, provenance, overwrite=overwrite, resume=resume, keep_partial_on_error=True) as writer:
            fh = writer.file
            assert fh is not None
            start_pass, start_row = 1, 0
            if writer.resumed:
                start_pass, start_row = _load_checkpoint(fh, collectors)
                log(f"resuming {writer.partial} at pass {start_pass}, token {start_row}")
            fh.attrs["settings"] = json.dumps(settings, sort_keys=True, default=str)
            fh.attrs["sae_sha256"] = sae_sha
            ckpt = _Checkpointer(writer, collectors, config, sae_sha)
            _stream(sae, acts, hook, collectors["main"], chunk_rows, start_pass, start_row, ckpt, progress)
            main = all_stats = collectors["main"]
            selected, sel_pos = _select(config, main, all_stats, tracked, acts.n_tokens)
            tok = tokenizer if tokenizer is not None else (_tokenizer(model) if model else None)
            data = _finish(config, sae, acts, main, all_stats, selected, sel_pos, tok, hook=hook, model=model, sae_sha=sae_sha, settings=settings)

            write_features(fh, data)
            records = records_from_h5(fh, [int(f) for f in selected])
            used = None
            if config.labeler and records:
                ctx = LabelContext(model=model, tokenizer=tok, options=dict(config.labeler_options), scorers=config.scorers,
                                   token_counts=token_counts(acts, tok), n_tokens=acts.n_tokens)
                labels, used = label_records(records, config.labeler, ctx)
                for rec, lab in zip(records, labels):
                    rec.label = lab
                write_labels(fh, labels, used, len(records))
            if CHECKPOINT in fh:
                del fh[CHECKPOINT]
        dead = int((all_stats.count == 0).sum())
        return InterpretResult(path=out, records=report_order(records, config.order), d_sae=d_sae, n_tokens=acts.n_tokens, dead=dead, labeler=used)


def check_labeler(name: str, options: dict[str, str]) -> None:
    """Fail before any work on an unknown labeler, one that labels positions rather
    than features, or options it refuses (e.g. a secret given on the command line)."""
    features = host().collect("feature_labelers")
    if name not in features:
        what = f"labeler {name!r} labels positions, not features" if name in host().collect("position_labelers") else f"unknown labeler {name!r}"
        raise SaetoolError(what, hint="choose one of: " + ", ".join(sorted(features)))
    check = getattr(features[name].obj, "check_options", None)
    if check is not None:
        check(dict(options))


def label_records(records: Sequence[FeatureRecord], name: str, ctx: LabelContext) -> tuple[list[Label], str]:
    """Labels from labeler ``name``; on a :class:`SaetoolError` warn and use ``tokens``."""
    try:
        labels = list(host().get("feature_labelers", name).label(records, ctx))
    except SaetoolError as exc:
        if name == "tokens":
            raise
        message = exc.one_line().removeprefix("error: ")
        warn(f"labeler {name} failed: {message}" + ("" if "tokens label" in message else "; using the tokens labeler instead"))
        name = "tokens"
        labels = list(host().get("feature_labelers", name).label(records, ctx))
    if len(labels) != len(records):
        raise SaetoolError(f"labeler {name} returned {len(labels)} labels for {len(records)} features")
    return labels, name


# -- streaming ----------------------------------------------------------------------------------
def active_triples(sae: "SAE", x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """The active entries of ``sae.encode(x)`` as ``(token, feature, value)``; a TopK
    SAE's come straight from its top-k, without the dense matrix."""
    with torch.no_grad():
        x = x.to(device=sae.device, dtype=sae.dtype)
        if sae.cfg.activation == "topk":
            vals, idx = torch.topk(sae.encode_pre(x), sae.cfg.k, dim=-1)  # type: ignore[arg-type]
            vals = torch.relu(vals).float().cpu()
            idx = idx.cpu()
            tok = torch.arange(x.shape[0]).unsqueeze(1).expand_as(idx)
            live = vals > 0
            return tok[live], idx[live], vals[live]
        f = sae.encode(x).float().cpu()
        nz = (f > 0).nonzero()
        return nz[:, 0], nz[:, 1], f[nz[:, 0], nz[:, 1]]


def _stream(sae, acts, hook, col: FeatureCollector, chunk_rows, start_pass, start_row, ckpt, progress) -> None:
    n = acts.n_tokens
    for pass_no in (1, 2):
        if pass_no < start_pass:
            continue
        first = start_row if pass_no == start_pass else 0
        what = "statistics and examples" if pass_no == 1 else "histograms"
        with token_progress(f"interpret pass {pass_no}/2 ({what})", total=n, completed=first, enabled=progress) as advance:
            for lo in range(first, n, chunk_rows):
                hi = min(n, lo + chunk_rows)
                tok, feat, val = active_triples(sae, acts.read_finite(hook, lo, hi))
                if pass_no == 1:
                    col.update_sparse(tok + lo, feat, val, lo, hi - lo)
                else:
                    col.update_histogram_sparse(feat, val, tok + lo)
                advance(hi - lo)
                ckpt.maybe(pass_no, hi, final=hi == n)
    ckpt.save(3, 0)


class _Checkpointer:
    """Writes the collectors' state into ``checkpoint/slot{0,1}`` of the partial file, alternating."""

    def __init__(self, writer: Any, collectors: dict[str, FeatureCollector], config: InterpretConfig, sae_sha: str) -> None:
        self.writer, self.collectors, self.config, self.sae_sha = writer, collectors, config, sae_sha
        self.chunks = 0
        self.last = time.monotonic()

    def maybe(self, pass_no: int, next_row: int, *, final: bool = False) -> None:
        self.chunks += 1
        every = self.config.checkpoint_every
        due = (self.chunks % every == 0) if every else (time.monotonic() - self.last >= self.config.checkpoint_seconds)
        if due or final:
            self.save(pass_no + 1 if final else pass_no, 0 if final else next_row)

    def save(self, pass_no: int, next_row: int) -> None:
        fh = self.writer.file
        g = fh.require_group(CHECKPOINT)
        slot = 1 - int(g.attrs.get("current", 1))
        sg = g.require_group(f"slot{slot}")
        for cname, col in self.collectors.items():
            for name, tensor in col.state().items():
                arr = tensor.cpu().numpy()
                key = f"{cname}/{name}"
                if key in sg and sg[key].shape == arr.shape and sg[key].dtype == arr.dtype:
                    sg[key][...] = arr
                else:
                    if key in sg:
                        del sg[key]
                    sg.create_dataset(key, data=arr)
        sg.attrs["position"] = np.array([pass_no, next_row], np.int64)
        fh.flush()
        g.attrs["current"] = slot
        fh.flush()
        self.last = time.monotonic()


def _check_resumable(out: Path, settings: dict[str, Any], sae_sha: str) -> bool:
    """Whether the partial run can be continued: False (and it is removed) when it is
    unreadable, i.e. killed before its first checkpoint; a one-line error (the partial
    run kept) when it used other settings or another SAE."""
    partial = partial_path(out)
    check_not_being_written(out)
    try:
        with h5py.File(partial, "r") as fh:
            old = json.loads(fh.attrs.get("settings", "{}") or "{}")
            old_sha = fh.attrs.get("sae_sha256")
    except OSError:
        warn(f"the partial run {partial} is unreadable (killed before its first checkpoint?); starting afresh")
        partial.unlink(missing_ok=True)
        return False
    if old.get("hook") is not None:
        check_resumable(old, settings, f"the partial run {partial}", keys=RESUME_KEYS, hint="use the same settings, or run without --resume")
    if old_sha is not None and str(old_sha) != sae_sha:
        raise SaetoolError("cannot resume: the partial run was made with another SAE (sha256 differs)", hint="pass the same --sae, or run without --resume")
    return True


def _load_checkpoint(fh: "h5py.File", collectors: dict[str, FeatureCollector]) -> tuple[int, int]:
    if CHECKPOINT not in fh or "current" not in fh[CHECKPOINT].attrs:
        return 1, 0
    sg = fh[CHECKPOINT][f"slot{int(fh[CHECKPOINT].attrs['current'])}"]
    for cname, col in collectors.items():
        col.load_state({name: sg[f"{cname}/{name}"][()] for name in (*FeatureCollector.STATE, "counters") if f"{cname}/{name}" in sg})
    pass_no, row = (int(v) for v in sg.attrs["position"])
    return pass_no, row


# -- selection and finishing ---------------------------------------------------------------------
def _select(config: InterpretConfig, main: FeatureCollector, all_stats: FeatureCollector, tracked: "torch.Tensor | None", n_tokens: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Feature ids to report and their columns in ``main``."""
    if tracked is not None:
        return tracked.numpy(), np.arange(len(tracked))
    if config.top is None and config.order in ("bands", "score", "index"):
        ids = np.arange(len(main.count))  # every feature, by id; the report lists dense and dead ones apart
        return ids, ids
    ids = select_features(main.count.numpy(), main.max.numpy(), n_tokens, top=config.top, order=config.order, dense_threshold=config.dense_threshold, seed=config.seed)
    return ids, ids


def _finish(config, sae, acts, main, all_stats, selected, sel_pos, tokenizer, *, hook, model, sae_sha, settings) -> dict[str, Any]:
    d_sae = sae.cfg.d_sae
    pos = torch.as_tensor(sel_pos, dtype=torch.long)
    held_r, top_r, top_v = main.split_examples()
    groups = {
        "top": (top_r[pos], top_v[pos]),
        "held_out": (held_r[pos], None),
        "negatives": (main.neg_r[pos], None),
        "intervals": (main.interval_rows()[pos], None),
    }
    examples: dict[str, ExampleArrays] = {}
    all_ids: list[np.ndarray] = []
    for g, (rows_t, vals_t) in groups.items():
        rows = rows_t.numpy().astype(np.int64)
        F, m = rows.shape
        ex = ExampleArrays(
            values=np.full((F, m), np.nan, np.float32),
            row=rows.copy(),
            seq_index=np.full((F, m), -1, np.int64),
            token_position=np.full((F, m), -1, np.int64),
            token_ids=np.full((F, m, config.context), -1, np.int32),
            position=np.full((F, m), -1, np.int32),
        )
        valid = rows >= 0
        if valid.any():
            r = rows[valid]
            _, seq, tpos, ctx, cpos = token_contexts([acts], np.zeros(len(r), np.int64), r, config.context)
            ex.seq_index[valid], ex.token_position[valid], ex.token_ids[valid], ex.position[valid] = seq, tpos, ctx, cpos
            if vals_t is not None:
                ex.values[valid] = vals_t.numpy()[valid]
            elif g == "negatives":
                ex.values[valid] = 0.0
        examples[g] = ex
        all_ids.append(ex.token_ids.ravel())
    window_values(sae, acts, hook, examples, selected)

    logits = logit_effects(sae, selected, model, config.logit_tokens, device=config.device) if config.logit_tokens else None
    if logits is not None:
        all_ids += [logits["positive_ids"].ravel(), logits["negative_ids"].ravel()]
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    common = _common_tokens(examples["top"], config.common_tokens, specials)
    vocab_ids = np.unique(np.concatenate([a.astype(np.int64) for a in all_ids] + [common["top_token_ids"].ravel(), common["context_token_ids"].ravel()]))
    vocab_ids = vocab_ids[vocab_ids >= 0]
    vocab_text = _decode_each(tokenizer, vocab_ids)
    nb_i, nb_c, directions = neighbours(sae, selected, config.neighbours)
    n = acts.n_tokens
    stats = {
        "count": all_stats.count.numpy().astype(np.int64),
        "density": (all_stats.count.double() / n).numpy(),
        "max": all_stats.max.numpy().astype(np.float32),
        "mean": all_stats.mean().numpy().astype(np.float32),
        "std": all_stats.std().numpy().astype(np.float32),
    }
    assert len(stats["count"]) == d_sae

    return {
        "summary": density_summary(stats["count"], n, config.dense_threshold).to_json(),
        "d_sae": d_sae,
        "n_tokens": n,
        "hook": hook,
        "model": model or "",
        "context": config.context,
        "settings": settings,
        "sae_sha256": sae_sha,
        "stats": stats,
        "index": np.asarray(selected, np.int64),
        "hist_edges": main.histogram_edges()[pos].numpy(),
        "hist_counts": main.hist[pos].numpy(),
        "examples": examples,
        "common": common,
        "neighbours_index": nb_i,
        "neighbours_cosine": nb_c,
        "directions": directions,
        "vocab_ids": vocab_ids,
        "vocab_text": vocab_text,
        "logits": logits,
        "interval_edges": main.tracked_max()[pos].numpy()[:, None] * np.linspace(0, 1, config.intervals + 1)[None, :],
    }


def window_values(sae: "SAE", acts: "ActivationsFile", hook: str, examples: dict[str, ExampleArrays], selected: "np.ndarray") -> None:
    """Each example window's per-token activations of its feature (``token_values``, NaN where
    a token has no stored activation, e.g. a BOS token left out of extraction), and each
    example's ``values`` set from the marked token (re-encoding just the rows the windows cover)."""
    fh = acts.artifact.file
    keys_all = fh["tokens/seq_index"][()].astype(np.int64) * (1 << 32) + fh["tokens/position"][()].astype(np.int64)
    pairs_r, pairs_f, where = [], [], []
    for g, ex in examples.items():
        F, m, W = ex.token_ids.shape
        ex.token_values = np.full((F, m, W), np.nan, np.float32)
        valid = ex.row >= 0
        if not valid.any():
            continue
        fi, mi = np.nonzero(valid)
        start = ex.token_position[fi, mi] - ex.position[fi, mi]
        pos = start[:, None] + np.arange(W)[None, :]
        want = ex.seq_index[fi, mi][:, None] * (1 << 32) + pos
        rows = np.searchsorted(keys_all, want).clip(0, len(keys_all) - 1)
        ok = (keys_all[rows] == want) & (ex.token_ids[fi, mi] >= 0)
        k, w = np.nonzero(ok)
        pairs_r.append(rows[k, w])
        pairs_f.append(np.asarray(selected)[fi[k]])
        where.append((g, fi[k], mi[k], w))
    if pairs_r:
        vals = values_at(sae, acts, hook, np.concatenate(pairs_r), np.concatenate(pairs_f))
        off = 0
        for g, fi, mi, w in where:
            examples[g].token_values[fi, mi, w] = vals[off : off + len(fi)]
            off += len(fi)
    for g, ex in examples.items():
        valid = ex.row >= 0
        if g != "top" and valid.any():  # the top values are the collector's (the same numbers)
            fi, mi = np.nonzero(valid)
            ex.values[fi, mi] = ex.token_values[fi, mi, ex.position[fi, mi]]


def _common_tokens(ex: ExampleArrays, m: int, specials: set[int]) -> dict[str, "np.ndarray"]:
    """The ``m`` commonest marked tokens and context tokens over each feature's top examples."""
    F = ex.row.shape[0]
    out = {name: np.full((F, m), -1 if name.endswith("ids") else 0, np.int64) for name in ("top_token_ids", "top_token_counts", "context_token_ids", "context_token_counts")}
    W = ex.token_ids.shape[2]
    for i in range(F):
        valid = ex.row[i] >= 0
        if not valid.any():
            continue
        toks = ex.token_ids[i][valid]
        mark = ex.position[i][valid]
        at = toks[np.arange(len(toks)), mark]
        around = toks[np.arange(W)[None, :] != mark[:, None]]
        around = around[(around >= 0) & ~np.isin(around, list(specials))] if specials else around[around >= 0]
        for kind, arr in (("top_token", at), ("context_token", around)):
            ids, counts = np.unique(arr, return_counts=True)
            order = np.lexsort((ids, -counts))[:m]
            out[f"{kind}_ids"][i, : len(order)] = ids[order]
            out[f"{kind}_counts"][i, : len(order)] = counts[order]
    return out


def neighbours(sae: "SAE", features: Sequence[int], n: int, *, block: int = 1024) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Nearest features of each of ``features`` by decoder cosine similarity (self excluded):
    ``[F, n]`` ids and cosines, and the unit decoder rows ``[F, d_out]``."""
    with torch.no_grad():
        W = sae.W_dec.detach().float().cpu()
        Wn = unit_rows(W)
        feats = torch.as_tensor(np.asarray(features), dtype=torch.long)
        n = min(n, Wn.shape[0] - 1)
        idx = np.full((len(feats), max(n, 0)), -1, np.int64)
        cos = np.zeros((len(feats), max(n, 0)), np.float32)
        if n > 0:
            for b in range(0, len(feats), block):
                f = feats[b : b + block]
                sims = Wn[f] @ Wn.T
                sims[torch.arange(len(f)), f] = float("-inf")
                v, i = sims.topk(n, dim=1)
                idx[b : b + len(f)] = i.numpy()
                cos[b : b + len(f)] = v.numpy()
        return idx, cos, Wn[feats].numpy()


def token_counts(acts: "ActivationsFile", tokenizer: Any, chunk_rows: int = 1 << 22) -> dict[str, int]:
    """How often each token (as text) occurs among the activations' tokens (read in chunks)."""
    ds = acts.artifact.file["tokens/token_ids"]
    counts = np.zeros(0, np.int64)
    for start in range(0, acts.n_tokens, chunk_rows):
        ids = ds[start : min(start + chunk_rows, acts.n_tokens)].astype(np.int64)
        ids = ids[ids >= 0]
        part = np.bincount(ids)
        if len(part) > len(counts):
            counts = np.pad(counts, (0, len(part) - len(counts)))
        counts[: len(part)] += part
    ids = np.flatnonzero(counts)
    out: dict[str, int] = {}
    for text, n in zip(_decode_each(tokenizer, ids), counts[ids].tolist()):
        out[text] = out.get(text, 0) + int(n)
    return out


def _tokenizer(model: str) -> Any:
    return tokenizer_or_none(model)


def _decode_each(tokenizer: Any, ids: "np.ndarray") -> list[str]:
    if tokenizer is None:
        return [f"<{int(i)}>" for i in ids]
    return list(tokenizer.batch_decode([[int(i)] for i in ids]))


def extract_for_sae(sae_path: str | Path, model: str, corpus: str, num_tokens: int, context_size: int, out: Path, *, device: str = "cpu") -> Path:
    """Run ``model`` over ``corpus`` and store the SAE's hook (for ``--model/--corpus``)."""
    cfg = load_sae(str(sae_path), device).cfg
    config = ExtractConfig(model=model, corpus=corpus, hooks=[cfg.hook], num_tokens=num_tokens, context_size=context_size, device=device)
    return extract_activations(config, out, overwrite=True)
