"""``saetool transitions``: SAE features at the token where a text turns from negative to positive.

1. **Texts.** Read from a file, or generated from base prompts with the model:
   the prompt is continued (``max_new_tokens``), a bridge such as
   ``" However,"`` is appended and the text is continued again.
2. **Labels.** A position labeler (``register_position_labelers`` hook; built-ins in :mod:`saetool.analysis.transitions_labelers`)
   names the transition token of each text, as an index into the model
   tokenizer's tokens (``[BOS] + tokens``); ``offset`` shifts it (-1: the token
   before). Texts without one are skipped. In generated texts the labeler
   reads from the bridge on (the turn is there by construction), so a
   transition word in the base prompt or the first continuation never wins.
3. **Features.** The activation at the SAE's hook at each labeled token goes
   through the SAE: reconstruction quality there (MSE, explained variance,
   cosine, L0; and the same over every token of the texts, for comparison) and
   the features active across samples (count and share), top N by count.
   Explained variance at the transition tokens is measured against the mean
   activation over every token of the texts (the samples are often one
   token, " However", whose own spread is tiny); ``explained_variance_within``
   uses the samples' own mean.
4. **Control** (optional). Inputs of the same kind that do not turn from
   negative to positive (neutral texts, or neutral base prompts continued
   through the same bridge) are labeled the same way. A feature of the bridge
   word fires at both; one of the turn fires more at the transition. The
   common-features table then gives each feature's share at the control's
   tokens and its lift (share at the transition / share at the control), and
   a second table (``specific``) the features active in at least half the
   samples with the largest lift.
5. **Does the text turn?** VADER's sentiment of each text before its labeled
   token and from it on: a generated continuation need not turn positive
   after the bridge, so the count of texts that do (negative before,
   positive after) is reported, for the control too. ``only_turning`` keeps
   only the texts that do (the control keeps all of its own); the texts left
   out keep their sentiment, and still count in the reconstruction over all
   tokens of the texts and in its mean.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import h5py
import numpy as np
import pandas as pd
import torch

from saetool.analysis.names import feature_name
from saetool.analysis.pathways_inputs import batch, check_rows, read_texts, rows_from_texts, special_ids
from saetool.artifacts.arrays import text_array
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import ArtifactWriter, attr_value, check_output_path, open_artifact
from saetool.artifacts.tables import read_table, write_table
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.models import registry  # the module, so tests can stub registry.load_model
from saetool.models.hooks import layer_of_hook, parse_hooks
from saetool.models.registry import DEFAULT_MODEL
from saetool.plugins import host
from saetool.sae.io import check_sae_matches, load_sae
from saetool.steer.generation import GenerationSettings, generate_completions
from saetool.steer.metrics import sentiment_score
from saetool.steer.prompts import pad_id_of

if TYPE_CHECKING:
    from saetool.models.base import HookedModel
    from saetool.sae.model import SAE

KIND = "transitions"
SCHEMA_VERSION = 1
DEFAULT_BRIDGE = " However,"


@dataclass
class TransitionsConfig:
    """Settings of a transitions run (see the module docstring)."""

    labeler: str = "transition-words"
    labeler_options: dict[str, str] = field(default_factory=dict)
    offset: int = 0
    top: int = 20
    batch_size: int = 8
    context_size: int = 256
    bridge: str = DEFAULT_BRIDGE
    max_new_tokens: int = 24
    do_sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    only_turning: bool = False

    def validate(self) -> None:
        if self.top < 1:
            raise SaetoolError(f"--top must be at least 1 (got {self.top})")
        if self.batch_size < 1:
            raise SaetoolError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.context_size < 2:
            raise SaetoolError(f"--context-size must be at least 2 (got {self.context_size})")
        if self.max_new_tokens < 1:
            raise SaetoolError(f"--max-new-tokens must be at least 1 (got {self.max_new_tokens})")
        if self.do_sample and self.temperature <= 0:
            raise SaetoolError(f"--temperature must be positive when sampling (got {self.temperature})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TransitionsResult:
    path: Path | None
    texts: list[str]
    positions: list[int | None]
    tokens: list[str]
    metrics: dict[str, float]
    baseline: dict[str, float]
    common: "pd.DataFrame"
    seconds: float = 0.0
    control: "Sampled | None" = None
    specific: "pd.DataFrame | None" = None
    sentiment: "np.ndarray | None" = None
    contexts: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return sum(p is not None for p in self.positions)


@dataclass
class Sampled:
    """One set of texts with its labeled tokens: the rows, the activations there and (once encoded)
    their codes, the SAE's reconstruction metrics at them and the texts' sentiment around them."""

    texts: list[str]
    rows: list[list[int]]
    positions: list[int | None]
    tokens: list[str]
    x: "torch.Tensor"
    which: "torch.Tensor"
    totals: "_Totals"
    f: "torch.Tensor | None" = None
    metrics: dict[str, float] = field(default_factory=dict)
    sentiment: "np.ndarray | None" = None

    @property
    def n_samples(self) -> int:
        return sum(p is not None for p in self.positions)


# -- inputs ------------------------------------------------------------------------------------------
def get_position_labeler(name: str) -> Any:
    """The registered position labeler ``name`` (one-line error otherwise)."""
    regs = host().collect("position_labelers")
    choices = sorted(regs)
    if name in host().collect("feature_labelers"):
        raise SaetoolError(f"labeler {name!r} labels features, not token positions", hint="choose one of: " + ", ".join(choices))
    if name not in regs:
        raise SaetoolError(f"unknown labeler {name!r}", hint="position labelers: " + (", ".join(choices) or "none"))
    return regs[name].obj


def generate_texts(model: "HookedModel", prompts: Sequence[str], config: TransitionsConfig) -> tuple[list[str], list[int] | None]:
    """``(texts, where each text's bridge starts)``: negative-to-positive texts, prompt +
    continuation (cut after its last whole sentence; ended with a full stop when it
    has none, so the bridge starts a sentence) + bridge + continuation (raw text, no
    chat template); the bridge offsets (characters) are ``None`` without a bridge.

    Continuations are joined exactly as generated (their own leading space, if
    any), so a continuation "'m sad" gives "I'm sad", never "I 'm sad"."""
    settings = GenerationSettings(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                                  do_sample=config.do_sample, temperature=config.temperature, seed=config.seed)
    first = generate_completions(model, prompts, chat=False, settings=settings, strip=False)
    if not config.bridge:
        return [(p + c).rstrip() for p, c in zip(prompts, first)], None
    stems = [end_sentence(p + _whole_sentences(c)) + config.bridge for p, c in zip(prompts, first)]
    second = generate_completions(model, stems, chat=False, settings=settings, seed=config.seed + 10_007, strip=False)
    return [(s + c).rstrip() for s, c in zip(stems, second)], [len(s) - len(config.bridge) for s in stems]


def bridge_starts(tokenizer: Any, texts: Sequence[str], offsets: Sequence[int], rows: Sequence[Sequence[int]], context_size: int) -> list[int]:
    """Per row, the index of the token where the bridge starts: the number of tokens
    it shares with the text before the bridge (so a merge across the boundary
    starts the search one token early, never late)."""
    heads = rows_from_texts(tokenizer, [t[:o] for t, o in zip(texts, offsets)], context_size)
    starts = []
    for row, head in zip(rows, heads):
        n = 0
        while n < min(len(row), len(head)) and int(row[n]) == int(head[n]):
            n += 1
        starts.append(n)
    return starts


def _whole_sentences(text: str) -> str:
    """``text`` up to its last sentence end (. ! ?), or all of it when it has none."""
    ends = [i for i, ch in enumerate(text) if ch in ".!?"]
    return text[: ends[-1] + 1] if ends else text


def end_sentence(text: str) -> str:
    """``text`` without trailing space, ending in . ! or ? (a full stop replaces a trailing , ; : or dash)."""
    text = text.rstrip()
    if text.endswith((".", "!", "?", '."', '!"', '?"')):
        return text
    return text.rstrip(",;:-–— ") + "."


def label_positions(labeler: Any, texts: Sequence[str], rows: Sequence[Sequence[int]], tokenizer: Any, options: Mapping[str, str], offset: int,
                    starts: Sequence[int] | None = None) -> list[int | None]:
    """The labeler's positions shifted by ``offset``; ``None`` where there is none or it
    falls off the text or on a special token. With ``starts`` the labeler sees each
    row from that token on (the bridge of a generated text)."""
    starts = list(starts) if starts is not None else [0] * len(rows)
    found = labeler.locate(list(texts), [list(r[s:]) for r, s in zip(rows, starts)], tokenizer, dict(options))
    if len(found) != len(texts):
        raise SaetoolError(f"labeler {getattr(labeler, 'name', '?')!r} returned {len(found)} positions for {len(texts)} texts")
    special = special_ids(tokenizer)
    out: list[int | None] = []
    for pos, row, start in zip(found, rows, starts):
        if pos is None:
            out.append(None)
            continue
        p = int(pos) + start + offset
        out.append(p if 0 <= p < len(row) and int(row[p]) not in special else None)
    return out


def _words_of(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z0-9']+", text)][:1]


# -- activations and the SAE ----------------------------------------------------------------------------
def collect(model: "HookedModel", sae: "SAE", rows: Sequence[Sequence[int]], positions: Sequence[int | None], batch_size: int) -> tuple["torch.Tensor", "torch.Tensor", "_Totals"]:
    """``(x at the labeled tokens [n, d], sample -> text index, reconstruction totals over all counted tokens)``."""
    hook = str(sae.cfg.hook)
    special = special_ids(model.tokenizer)
    pad = pad_id_of(model.tokenizer)
    picked: list[torch.Tensor] = []
    which: list[int] = []
    totals = _Totals()
    for start in range(0, len(rows), batch_size):
        chunk = list(rows[start : start + batch_size])
        ids, mask, pos = batch(chunk, pad, special)
        acts = model.run_with_cache(ids.to(model.device), [hook], attention_mask=mask.to(model.device))[hook]
        acts = acts.reshape(*acts.shape[:2], -1).to(sae.dtype)
        with torch.no_grad():
            everything = acts[pos.to(acts.device)]
            totals.add(everything, sae.decode(sae.encode(everything)), sae.encode(everything))
        for r in range(len(chunk)):
            p = positions[start + r]
            if p is not None:
                picked.append(acts[r, p])
                which.append(start + r)
    x = torch.stack(picked) if picked else torch.zeros(0, sae.cfg.d_in)
    return x, torch.tensor(which, dtype=torch.long), totals


class _Totals:
    """Running sums for reconstruction metrics over many rows."""

    def __init__(self) -> None:
        self.n = 0
        self.sq_err = 0.0
        self.sum_x: Any = None
        self.sum_sq = 0.0
        self.cos = 0.0
        self.l0 = 0.0
        self.d = 0

    def add(self, x: "torch.Tensor", x_hat: "torch.Tensor", f: "torch.Tensor") -> None:
        if x.numel() == 0:
            return
        x, x_hat = x.double(), x_hat.double()
        self.n += x.shape[0]
        self.d = x.shape[1]
        self.sq_err += float(((x - x_hat) ** 2).sum())
        self.sum_x = x.sum(0) if self.sum_x is None else self.sum_x + x.sum(0)
        self.sum_sq += float((x**2).sum())
        self.cos += float(torch.nn.functional.cosine_similarity(x, x_hat, dim=-1).sum())
        self.l0 += float((f > 0).sum())

    def mean(self) -> Any:
        """The mean row seen so far (float64), or ``None``."""
        return None if self.sum_x is None else self.sum_x / self.n

    def finish(self, reference: Any = None) -> dict[str, float]:
        """Metrics; ``explained_variance`` is measured against ``reference`` (a mean
        row; default this set's own mean), ``explained_variance_within`` against
        this set's own mean."""
        nan = math.nan
        if self.n == 0:
            return {"n": 0, "mse": nan, "explained_variance": nan, "explained_variance_within": nan, "cosine": nan, "l0": nan}
        within = self.sum_sq - float((self.sum_x**2).sum()) / self.n
        if reference is None:
            total = within
        else:
            ref = reference.double().to(self.sum_x.device)
            total = self.sum_sq - 2 * float((ref * self.sum_x).sum()) + self.n * float((ref**2).sum())

        def ev(var: float) -> float:
            return 1.0 - self.sq_err / var if var > 0 and (reference is not None or self.n > 1) else nan

        return {
            "n": self.n,
            "mse": self.sq_err / (self.n * self.d),
            "explained_variance": ev(total),
            "explained_variance_within": ev(within) if self.n > 1 else nan,
            "cosine": self.cos / self.n,
            "l0": self.l0 / self.n,
        }


def reconstruction(sae: "SAE", x: "torch.Tensor", reference: Any = None) -> tuple[dict[str, float], "torch.Tensor"]:
    """Metrics of the SAE on rows ``x`` (explained variance against the mean row
    ``reference``, default ``x``'s own mean) and their codes ``f``."""
    with torch.no_grad():
        f = sae.encode(x)
        totals = _Totals()
        totals.add(x, sae.decode(f), f)
    return totals.finish(reference), f


def common_features(f: "torch.Tensor", top: int, layer: int | None, control: "torch.Tensor | None" = None, *,
                    by_lift: bool = False, min_share: float = 0.0) -> "pd.DataFrame":
    """Features active (> 0) in the most samples: count, share of samples, mean activation when active;
    with the ``control`` samples' codes, their count and share there and the lift (share / control share).
    ``by_lift`` (with a control): the features active in at least ``min_share`` of the samples (and
    two or more), the largest lift first, instead of the most frequently active."""
    n = f.shape[0]
    active = f > 0
    count = active.sum(0)
    mean = torch.where(count > 0, (f * active).sum(0) / count.clamp(min=1), torch.zeros_like(count, dtype=f.dtype))
    live = [i for i in range(f.shape[1]) if int(count[i]) > 0]
    c_count = (control > 0).sum(0) if control is not None else None

    def c_share(i: int) -> float:
        return int(c_count[i]) / control.shape[0] if control is not None and control.shape[0] else math.nan

    if by_lift and control is not None:
        live = [i for i in live if int(count[i]) >= 2 and int(count[i]) >= min_share * n]
        order = sorted(live, key=lambda i: (-lift_of(int(count[i]) / n, c_share(i)), -int(count[i]), i))[:top]
    else:
        order = sorted(live, key=lambda i: (-int(count[i]), -float(mean[i]), i))[:top]
    share = [int(count[i]) / n if n else math.nan for i in order]
    table = {
        "feature": [int(i) for i in order],
        "name": [feature_name(layer, i) if layer is not None else str(i) for i in order],
        "count": [int(count[i]) for i in order],
        "share": share,
        "mean_activation": [float(mean[i]) for i in order],
    }
    if c_count is not None:
        shares = [c_share(i) for i in order]
        table |= {"control_count": [int(c_count[i]) for i in order], "control_share": shares,
                  "lift": [lift_of(a, b) for a, b in zip(share, shares)]}
    return pd.DataFrame(table)


def lift_of(share: float, base: float) -> float:
    """``share / base``: infinite when the feature never fires at the base (and does here), NaN without a base."""
    if math.isnan(base):
        return math.nan
    return share / base if base > 0 else (math.inf if share > 0 else math.nan)


def turn_sentiment(tokenizer: Any, rows: Sequence[Sequence[int]], positions: Sequence[int | None]) -> np.ndarray:
    """``[N, 2]``: VADER's compound sentiment of each text before its labeled token and from it on
    (NaN where none is labeled): whether the text does turn from negative to positive there."""
    out = np.full((len(rows), 2), np.nan)
    for i, (row, p) in enumerate(zip(rows, positions)):
        if p is not None:
            out[i] = [sentiment_score(tokenizer.decode(list(row[:p]), skip_special_tokens=True)),
                      sentiment_score(tokenizer.decode(list(row[p:]), skip_special_tokens=True))]
    return out


def token_context(tokenizer: Any, row: Sequence[int], p: int | None, before: int = 12, after: int = 8) -> str:
    """The text around a labeled token, the token in ⟦ ⟧ (the whole text up to ``before`` tokens
    before it and ``after`` after it; empty where none is labeled)."""
    if p is None:
        return ""
    dec = lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)  # noqa: E731
    start = max(0, p - before)
    return ("…" if start > 1 else "") + dec(row[start:p]) + "⟦" + dec(row[p : p + 1]) + "⟧" + dec(row[p + 1 : p + 1 + after]) + ("…" if p + 1 + after < len(row) else "")


def n_labeled(sentiment: "np.ndarray | None") -> int:
    """Texts with a labeled token (a sentiment before it)."""
    return 0 if sentiment is None else int(np.isfinite(sentiment[:, 0]).sum())


def turns(sentiment: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the texts negative before their labeled token and positive from it on."""
    return (sentiment[:, 0] < 0) & (sentiment[:, 1] > 0)


def n_turning(sentiment: "np.ndarray | None") -> int:
    """How many texts :func:`turns` finds."""
    if sentiment is None or not len(sentiment):
        return 0
    return int(turns(sentiment).sum())


# -- the artifact --------------------------------------------------------------------------------------
def write_transitions(path: str | Path, result: TransitionsResult, rows: Sequence[Sequence[int]], x: "torch.Tensor", f: "torch.Tensor", which: "torch.Tensor",
                      *, attrs: dict[str, Any], provenance: dict[str, Any], overwrite: bool = False, top_codes: int = 32) -> Path:
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        _write_set(fh, result.texts, result.tokens, result.positions, rows, which, x, f, top_codes, result.sentiment)
        if result.control is not None:
            c = result.control
            _write_set(fh.create_group("control"), c.texts, c.tokens, c.positions, c.rows, c.which, c.x, c.f, top_codes, c.sentiment)
        for name, table in (("common", result.common), ("specific", result.specific)):
            if table is not None:
                write_table(fh.create_group(name), table)
        for key, value in attrs.items():
            fh.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)
    return Path(path)


def _put(group: Any, name: str, arr: np.ndarray) -> None:
    ds = group.create_dataset(name, data=arr)
    ds.attrs["saetool_dtype"] = str(arr.dtype)


def _write_set(group: Any, texts: Sequence[str], tokens: Sequence[str], positions: Sequence[int | None], rows: Sequence[Sequence[int]],
               which: "torch.Tensor", x: "torch.Tensor", f: "torch.Tensor", top_codes: int, sentiment: "np.ndarray | None" = None) -> None:
    """One set's texts, labeled tokens, activations there and their top codes, as datasets of ``group``."""
    strings = h5py.string_dtype("utf-8")
    group.create_dataset("texts", data=text_array(list(texts)), dtype=strings)
    group.create_dataset("token", data=text_array(list(tokens)), dtype=strings)
    _put(group, "position", np.array([-1 if p is None else p for p in positions], dtype=np.int64))
    _put(group, "token_ids", np.array([t for r in rows for t in r], dtype=np.int32))
    _put(group, "token_offsets", np.cumsum([0] + [len(r) for r in rows]).astype(np.int64))
    _put(group, "sample_text", which.numpy().astype(np.int64))
    _put(group, "activations", x.float().cpu().numpy())
    k = min(top_codes, f.shape[1])
    vals, idx = torch.topk(f.float().cpu(), k, dim=-1) if f.shape[0] else (torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long))
    codes = group.create_group("codes")
    _put(codes, "index", idx.numpy().astype(np.int64))
    _put(codes, "value", vals.numpy().astype(np.float32))
    if sentiment is not None:
        _put(group, "sentiment_before", sentiment[:, 0].astype(np.float64))
        _put(group, "sentiment_after", sentiment[:, 1].astype(np.float64))


SET_DATASETS = ("position", "token_ids", "token_offsets", "sample_text", "activations")


def _read_set(group: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"texts": list(group["texts"].asstr()[()]), "token": list(group["token"].asstr()[()])}
    for name in SET_DATASETS:
        out[name] = group[name][()]
    out["codes"] = {k: group["codes"][k][()] for k in group["codes"]}
    out["sentiment"] = np.stack([group["sentiment_before"][()], group["sentiment_after"][()]], 1) if "sentiment_before" in group else None
    return out


def read_transitions(path: str | Path) -> dict[str, Any]:
    """The datasets and (decoded) attributes of a ``transitions`` artifact, as plain Python/numpy;
    ``control`` holds the control set's datasets (``None`` without one)."""
    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        out: dict[str, Any] = {k: attr_value(v) for k, v in fh.attrs.items() if k != "provenance"}
        out |= _read_set(fh)
        out["control"] = _read_set(fh["control"]) if "control" in fh else None
        for name in ("common", "specific"):
            out[name] = read_table(fh[name]) if name in fh else None
    return out


# -- the API -----------------------------------------------------------------------------------------
def default_output() -> Path:
    return Path("transitions.h5")


def run_transitions(
    config: TransitionsConfig,
    sae_path: str | Path,
    *,
    texts_file: str | Path | None = None,
    prompts_file: str | Path | None = None,
    control_file: str | Path | None = None,
    max_texts: int | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    model_name: str | None = None,
    backend: str = "transformers",
    device: str = "cpu",
    dtype: str = "float32",
    model: "HookedModel | None" = None,
) -> TransitionsResult:
    """Texts -> labeled transition tokens -> SAE features there; writes a ``transitions`` artifact.
    ``control_file``: control inputs of the same kind as the others (texts, or base prompts)."""
    config.validate()
    if (texts_file is None) == (prompts_file is None):
        raise SaetoolError("give either --texts FILE (ready texts) or --prompts FILE (base prompts to generate from)")
    labeler = get_position_labeler(config.labeler)
    if prompts_file is not None and config.bridge.strip() and labeler.name == "transition-words" and "prefer" not in config.labeler_options:
        # generated texts: the bridge is the transition, so it wins over a " but" in the negative part
        config.labeler_options = {**config.labeler_options, "prefer": ",".join(_words_of(config.bridge))}
    source = texts_file if texts_file is not None else prompts_file
    kind = "text file" if texts_file is not None else "prompt file"
    inputs = read_texts(source, what=kind, max_texts=max_texts)
    control_inputs = read_texts(control_file, what=f"control {kind}", max_texts=max_texts) if control_file is not None else []
    out = check_output_path(output or default_output(), overwrite=overwrite, inputs=[source, sae_path] + ([control_file] if control_file is not None else []))
    sae = load_sae(sae_path, device)
    if sae.cfg.is_transcoder:
        raise SaetoolError(f"the SAE {sae_path} is a transcoder", hint="pass an SAE that reconstructs its own hook")
    if model is None:
        name = model_name or sae.cfg.model or DEFAULT_MODEL
        check_sae_matches(sae, model=name, what="model's activations")
        model = registry.load_model(name, backend=backend, device=device, dtype=dtype)
    else:
        check_sae_matches(sae, model=model.model_id, what="model's activations")

    parse_hooks([sae.cfg.hook], model.n_layers, model.supported_sites)
    check_sae_matches(sae, d_in=model.hook_dim(sae.cfg.hook), what=f"model's {sae.cfg.hook} activations")
    if str(sae.device) != str(model.device):
        sae = sae.to(model.device)

    start = time.perf_counter()
    main = sample_set(model, sae, labeler, config, inputs, generated=prompts_file is not None, source=source, only_turning=config.only_turning)
    control = None
    if control_file is not None:
        control = sample_set(model, sae, labeler, config, control_inputs, generated=prompts_file is not None, source=control_file, what="control ")
        words, control_words = sorted({t for t in main.tokens if t}), sorted({t for t in control.tokens if t})
        if words != control_words:
            warn(f"the control's labeled tokens ({', '.join(map(repr, control_words))}) are not the transitions' ({', '.join(map(repr, words))}): "
                 "a feature of one word then looks specific to the transition; give both the same transition word")
    baseline = main.totals.finish()
    metrics, f = reconstruction(sae, main.x, reference=main.totals.mean())
    if control is not None:
        control.metrics, control.f = reconstruction(sae, control.x, reference=main.totals.mean())
    layer = layer_of_hook(sae.cfg.hook)
    common = common_features(f, config.top, layer, control=control.f if control is not None else None)
    specific = common_features(f, config.top, layer, control=control.f, by_lift=True, min_share=0.5) if control is not None else None
    seconds = time.perf_counter() - start
    result = TransitionsResult(out, main.texts, main.positions, main.tokens, metrics, baseline, common, seconds, control=control, specific=specific,
                               sentiment=main.sentiment, contexts=[token_context(model.tokenizer, r, p) for r, p in zip(main.rows, main.positions)])
    settings = {**config.to_dict(), "texts_file": str(Path(texts_file).resolve()) if texts_file else None,
                "prompts_file": str(Path(prompts_file).resolve()) if prompts_file else None, "generated": prompts_file is not None,
                "control_file": str(Path(control_file).resolve()) if control_file else None, "model": model.model_id, "seconds": round(seconds, 2)}
    attrs = {"settings": settings, "metrics": metrics, "baseline": baseline, "hook": str(sae.cfg.hook), "labeler": labeler.name,
             "n_texts": len(main.texts), "n_labeled": n_labeled(main.sentiment), "n_samples": main.n_samples, "n_turning": n_turning(main.sentiment),
             "model": model.model_id,
             "d_sae": sae.cfg.d_sae, "sae": str(Path(sae_path).resolve())}
    if control is not None:
        attrs |= {"n_control_texts": len(control.texts), "n_control_samples": control.n_samples, "n_control_turning": n_turning(control.sentiment),
                  "control_metrics": control.metrics}
    parents = [sae_path] if Path(sae_path).is_file() else []
    prov = build_provenance(model=model.model_id, backend=model.backend_name, hooks=[str(sae.cfg.hook)], parents=parents, transitions=settings)
    write_transitions(out, result, main.rows, main.x, f, main.which, attrs=attrs, provenance=prov, overwrite=overwrite)
    return result


def sample_set(model: "HookedModel", sae: "SAE", labeler: Any, config: TransitionsConfig, inputs: Sequence[str], *, generated: bool,
               source: str | Path, what: str = "", only_turning: bool = False) -> Sampled:
    """Texts (generated from ``inputs`` as base prompts, or ``inputs`` themselves) with their
    transition tokens labeled, and the activations there (``what``: "control " names the set in messages).
    Each labeled text's sentiment around its token (:func:`turn_sentiment`); with ``only_turning``,
    texts that do not turn from negative to positive there are left out like unlabeled ones."""
    offsets = None
    if generated:
        log(f"[dim]generating {len(inputs)} {what}transition text(s) with {model.model_id}...[/dim]")
        texts, offsets = generate_texts(model, inputs, config)
    else:
        texts = list(inputs)
    rows = rows_from_texts(model.tokenizer, texts, config.context_size)
    check_rows(rows, model.tokenizer, source=str(source))
    starts = bridge_starts(model.tokenizer, texts, offsets, rows, config.context_size) if offsets is not None else None
    positions = label_positions(labeler, texts, rows, model.tokenizer, config.labeler_options, config.offset, starts)
    n_found = sum(p is not None for p in positions)
    if n_found == 0:
        raise SaetoolError(
            f"the {labeler.name} labeler found no transition token in any of the {len(texts)} {what}text(s)",
            hint="check the texts, or choose another --labeler / --labeler-option words=...",
        )
    if n_found < len(texts):
        warn(f"no transition token in {len(texts) - n_found} of {len(texts)} {what}text(s); they are left out")
    sentiment = turn_sentiment(model.tokenizer, rows, positions)  # of every labeled text, kept for those --only-turning leaves out
    if only_turning:
        positions = [p if turn else None for p, turn in zip(positions, turns(sentiment))]
        n_turn = sum(p is not None for p in positions)
        if n_turn == 0:
            raise SaetoolError(f"none of the {n_found} labeled {what}text(s) turns from negative to positive at its labeled token (by VADER sentiment)",
                               hint="generate more texts (more --prompts, or --sample), or leave out --only-turning")
        if n_turn < n_found:
            warn(f"{n_found - n_turn} of {n_found} labeled {what}text(s) do not turn from negative to positive at the labeled token (by VADER sentiment); "
                 "they are left out (--only-turning)")
    x, which, totals = collect(model, sae, rows, positions, config.batch_size)
    tokens = [model.tokenizer.decode([int(r[p])]) if p is not None else "" for r, p in zip(rows, positions)]
    return Sampled(list(texts), [list(r) for r in rows], positions, tokens, x, which, totals, sentiment=sentiment)
