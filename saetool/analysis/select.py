"""``saetool select``: the features that tell two sets of activations apart.

For every SAE (one per layer) and every feature, Cohen's d between the
feature's activations on set a and on set b (per token, or per sequence: its mean
or its maximum), then the top N features per layer by |d|, named ``L{layer}-{id}``,
in a ``selection`` artifact (layout in docs/artifacts.md); per sequence, the |d| the
best feature of a layer reaches by chance (label shuffles).

Per sequence, two sets that pair line by line (``pairing``, the rule of
:mod:`saetool.analysis.pairing`; two conditions of one completions artifact pair by
prompt) are ranked by the paired d_z of each feature (mean over sd of the per-pair
differences) instead, with its chance level from random sign flips of the pairs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import h5py
import numpy as np
import pandas as pd
import torch

from saetool.analysis.names import feature_name, parse_feature_name, require_layer
from saetool.analysis.pairing import PairDecision, check_pairing, decide_pairing
from saetool.analysis.stats import Moments, cohens_d, paired_d, permutation_max_abs_d, sign_flip_max_abs_d
from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.files import write_atomic
from saetool.artifacts.jsonable import finite
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import ArtifactWriter, attr_value, check_output_path, open_artifact
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.progress import token_progress
from saetool.sae.io import check_sae_matches, load_sae, same_model
from saetool.steer.completions import read_completions
from saetool.steer.prompts import encode, format_prompts, left_pad, pad_id_of

if TYPE_CHECKING:
    from saetool.sae.model import SAE

KIND = "selection"
SCHEMA_VERSION = 1
UNITS = ("token", "sequence", "sequence-max")
LENGTH_RATIO = 1.2  # --per sequence: sets whose mean sequence lengths differ more than this get a warning
ROW_BUDGET = 20_000_000  # per-sequence values kept per set, shared by the layers, for the permutation test (80 MB as float32)
COLUMNS = ("name", "layer", "feature", "rank", "d", "mean_a", "mean_b", "std_a", "std_b", "n_a", "n_b")
OPTIONAL_COLUMNS = (
    "d_same_length",  # when the sets' lengths differ: d on the sequences of a length both sets hold
    "d_paired",  # when the sets pair (per sequence): d_z of the per-pair differences, the ranking's statistic
)


@dataclass
class SelectConfig:
    """``top`` features per layer by |d|; ``unit`` ``token`` (every token is a
    sample), ``sequence`` (each sequence's mean activation is a sample) or
    ``sequence-max`` (each sequence's largest activation: not diluted by length, though
    it grows with it);
    ``features`` restricts the candidates (``L{layer}-{id}`` names); ``pairing`` (per-sequence
    units): ``auto`` ranks sets that pair line by line by their paired d, ``paired`` insists,
    ``unpaired`` never pairs."""

    top: int = 50
    unit: str = "token"
    features: list[str] | None = None
    chunk_rows: int = 1024
    device: str = "cpu"
    labels: tuple[str, str] = ("a", "b")
    permutations: int = 200  # per-sequence units: label permutations for the chance level of the largest |d| (0: none)
    pairing: str = "auto"

    def validate(self) -> None:
        if self.top < 1:
            raise SaetoolError(f"--top must be at least 1 (got {self.top})")
        if self.unit not in UNITS:
            raise SaetoolError(f"unknown --per {self.unit!r}", hint="choose token, sequence or sequence-max")
        if self.chunk_rows < 1:
            raise SaetoolError(f"the chunk size must be at least 1 (got {self.chunk_rows})")
        if self.permutations < 0:
            raise SaetoolError(f"--permutations must be 0 or more (got {self.permutations})")
        check_pairing(self.pairing)
        if self.pairing == "paired" and self.unit == "token":
            raise SaetoolError("--pairing paired compares sequences, not tokens", hint="add --per sequence or --per sequence-max")


@dataclass
class LayerSAE:
    layer: int
    path: str
    sae: "SAE"

    @property
    def hook(self) -> str:
        return self.sae.cfg.hook


@dataclass
class SelectionResult:
    path: Path
    table: "pd.DataFrame"
    n_a: dict[int, int]
    n_b: dict[int, int]
    infinite: int = 0
    exports: list[Path] = field(default_factory=list)


# -- inputs ------------------------------------------------------------------------------------------
def load_layer_saes(paths: Sequence[str | Path], device: str = "cpu") -> list[LayerSAE]:
    """Load the SAEs, one per layer, all from one model; sorted by layer."""
    if not paths:
        raise SaetoolError("no SAE given", hint="pass --sae FILE (once per layer)")
    out: dict[int, LayerSAE] = {}
    for p in paths:
        sae = load_sae(p, device)
        layer = require_layer(sae.cfg.hook, what=f"the SAE {p}")
        if layer in out:
            raise SaetoolError(f"two SAEs for layer {layer}: {out[layer].path} and {p}", hint="pass one SAE per layer")
        out[layer] = LayerSAE(layer, str(p), sae)
    models = {(x.sae.cfg.model or "") for x in out.values()} - {""}
    first = next(iter(models), None)
    for x in out.values():
        if first and x.sae.cfg.model and not same_model(first, x.sae.cfg.model):
            raise SaetoolError(
                f"the SAEs come from different models ({', '.join(sorted(models))})",
                hint="pass SAEs trained on one model",
            )
    return [out[k] for k in sorted(out)]


def restrict_features(names: Sequence[str] | None, saes: Sequence[LayerSAE]) -> dict[int, "np.ndarray"] | None:
    """``{layer: feature ids}`` from ``L{layer}-{id}`` names; one-line errors
    for a layer with no SAE or an id past the SAE's width."""
    if not names:
        return None
    by_layer = {s.layer: s for s in saes}
    chosen: dict[int, set[int]] = {}
    for name in names:
        layer, fid = parse_feature_name(name)
        if layer not in by_layer:
            raise SaetoolError(f"feature {name}: no SAE for layer {layer}", hint="layers with an SAE: " + ", ".join(str(k) for k in by_layer))
        d_sae = by_layer[layer].sae.cfg.d_sae
        if fid >= d_sae:
            raise SaetoolError(f"feature {name} is out of range: the layer-{layer} SAE has {d_sae} features (ids 0-{d_sae - 1})")
        chosen.setdefault(layer, set()).add(fid)
    return {layer: np.array(sorted(ids), dtype=np.int64) for layer, ids in chosen.items()}


class ActivationSet:
    """One side of the comparison: rows of activations at some hooks, each with
    the id of the sequence it belongs to. ``chunks()`` yields ``({hook: [rows, d]}, seq_ids)``."""

    label: str
    model: str | None
    parents: list[Path]
    description: str

    def hooks(self) -> list[str]:
        raise NotImplementedError

    def width(self, hook: str) -> int:
        raise NotImplementedError

    def chunks(self, hooks: Sequence[str], rows: int) -> Iterator[tuple[dict[str, "torch.Tensor"], "np.ndarray"]]:
        raise NotImplementedError

    def token_rows(self) -> list["np.ndarray"] | None:
        """Each sequence's tokens, in the order of its id (for the pairing rule); None: the set
        pairs with another of its kind by construction (the same prompts)."""
        return None


class ActivationsArtifactSet(ActivationSet):
    """An ``activations`` artifact written by ``saetool extract``."""

    def __init__(self, path: str | Path, label: str) -> None:
        self.path = Path(path)
        self.label = label
        with ActivationsFile(self.path) as f:
            self._hooks = list(f.hooks)
            self._widths = {h: f.d(h) for h in f.hooks}
            self.model = f.model
            self.n_tokens = f.n_tokens
        self.parents = [self.path]
        self.description = str(self.path)

    def hooks(self) -> list[str]:
        return self._hooks

    def width(self, hook: str) -> int:
        return self._widths[hook]

    def chunks(self, hooks, rows):
        with ActivationsFile(self.path) as f:
            seq = f.seq_index()
            for start in range(0, f.n_tokens, rows):
                stop = min(start + rows, f.n_tokens)
                yield {h: f.read_finite(h, start, stop, dtype=torch.float32) for h in hooks}, seq[start:stop]

    def token_rows(self) -> list["np.ndarray"]:
        with ActivationsFile(self.path) as f:
            ids, seq = f.token_ids(), f.seq_index()
        order = np.argsort(seq, kind="stable")
        ids, seq = ids[order], seq[order]
        return np.split(ids, np.flatnonzero(np.diff(seq)) + 1) if len(seq) else []


class CompletionsSet(ActivationSet):
    """One condition of a steer ``completions`` artifact, re-run through the
    (unsteered) model: each prompt (chat template as in the steer run) plus its
    completion; only the completion's tokens are rows, one sequence per prompt."""

    def __init__(self, path: str | Path, condition: str, label: str, *, model: Any, batch_size: int = 8) -> None:
        self.path = Path(path)
        self.label = label
        comp = read_completions(self.path)
        if condition not in comp.texts:
            raise SaetoolError(f"{self.path} has no condition {condition!r}", hint="its conditions: " + (", ".join(comp.texts) or "none"))
        self.condition = condition
        self.prompts = comp.prompts
        self.texts = comp.texts[condition]
        self.chat = bool(comp.settings.get("chat", True))
        self.system = comp.settings.get("system")
        self._model = model
        self.model = model.model_id
        self.batch_size = max(1, int(batch_size))
        self.parents = [self.path]
        self.description = f"{self.path}:{condition}"
        if not any(t.strip() for t in self.texts):
            raise SaetoolError(f"condition {condition!r} of {self.path} has only empty completions", hint="nothing to compare")
        tok = model.tokenizer
        self._comp_ids = [tok.encode(t, add_special_tokens=False) if t.strip() else [] for t in self.texts]
        self.n_tokens = sum(len(c) for c in self._comp_ids)
        if self.n_tokens == 0:
            raise SaetoolError(f"the completions of condition {condition!r} in {self.path} tokenise to nothing")

    def hooks(self) -> list[str]:
        return []  # any hook the model has; check_inputs asks the model for widths

    def width(self, hook: str) -> int:
        return int(self._model.hook_dim(hook))

    def chunks(self, hooks, rows):
        tok = self._model.tokenizer
        formatted = format_prompts(tok, self.prompts, chat=self.chat, system=self.system)
        prompt_ids = encode(tok, formatted, chat=self.chat)
        for start in range(0, len(self.texts), self.batch_size):
            idx = [i for i in range(start, min(start + self.batch_size, len(self.texts))) if self._comp_ids[i]]
            if not idx:
                continue
            comp_ids = [self._comp_ids[i] for i in idx]
            full = [prompt_ids[i] + c for i, c in zip(idx, comp_ids)]
            ids, mask = left_pad(full, pad_id_of(tok))
            cache = self._model.run_with_cache(ids.to(self._model.device), hooks, attention_mask=mask.to(self._model.device))
            width = ids.shape[1]
            sel_b, sel_p, seq = [], [], []
            for r, (i, c) in enumerate(zip(idx, comp_ids)):
                sel_b += [r] * len(c)
                sel_p += list(range(width - len(c), width))
                seq += [i] * len(c)
            if not seq:
                continue
            b = torch.tensor(sel_b)
            p = torch.tensor(sel_p)
            yield {h: cache[h][b, p].to("cpu", torch.float32) for h in hooks}, np.asarray(seq, dtype=np.int64)


def check_inputs(sets: Sequence[ActivationSet], saes: Sequence[LayerSAE]) -> None:
    """Every SAE's hook in every set, widths and models matching."""
    a, b = sets
    if a.model and b.model and not same_model(a.model, b.model):
        raise SaetoolError(f"the two sets come from different models ({a.model!r} and {b.model!r})", hint="extract both with one model")
    for s in sets:
        for x in saes:
            if isinstance(s, CompletionsSet):
                check_sae_matches(x.sae, model=s.model, what=f"set {s.label} model")
                check_sae_matches(x.sae, d_in=s.width(x.hook), what=f"set {s.label} model's {x.hook}")
                continue
            if x.hook not in s.hooks():
                raise SaetoolError(
                    f"set {s.label} ({s.description}) has no activations at {x.hook} (layer-{x.layer} SAE {x.path})",
                    hint="it has: " + (", ".join(s.hooks()) or "none") + "; extract that hook too",
                )
            check_sae_matches(x.sae, d_in=s.width(x.hook), model=s.model, what=f"set {s.label} activations")


# -- the statistic -----------------------------------------------------------------------------------
class _SequenceStat:
    """Each sequence's mean (``reduce`` ``mean``) or largest (``max``) activation, fed into
    :class:`Moments` as sequences complete (rows arrive grouped by sequence, as extract
    writes them); the sequences' lengths are kept for :func:`length_warning`."""

    def __init__(self, width: int, reduce: str = "mean", *, keep_rows: bool = False, budget: int = 0, columns: "np.ndarray | None" = None) -> None:
        self.moments = Moments.empty(width)
        self.reduce = reduce
        self.lengths: list[int] = []
        self.ids: list[int] = []  # each sample's sequence id
        self.rows: list[np.ndarray] | None = [] if keep_rows else None  # the samples (of ``columns``), while within the budget
        self.columns = columns  # the candidate features whose samples are kept (None: all)
        self._width = width if columns is None else len(columns)
        self._budget = budget or ROW_BUDGET
        self._id: int | None = None
        self._acc = np.zeros(width)
        self._n = 0

    def _emit(self, acc: "np.ndarray", n: "np.ndarray", ids: Sequence[int]) -> None:
        samples = acc / n[:, None] if self.reduce == "mean" else acc
        self.moments.update(samples)
        self.lengths += [int(v) for v in n]
        self.ids += [int(i) for i in ids]
        if self.rows is not None:
            if len(self.lengths) * self._width <= self._budget:
                self.rows.append((samples if self.columns is None else samples[:, self.columns]).astype(np.float32))
            else:
                self.rows = None

    def samples(self) -> np.ndarray | None:
        """The per-sequence samples ``[sequences, candidate features]``, or None when not kept (over budget)."""
        return np.concatenate(self.rows) if self.rows else None

    def update(self, f: "np.ndarray", seq: "np.ndarray") -> None:
        if len(seq) == 0:
            return
        starts = np.r_[0, np.flatnonzero(np.diff(seq)) + 1]
        combine = np.add if self.reduce == "mean" else np.maximum
        accs = combine.reduceat(f.astype(np.float64), starts, axis=0)
        counts = np.diff(np.r_[starts, len(seq)]).astype(np.float64)
        ids = seq[starts]
        if self._id is not None:
            if ids[0] == self._id:
                accs[0] = combine(accs[0], self._acc)
                counts[0] += self._n
            else:
                self._emit(self._acc[None, :], np.array([float(self._n)]), [self._id])
        if len(ids) > 1:
            self._emit(accs[:-1], counts[:-1], ids[:-1])
        self._id, self._acc, self._n = int(ids[-1]), accs[-1], int(counts[-1])

    def finish(self) -> Moments:
        if self._id is not None:
            self._emit(self._acc[None, :], np.array([float(self._n)]), [self._id])
            self._id = None
        return self.moments


def length_warning(lengths_a: Sequence[int], lengths_b: Sequence[int], labels: Sequence[str] = ("a", "b"), unit: str = "sequence") -> str | None:
    """The warning when the two sets' mean sequence lengths differ by more than
    :data:`LENGTH_RATIO`, else ``None``: a per-sequence mean divides a feature that fires
    once per sequence by the length, and a per-sequence maximum grows with the number of
    tokens it is taken over, so either way d then partly measures length."""
    if not len(lengths_a) or not len(lengths_b):
        return None
    la, lb = float(np.mean(lengths_a)), float(np.mean(lengths_b))
    if max(la, lb) <= LENGTH_RATIO * min(la, lb):
        return None
    how = ("a per-sequence maximum grows with the tokens it is taken over" if unit == "sequence-max"
           else "a per-sequence mean dilutes a feature that fires once per sequence by the length (--per sequence-max does not)")
    return (f"set {labels[0]}'s sequences have {la:.1f} tokens on average, set {labels[1]}'s {lb:.1f}: {how}, "
            "so d partly measures length; sets of matched length compare the text alone")


def feature_moments(source: ActivationSet, saes: Sequence[LayerSAE], config: SelectConfig, progress: Any = None, *,
                    keep_rows: bool) -> tuple[dict[int, Moments], dict[int, "_SequenceStat"]]:
    """Moments of every feature of every SAE over one set (tokens, or sequence means or
    maxima), and per layer the per-sequence accumulators (lengths, and the samples when
    ``keep_rows``: for permutations or the paired d; empty per token)."""
    hooks = sorted({x.hook for x in saes})
    allowed = restrict_features(config.features, saes)
    accs: dict[int, Any] = {}
    for x in saes:
        columns = None if allowed is None else allowed.get(x.layer, np.zeros(0, dtype=np.int64))
        accs[x.layer] = (Moments.empty(x.sae.cfg.d_sae) if config.unit == "token"
                         else _SequenceStat(x.sae.cfg.d_sae, "max" if config.unit == "sequence-max" else "mean",
                                            keep_rows=keep_rows,
                                            budget=ROW_BUDGET // len(saes), columns=columns))
    with torch.no_grad():
        for acts, seq in source.chunks(hooks, config.chunk_rows):
            for x in saes:
                f = x.sae.encode(acts[x.hook].to(device=x.sae.device, dtype=x.sae.dtype)).double().cpu().numpy()
                if config.unit == "token":
                    accs[x.layer].update(f)
                else:
                    accs[x.layer].update(f, seq)
            if progress is not None:
                progress(len(seq))
    out = {layer: acc if isinstance(acc, Moments) else acc.finish() for layer, acc in accs.items()}
    per_sequence = {layer: acc for layer, acc in accs.items() if isinstance(acc, _SequenceStat)}
    return out, per_sequence


def chance_levels(a: dict[int, "_SequenceStat"], b: dict[int, "_SequenceStat"], saes: Sequence[LayerSAE], config: SelectConfig, table: "pd.DataFrame") -> dict[int, float]:
    """Per layer, the |d| that the largest of its candidate features exceeds by chance in only
    5% of ``config.permutations`` shufflings of the set labels (per-sequence units only: tokens
    of one sequence are not independent samples); logged with how many selected features
    exceed it. Layers whose samples were over :data:`ROW_BUDGET` are skipped with a note."""
    if config.permutations <= 0 or not a or not b:
        return {}
    out: dict[int, float] = {}
    for x in saes:
        xa, xb = a[x.layer].samples(), b[x.layer].samples()
        if xa is None or xb is None:
            log(f"[dim]layer {x.layer}: too many sequences for the permutation test (over {ROW_BUDGET // len(saes):,} values per set at this layer); no chance level[/dim]")
            continue
        if xa.shape[1] == 0:  # no candidate feature at this layer (--features)
            continue
        null = permutation_max_abs_d(xa, xb, permutations=config.permutations, seed=0)  # the samples hold the candidates only
        out[x.layer] = level = float(np.quantile(null, 0.95))
        picked = table[table["layer"] == x.layer]["d"].abs()
        log(f"layer {x.layer}: by chance (set labels shuffled {config.permutations} times) the largest |d| of its "
            f"{xa.shape[1]} candidate features stays below {level:.2f} in 95% of shufflings; "
            f"{int((picked > level).sum())} of the {len(picked)} selected exceed it")
    return out


@dataclass
class SameLength:
    """The length-matched check of a selection (per-sequence units, sets of different mean length)."""

    level: dict[int, float] = field(default_factory=dict)  # per layer: the chance level of the largest |d|
    rows: dict[int, tuple[int, int]] = field(default_factory=dict)  # per layer: sequences of set a and b used
    d: "np.ndarray | None" = None  # per selected feature (the table's rows): d on those sequences (NaN where not measured)


def same_length_check(a: dict[int, "_SequenceStat"], b: dict[int, "_SequenceStat"], saes: Sequence[LayerSAE], config: SelectConfig,
                      table: "pd.DataFrame") -> SameLength:
    """Length taken out: only the sequences whose length both sets hold (the others, whose set
    their length alone tells, are left out), each selected feature's d on them, and the chance
    level of the largest |d| over the candidates with the set labels shuffled among sequences of
    one length. Logged per layer with how many selected features exceed it."""
    out = SameLength(d=np.full(len(table), np.nan))
    if config.permutations <= 0 or not a or not b:
        return out
    for x in saes:
        acc_a, acc_b = a[x.layer], b[x.layer]
        xa, xb = acc_a.samples(), acc_b.samples()
        if xa is None or xb is None or xa.shape[1] == 0:  # over the budget (chance_levels said so) or no candidates
            continue
        la, lb = np.asarray(acc_a.lengths), np.asarray(acc_b.lengths)
        shared = np.intersect1d(la, lb)
        keep_a, keep_b = np.isin(la, shared), np.isin(lb, shared)
        na, nb = int(keep_a.sum()), int(keep_b.sum())
        if na < 2 or nb < 2:
            log(f"layer {x.layer}: too few sequences of a length both sets hold ({na} and {nb}) to tell the sets apart beyond length")
            continue
        ya, yb = xa[keep_a], xb[keep_b]
        null = permutation_max_abs_d(ya, yb, permutations=config.permutations, seed=0, strata=np.concatenate([la[keep_a], lb[keep_b]]))
        out.level[x.layer] = level = float(np.quantile(null, 0.95))
        out.rows[x.layer] = (na, nb)
        rows = np.flatnonzero(table["layer"].to_numpy() == x.layer)
        features = table["feature"].to_numpy()[rows]
        cols = features if acc_a.columns is None else np.searchsorted(acc_a.columns, features)
        ma, mb = Moments.empty(len(rows)), Moments.empty(len(rows))
        ma.update(ya[:, cols].astype(np.float64))
        mb.update(yb[:, cols].astype(np.float64))
        out.d[rows] = cohens_d(ma, mb)
        above = int((np.abs(out.d[rows]) > level).sum())
        log(f"layer {x.layer}: on the {na} and {nb} sequences of a length both sets hold (set labels shuffled among those of one length, "
            f"{config.permutations} times) the largest |d| of the {xa.shape[1]} candidate features stays below {level:.2f} in 95% of shufflings; "
            f"{above} of the {len(rows)} selected exceed it by their d on those sequences (column d_same_length)")
    return out


def select_pairing(set_a: ActivationSet, set_b: ActivationSet, config: SelectConfig) -> PairDecision:
    """Whether the two sets are compared pair by pair (per-sequence units only): two activations
    artifacts by :func:`saetool.analysis.pairing.decide_pairing` on their sequences' tokens (the
    i-th sequence of one with the i-th of the other), two conditions of one completions artifact
    always (by prompt) unless ``unpaired``. Decided before any activation is computed."""
    if config.unit == "token":
        return PairDecision(False, [], "per token")
    rows_a, rows_b = set_a.token_rows(), set_b.token_rows()
    if rows_a is None and rows_b is None:
        return PairDecision(config.pairing != "unpaired", [], "--pairing unpaired" if config.pairing == "unpaired" else "")
    if rows_a is None or rows_b is None:
        if config.pairing == "paired":
            raise SaetoolError("--pairing paired needs two sets of one kind (two activations artifacts, or two conditions of one completions artifact)")
        return PairDecision(False, [], "sets of two kinds")
    return decide_pairing(config.pairing, rows_a, rows_b)


@dataclass
class Paired:
    """The paired comparison of a selection (per-sequence units, sets that pair)."""

    n_pairs: int = 0
    d: dict[int, "np.ndarray"] = field(default_factory=dict)  # per layer: d_z of every feature (NaN where not a candidate)
    level: dict[int, float] = field(default_factory=dict)  # per layer: the sign-flip chance level of the largest |d_z|


def paired_differences(acc_a: "_SequenceStat", acc_b: "_SequenceStat", *, by_id: bool) -> "tuple[np.ndarray, int] | None":
    """The per-pair differences ``a - b`` of the kept samples [pairs, candidates] and how many
    sequences found no pair; pairs matched by position (the i-th sequence of each set: two prompt
    files line by line) or ``by_id`` (the same prompt of two completions conditions, of which an
    empty completion leaves one out). None when the samples were over the budget."""
    xa, xb = acc_a.samples(), acc_b.samples()
    if xa is None or xb is None:
        return None
    if by_id:
        _, ia, ib = np.intersect1d(np.asarray(acc_a.ids), np.asarray(acc_b.ids), return_indices=True)
    else:
        ia = ib = np.arange(min(len(xa), len(xb)))
    return xa[ia].astype(np.float64) - xb[ib].astype(np.float64), len(xa) + len(xb) - 2 * len(ia)


def paired_comparison(a: dict[int, "_SequenceStat"], b: dict[int, "_SequenceStat"], saes: Sequence[LayerSAE], config: SelectConfig,
                      *, by_id: bool = False) -> Paired | None:
    """Per layer the paired d_z of every candidate feature and, with ``config.permutations``, the
    |d_z| the largest of them stays below in 95% of random sign flips of the pairs. None (and a
    warning) when the sets cannot be compared pair by pair under ``pairing auto`` (a layer's samples
    over :data:`ROW_BUDGET`, fewer than 2 pairs): they are then compared unpaired; under ``paired``
    that is a one-line error."""
    out = Paired()

    def give_up(why: str) -> None:
        if config.pairing == "paired":
            raise SaetoolError(f"--pairing paired: {why}", hint="use --pairing unpaired" + (", or fewer candidates (--features)" if "budget" in why else ""))
        warn(f"{why}; the sets are compared unpaired")

    for x in saes:
        got = paired_differences(a[x.layer], b[x.layer], by_id=by_id)
        if got is None:
            give_up(f"layer {x.layer} has too many sequences to keep for the paired comparison (over the budget of {ROW_BUDGET // len(saes):,} values per set at this layer)")
            return None
        diff, unpaired = got
        if diff.shape[0] < 2:
            give_up(f"the sets hold {diff.shape[0]} sequence pair(s); a paired d needs at least 2")
            return None
        if unpaired:
            log(f"[dim]layer {x.layer}: {unpaired} sequence(s) without a pair left out of the paired d[/dim]")
        out.n_pairs = diff.shape[0]
        columns = a[x.layer].columns
        full = np.full(x.sae.cfg.d_sae, np.nan)
        full[np.arange(x.sae.cfg.d_sae) if columns is None else columns] = paired_d(diff)
        out.d[x.layer] = full
        if config.permutations > 0 and diff.shape[1]:
            out.level[x.layer] = float(np.quantile(sign_flip_max_abs_d(diff, permutations=config.permutations, seed=0), 0.95))
    return out


def log_paired_levels(paired: Paired, table: "pd.DataFrame", config: SelectConfig) -> None:
    for layer, level in paired.level.items():
        picked = table[table["layer"] == layer]["d_paired"].abs()
        log(f"layer {layer}: by chance (each of the {paired.n_pairs} pairs' sign flipped at random, {config.permutations} times) the largest "
            f"paired |d| of its candidate features stays below {level:.2f} in 95% of flips; {int((picked > level).sum())} of the {len(picked)} selected exceed it")


def rank_features(a: dict[int, Moments], b: dict[int, Moments], saes: Sequence[LayerSAE], config: SelectConfig,
                  paired: Paired | None = None) -> "pd.DataFrame":
    """The top ``config.top`` features per layer by |d|, or by the paired |d_z| when ``paired``
    (ties: lower id first)."""
    allowed = restrict_features(config.features, saes)
    frames = []
    for x in saes:
        ma, mb = a[x.layer], b[x.layer]
        for label, m in zip(config.labels, (ma, mb)):
            if m.n < 2:
                raise SaetoolError(
                    f"set {label} has {m.n} {'token' if config.unit == 'token' else 'sequence'}(s) at layer {x.layer}; Cohen's d needs at least 2 per set",
                    hint="use more text" + (", or --per token" if config.unit == "sequence" else ""),
                )
        d = cohens_d(ma, mb)
        ids = np.arange(x.sae.cfg.d_sae) if allowed is None else allowed.get(x.layer, np.zeros(0, dtype=np.int64))
        if len(ids) == 0:
            continue
        key = d if paired is None else paired.d[x.layer]
        order = ids[np.lexsort((ids, -np.abs(key[ids])))][: config.top]
        frames.append(
            pd.DataFrame(
                {
                    "name": [feature_name(x.layer, i) for i in order],
                    "layer": np.full(len(order), x.layer, dtype=np.int32),
                    "feature": order.astype(np.int64),
                    "rank": np.arange(1, len(order) + 1, dtype=np.int32),
                    "d": d[order],
                    "mean_a": ma.mean[order],
                    "mean_b": mb.mean[order],
                    "std_a": np.sqrt(ma.var[order]),
                    "std_b": np.sqrt(mb.var[order]),
                    "n_a": np.full(len(order), ma.n, dtype=np.int64),
                    "n_b": np.full(len(order), mb.n, dtype=np.int64),
                    **({} if paired is None else {"d_paired": key[order]}),
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: [] for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)


# -- the artifact ------------------------------------------------------------------------------------
def write_selection(path: str | Path, table: "pd.DataFrame", *, attrs: dict[str, Any], provenance: dict[str, Any], overwrite: bool = False) -> Path:
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        fh.create_dataset("name", data=np.array(list(table["name"]), dtype=object), dtype=h5py.string_dtype("utf-8"))
        for col in COLUMNS[1:] + tuple(c for c in OPTIONAL_COLUMNS if c in table):
            arr = np.asarray(table[col])
            ds = fh.create_dataset(col, data=arr)
            ds.attrs["saetool_dtype"] = str(arr.dtype)
        for key, value in attrs.items():
            fh.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)
        fh.attrs["n_features"] = len(table)
    return Path(path)


def read_selection(path: str | Path) -> "pd.DataFrame":
    """A ``selection`` artifact as a table (one row per selected feature); its
    attributes are in ``.attrs`` (JSON ones decoded)."""
    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        data = {"name": list(fh["name"].asstr()[()])}
        for col in COLUMNS[1:] + OPTIONAL_COLUMNS:
            if col in fh:
                data[col] = fh[col][()]
        table = pd.DataFrame(data)
        table.attrs.update({k: attr_value(v) for k, v in fh.attrs.items() if k != "provenance"})
    return table


def export_table(table: "pd.DataFrame", path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
    """Write ``table`` as CSV (``.csv``) or JSON (anything else: ``{meta..., "rows": [...]}``);
    non-finite numbers become null in JSON."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        write_atomic(p, table.to_csv(index=False))
        return p
    write_atomic(p, json.dumps(finite({**(meta or {}), "rows": table.to_dict(orient="records")}), indent=2, allow_nan=False) + "\n")
    return p


# -- the API -----------------------------------------------------------------------------------------
def default_output() -> Path:
    return Path("selection.h5")


def select_features(
    set_a: ActivationSet,
    set_b: ActivationSet,
    sae_paths: Sequence[str | Path],
    output: str | Path | None = None,
    *,
    config: SelectConfig | None = None,
    exports: Sequence[str | Path] = (),
    overwrite: bool = False,
    progress: bool = False,
) -> SelectionResult:
    """Compute Cohen's d of every feature between the two sets and write the
    top ``config.top`` per layer to a ``selection`` artifact (and ``exports``:
    ``.csv`` or ``.json`` files). Inputs are checked before any work."""
    config = config or SelectConfig()
    config.validate()
    ins = [*sae_paths, *set_a.parents, *set_b.parents]
    out = check_output_path(output or default_output(), overwrite=overwrite, inputs=ins)
    export_paths = [check_output_path(e, overwrite=overwrite, inputs=ins, option="--export") for e in exports]
    check_outputs([("--output", out), *(("--export", e) for e in export_paths)], overwrite=True)
    set_a.label, set_b.label = config.labels
    saes = load_layer_saes(sae_paths, config.device)
    restrict_features(config.features, saes)
    check_inputs((set_a, set_b), saes)

    pairing = select_pairing(set_a, set_b, config)  # before any work: --pairing paired on sets that cannot pair fails here
    moments, seqs = [], []
    for s in (set_a, set_b):
        with token_progress(f"select {s.label}", total=int(getattr(s, "n_tokens", 0) or 0), enabled=progress) as advance:
            m, q = feature_moments(s, saes, config, progress=advance, keep_rows=config.permutations > 0 or pairing.paired)
        moments.append(m)
        seqs.append(q)
    lengths = [next((acc.lengths for acc in q.values()), None) for q in seqs]  # the same sequences at every layer
    message = length_warning(lengths[0], lengths[1], config.labels, config.unit) if config.unit != "token" else None
    if message:
        warn(message)
    paired = paired_comparison(seqs[0], seqs[1], saes, config, by_id=not pairing.firsts) if pairing.paired else None
    if config.unit != "token":
        log(f"paired by {'prompt' if not pairing.firsts else 'line'}: {paired.n_pairs} pairs, ranked by the paired d (d_z of the per-pair differences)"
            if paired else f"compared unpaired ({pairing.why or 'see the warning'})")
    table = rank_features(moments[0], moments[1], saes, config, paired)
    if paired:
        log_paired_levels(paired, table, config)
    chance = chance_levels(seqs[0], seqs[1], saes, config, table) if paired is None else {}
    same = same_length_check(seqs[0], seqs[1], saes, config, table) if message else SameLength()  # lengths differ: length taken out too
    if same.level:
        table["d_same_length"] = same.d
    infinite = int(sum(1 for v in table["d"] if not math.isfinite(v)))
    if infinite:
        warn(f"{infinite} selected feature(s) have zero variance in both sets but different means (d = ±inf)")

    model = next((m for m in (saes[0].sae.cfg.model, set_a.model, set_b.model) if m), None)
    attrs = {
        "unit": config.unit,
        "top": config.top,
        "model": model or "",
        "layers": [x.layer for x in saes],
        "hooks": {str(x.layer): x.hook for x in saes},
        "saes": {str(x.layer): str(Path(x.path).resolve()) for x in saes},
        "d_sae": {str(x.layer): x.sae.cfg.d_sae for x in saes},
        "sets": {config.labels[0]: set_a.description, config.labels[1]: set_b.description},
        "labels": list(config.labels),
        "n_a": {str(k): v.n for k, v in moments[0].items()},
        "n_b": {str(k): v.n for k, v in moments[1].items()},
        "features_filter": list(config.features or []),
    }
    if config.unit != "token":
        attrs["pairing"] = {"paired": paired is not None, "pairs": paired.n_pairs if paired else 0,
                            "why": "" if paired else (pairing.why or "too few pairs, or over the sample budget")}
    if paired and paired.level:
        attrs["chance_max_abs_d_paired"] = {str(k): v for k, v in paired.level.items()}
        attrs["permutations"] = config.permutations
    if chance:
        attrs["chance_max_abs_d"] = {str(k): v for k, v in chance.items()}
        attrs["permutations"] = config.permutations
    if same.level:
        attrs["chance_max_abs_d_same_length"] = {str(k): v for k, v in same.level.items()}
        attrs["same_length_sequences"] = {str(k): list(v) for k, v in same.rows.items()}
    if lengths[0] is not None and lengths[1] is not None and len(lengths[0]) and len(lengths[1]):
        attrs["mean_length"] = {config.labels[0]: float(np.mean(lengths[0])), config.labels[1]: float(np.mean(lengths[1]))}
    parents = [*set_a.parents, *set_b.parents, *[x.path for x in saes if Path(x.path).is_file()]]
    provenance = build_provenance(model=model, hooks=[x.hook for x in saes], parents=parents, select={**attrs, "chunk_rows": config.chunk_rows})
    write_selection(out, table, attrs=attrs, provenance=provenance, overwrite=overwrite)
    meta = {k: attrs[k] for k in ("unit", "top", "model", "layers", "labels", "sets", "n_a", "n_b", "pairing") if k in attrs}
    done = [export_table(table, e, meta=meta) for e in export_paths]
    return SelectionResult(out, table, attrs["n_a"], attrs["n_b"], infinite, done)
