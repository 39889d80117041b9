"""The Python API behind ``saetool sweep``: a resumable grid of steering runs.

A *cell* is one split × layer × intervention × alpha. Each finished cell is a
small ``completions`` artifact under ``RUN/cells/SPLIT/`` written atomically,
so a killed sweep loses at most the cell in progress and a rerun skips every
cell whose file exists. The unsteered baseline (alpha 0) is generated once
per split (``RUN/cells/SPLIT/baseline.h5``) and shared by every layer and
every intervention whose alpha 0 is a no-op. ``summary.csv``,
``completions.csv`` and the plots are rebuilt from the cell files at the end
of every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saetool.artifacts.files import refuse_link, write_atomic
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance, file_sha256
from saetool.artifacts.resume import check_resumable
from saetool.console import debug, log, warn
from saetool.errors import SaetoolError
from saetool.locking import locked
from saetool.models import registry  # the module, so tests can stub registry.load_model
from saetool.models.hooks import hook_name, layer_of_hook, parse_hooks
from saetool.plugins import host
from saetool.progress import token_progress
from saetool.steer.best import BEST_JSON, find_best_json, resolve_best_layers, unreachable_decision, write_best
from saetool.steer.completions import read_completions, write_completions
from saetool.steer.generation import generate_completions
from saetool.steer.interventions import NonFiniteActivations, get_intervention
from saetool.steer.metrics import CompletionItem, MetricContext, get_metric, score_all
from saetool.steer.plots import plot_metric_vs_alpha, plot_tradeoff
from saetool.steer.prompts import format_prompts, read_prompts, read_words
from saetool.steer.sweep_config import DEFAULT_SPLITS, SweepConfig, load_sweep_config
from saetool.steer.vectors import (
    DEFAULT_NEGATIVE_WORDS,
    DEFAULT_POSITIVE_WORDS,
    artifact_kind_of,
    diff_means_vectors,
    import_vector,
    measure_norm,
    parse_positions,
    read_vector,
    vector_from_sae,
    write_vector,
)

if TYPE_CHECKING:
    import pandas as pd

    from saetool.models.base import HookedModel
    from saetool.steer.completions import Completions
    from saetool.steer.vectors import SteeringVector

# Deferred imports: `sweep --dry-run` plans without torch, pandas or scipy: the SAE loader and steering (torch) load
# when cells run, pandas and the statistics (scipy) when the summary is built.

SUMMARY = "summary.csv"
#: summary.csv repeats these columns under seed 001's names, so its pandas snippets run unchanged. The seed's
#: ``is_*_mean`` columns are rates of 0/1 flags; coherence here is a loss in nats, so it gets no such name.
SEED_COLUMNS = {"intervention": "intervention_type", "refusal_rate": "is_refusal_mean", "helpfulness_rate": "is_helpful_mean"}
COMPLETIONS_CSV = "completions.csv"
RUN_JSON = "run.json"
LOCK = ".sweep.lock"  # held while the run writes (saetool.locking)


@dataclass(frozen=True)
class Cell:
    """One unit of work: a split's baseline (``layer`` None) or a steered cell."""

    split: str
    layer: int | None = None
    intervention: str | None = None
    alpha: float | None = None

    @property
    def is_baseline(self) -> bool:
        return self.layer is None

    @property
    def relpath(self) -> str:
        if self.is_baseline:
            return f"cells/{self.split}/baseline.h5"
        return f"cells/{self.split}/L{self.layer:02d}_{self.intervention}_a{self.alpha:g}.h5"

    def label(self) -> str:
        if self.is_baseline:
            return f"{self.split} baseline"
        return f"{self.split} L{self.layer} {self.intervention} alpha={self.alpha:g}"

    def seed(self, base: int) -> int:
        digest = hashlib.sha256(f"{base}|{self.relpath}".encode()).hexdigest()
        return int(digest[:8], 16)


@dataclass
class SweepResult:
    run_dir: Path
    cells: list[Cell]
    computed: list[Cell] = field(default_factory=list)
    skipped: int = 0
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    summary: "pd.DataFrame | None" = None
    plots: list[Path] = field(default_factory=list)
    n_completions_pending: int = 0
    best: dict[str, Any] | None = None  # best.json's content (see saetool.steer.best)

    @property
    def summary_path(self) -> Path:
        return self.run_dir / SUMMARY


# -- prompt sets ---------------------------------------------------------------------------------
@dataclass
class PromptSets:
    eval: dict[str, list[str]]  # split -> prompts (capped)
    positive: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)


def _sha(items: Any) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def eval_splits_of(cfg: SweepConfig, available: list[str]) -> list[str]:
    if cfg.splits:
        return list(cfg.splits)
    default = [s for s in DEFAULT_SPLITS if s in available]
    return default or list(available)


def load_prompt_sets(cfg: SweepConfig) -> PromptSets:
    if isinstance(cfg.prompts, dict):
        files = dict(cfg.prompts)

        def read_split(split: str, cap: int | None) -> list[str]:
            return [p.text for p in read_prompts(cfg.resolve_path(files[split]), max_prompts=cap, what=f"prompt file for split {split!r}")]

        available = list(files)
    else:
        all_prompts = read_prompts(cfg.resolve_path(cfg.prompts))
        available = sorted({p.split for p in all_prompts if p.split})
        if not available:
            raise SaetoolError(f"{cfg.prompts} has no 'split' fields", hint="give prompts as {split: file} or a .jsonl with a split per prompt")

        def read_split(split: str, cap: int | None) -> list[str]:
            chosen = [p.text for p in all_prompts if p.split == split]
            if not chosen:
                raise SaetoolError(f"{cfg.prompts} has no prompts in split {split!r}", hint="its splits: " + ", ".join(available))
            return chosen[:cap] if cap else chosen

    splits = eval_splits_of(cfg, available)
    for s in splits:
        if s not in available:
            raise SaetoolError(f"split {s!r} has no prompts", hint="prompts has: " + ", ".join(available))
    sets = PromptSets(eval={s: read_split(s, cfg.cap_for(s)) for s in splits})

    vec = cfg.vector
    if vec.method == "diff-means":
        for side in ("positive", "negative"):
            ref = getattr(vec, side)
            if not ref:
                raise SaetoolError(f"vector.{side} is needed for a difference of means", hint="a split name or a prompt file")
            if ref in available:
                texts = read_split(ref, vec.max_prompts)
            else:
                texts = [p.text for p in read_prompts(cfg.resolve_path(ref), max_prompts=vec.max_prompts, what=f"vector.{side} prompt file")]
            setattr(sets, side, texts)
        overlap = set(sets.positive) & set(sets.negative)
        if overlap:
            warn(f"{len(overlap)} prompt(s) are in both vector.positive and vector.negative")
    elif vec.method == "words":
        sets.positive = read_words(cfg.resolve_path(vec.positive)) if vec.positive and cfg.resolve_path(vec.positive).exists() else (read_words(vec.positive) if vec.positive else list(DEFAULT_POSITIVE_WORDS))
        sets.negative = read_words(cfg.resolve_path(vec.negative)) if vec.negative and cfg.resolve_path(vec.negative).exists() else (read_words(vec.negative) if vec.negative else list(DEFAULT_NEGATIVE_WORDS))
    sets.hashes = {s: _sha(t) for s, t in sets.eval.items()}
    return sets


# -- plan -------------------------------------------------------------------------------------------
GridRow = tuple  # (split, layer, intervention key, alpha, Cell holding the numbers)


def build_plan(cfg: SweepConfig, splits: list[str], clamp_layers: dict[str, int]) -> tuple[list[Cell], list[GridRow]]:
    """The cells to compute (baselines first) and the summary grid that reads them."""
    ivs = host().collect("interventions")
    cells = [Cell(s) for s in splits]
    grid: list[GridRow] = []
    for layer in cfg.layers:
        for spec in cfg.interventions:
            if spec.key in clamp_layers and clamp_layers[spec.key] != layer:
                continue
            identity = getattr(ivs[spec.name].obj, "identity_at_zero", True)
            for alpha in cfg.alphas:
                for s in splits:
                    if alpha == 0 and identity:
                        grid.append((s, layer, spec.key, alpha, Cell(s)))
                    else:
                        cell = Cell(s, layer, spec.key, alpha)
                        cells.append(cell)
                        grid.append((s, layer, spec.key, alpha, cell))
    return cells, grid


def fingerprint(cfg: SweepConfig, sets: PromptSets) -> dict[str, Any]:
    """Every setting that changes what a cell holds (the grid axes are not among them)."""
    vec = dict(vars(cfg.vector))
    for key in ("file", "sae"):
        if vec.get(key):
            p = cfg.resolve_path(vec[key])
            vec[key + "_sha256"] = file_sha256(p) if p.is_file() else str(p.resolve())
            vec.pop(key)
    vec["positive_sha"] = _sha(sets.positive)
    vec["negative_sha"] = _sha(sets.negative)
    vec.pop("positive", None)
    vec.pop("negative", None)
    ivs = {}
    for spec in cfg.interventions:
        if spec.sae:
            p = cfg.resolve_path(spec.sae)
            ivs[spec.key] = {"name": spec.name, "feature": spec.feature, "sae_sha256": file_sha256(p) if p.is_file() else str(p.resolve())}
    return {
        "model": cfg.model,
        "backend": cfg.backend,
        "dtype": cfg.dtype,
        "chat": cfg.chat,
        "system": cfg.system,
        "prompts": sets.hashes,
        "vector": vec,
        "interventions": ivs,
        "site": cfg.site,
        "scale": cfg.scale,
        "positions": cfg.positions,
        "generation": cfg.generation.to_dict(),
    }


def _check_run_json(run_dir: Path, fp: dict[str, Any]) -> None:
    path = run_dir / RUN_JSON
    if not path.exists():
        return
    try:
        before = json.loads(path.read_text()).get("fingerprint", {})
    except (OSError, ValueError):
        return
    check_resumable(before, fp, str(run_dir), hint="use another name, or pass --overwrite to start this run afresh")


# -- running ------------------------------------------------------------------------------------------
def run_sweep(
    config: SweepConfig | str | Path,
    *,
    model: "HookedModel | None" = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    dry_run: bool = False,
) -> SweepResult:
    """Run (or resume) a sweep; returns what was computed and the summary.

    Pass an already loaded ``model`` to skip loading. Cells whose files exist
    are skipped; the summary, ``completions.csv`` and plots are rebuilt.
    """
    cfg = config if isinstance(config, SweepConfig) else load_sweep_config(config)
    out_dir = Path(output_dir or cfg.output_dir)
    run_dir = out_dir / cfg.name
    _check_inputs_outside(cfg, run_dir, out_dir)
    resolve_best_layers(cfg, out_dir, dry_run=dry_run)
    sets = load_prompt_sets(cfg)
    splits = list(sets.eval)
    clamp_saes = _load_clamp_saes(cfg)
    clamp_layers = {key: _layer_of(sae.cfg.hook) for key, sae in clamp_saes.items()}
    cells, grid = build_plan(cfg, splits, clamp_layers)
    fp = fingerprint(cfg, sets)
    result = SweepResult(run_dir, cells)
    if run_dir.exists() and not run_dir.is_dir():
        raise SaetoolError(f"{run_dir} exists and is not a folder")
    if not overwrite and run_dir.exists():
        _check_run_json(run_dir, fp)
    pending = [c for c in cells if overwrite or not (run_dir / c.relpath).exists()]
    result.skipped = len(cells) - len(pending)
    result.n_completions_pending = sum(len(sets.eval[c.split]) for c in pending)
    steered = {s: sum(1 for c in cells if c.split == s and not c.is_baseline) for s in splits}
    if (note := unreachable_decision(cfg, {s: len(sets.eval[s]) for s in splits}, steered)) is not None:
        warn(note)
    if dry_run:
        return result

    if pending and model is None:
        model = registry.load_model(cfg.model, backend=cfg.backend, device=cfg.device, dtype=cfg.dtype)
    if model is not None:
        _validate_against_model(cfg, model, clamp_saes)

    for sub in ("cells", "vectors", "plots"):  # folders the run writes into (and --overwrite deletes)
        refuse_link(run_dir / sub, what="sweep results")
    with locked(run_dir / LOCK, lambda: SaetoolError(f"another sweep is running in {run_dir}", hint="wait for it, or use another name")):
        if overwrite:
            for sub in ("cells", "vectors", "plots"):
                shutil.rmtree(run_dir / sub, ignore_errors=True)
            for name in (SUMMARY, COMPLETIONS_CSV, RUN_JSON, BEST_JSON):
                (run_dir / name).unlink(missing_ok=True)
        write_atomic(
            run_dir / RUN_JSON,
            json.dumps({"name": cfg.name, "config": cfg.to_dict(), "config_file": str(cfg.path.resolve()) if cfg.path else None, "fingerprint": fp}, indent=2, sort_keys=True, default=str),
        )
        if cfg.path is not None:
            write_atomic(run_dir / "config.yaml", cfg.path.read_bytes())
        if pending:
            assert model is not None
            runner = _Runner(cfg, model, sets, run_dir, fp, clamp_saes)
            runner.run(pending, progress, result)
        result.summary = summarize(cfg, run_dir, grid, model=model)
        result.plots = write_outputs(cfg, run_dir, result.summary, cells)
        result.best = write_best(run_dir, result.summary, cfg.statistics, cfg.refusal_metric)
    return result


def _layer_of(hook: str) -> int:
    layer = layer_of_hook(hook)
    return -1 if layer is None else layer


def _load_clamp_saes(cfg: SweepConfig) -> dict[str, Any]:
    out = {}
    for spec in cfg.interventions:
        if spec.sae is not None:
            from saetool.sae.io import load_sae

            out[spec.key] = load_sae(cfg.resolve_path(spec.sae), cfg.device)
    return out


def _check_inputs_outside(cfg: SweepConfig, run_dir: Path, output_dir: Path) -> None:
    """No input (the config, prompt files, vectors, SAEs, best_from's best.json) is among
    what the run writes or replaces."""
    named = list(cfg.prompts.values()) if isinstance(cfg.prompts, dict) else [cfg.prompts]
    named += [v for spec in (cfg.vector, *cfg.interventions) for v in (getattr(spec, "file", None), getattr(spec, "sae", None)) if isinstance(v, str)]
    inputs: list[Any] = [cfg.path, *(cfg.resolve_path(p) for p in named), ("best_from", find_best_json(cfg, output_dir))]
    written = [run_dir / name for name in (RUN_JSON, SUMMARY, COMPLETIONS_CSV, BEST_JSON, LOCK, "cells", "vectors", "plots")]
    check_outputs([("--output-dir", p) for p in written], inputs, overwrite=True, folders=["--output-dir"])


def _validate_against_model(cfg: SweepConfig, model: "HookedModel", clamp_saes: dict[str, Any]) -> None:
    n = cfg.generation.max_new_tokens
    model.check_positions(n, f"generation.max_new_tokens {n}", f"generate fewer than {model.max_positions} tokens")
    for layer in cfg.layers:
        if not 0 <= layer < model.n_layers:
            raise SaetoolError(f"layer {layer} is out of range", hint=f"{model.model_id} has layers 0-{model.n_layers - 1}")
    parse_hooks([hook_name(layer, cfg.site) for layer in cfg.layers], model.n_layers, model.supported_sites)
    for spec in cfg.interventions:
        sae = clamp_saes.get(spec.key)
        if sae is not None:
            hook = str(sae.cfg.hook)
            get_intervention(spec.name).check(d=model.hook_dim(hook), sae=sae, feature=spec.feature, hook=hook)
            if _layer_of(hook) not in cfg.layers:
                warn(f"{spec.key}: its SAE reads {hook}, a layer not in layers {cfg.layers}; it is skipped")


class _Runner:
    def __init__(self, cfg: SweepConfig, model: "HookedModel", sets: PromptSets, run_dir: Path, fp: dict[str, Any], clamp_saes: dict[str, Any]) -> None:
        self.cfg = cfg
        self.model = model
        self.sets = sets
        self.run_dir = run_dir
        self.fp_hash = _sha(fp)
        self.clamp_saes = clamp_saes
        self.texts = {s: format_prompts(model.tokenizer, ps, chat=cfg.chat, system=cfg.system) for s, ps in sets.eval.items()}
        self.vectors: dict[int, SteeringVector] = {}
        self.norms: dict[str, float] = {}

    # vectors -------------------------------------------------------------------------------------
    def vector_for(self, layer: int, pending_layers: list[int]) -> "SteeringVector":
        if layer in self.vectors:
            return self.vectors[layer]

        vec = self.cfg.vector
        if vec.method in ("file", "sae"):
            sv = self._shared_vector()
            for lay in self.cfg.layers:
                self.vectors[lay] = sv
            return sv
        path = self.run_dir / "vectors" / f"L{layer:02d}.h5"
        if path.exists():
            self.vectors[layer] = read_vector(path)
            return self.vectors[layer]
        todo = [lay for lay in pending_layers if lay not in self.vectors and not (self.run_dir / "vectors" / f"L{lay:02d}.h5").exists()]
        if layer not in todo:
            todo.append(layer)
        self._make_vectors(sorted(todo))
        return self.vectors[layer]

    def _shared_vector(self) -> "SteeringVector":
        vec = self.cfg.vector
        if vec.method == "sae":
            from saetool.sae.io import load_sae

            p = self.cfg.resolve_path(vec.sae or "")
            return vector_from_sae(load_sae(p, self.cfg.device), int(vec.feature or 0), source=str(p))
        p = self.cfg.resolve_path(vec.file or "")
        if artifact_kind_of(p) == "vector":
            return read_vector(p)
        return import_vector(p, hook_name(self.cfg.layers[0], self.cfg.site), model=self.cfg.model)

    def _make_vectors(self, layers: list[int]) -> None:
        vec = self.cfg.vector
        hooks = [hook_name(lay, self.cfg.site) for lay in layers]
        if vec.method == "words":
            template = vec.template
            if "{word}" not in template:
                raise SaetoolError(f"vector.template {template!r} has no {{word}} placeholder")
            pos = [template.format(word=w) for w in self.sets.positive]
            neg = [template.format(word=w) for w in self.sets.negative]
            chat = False
            details = {"positive_words": self.sets.positive, "negative_words": self.sets.negative, "template": template}
        else:
            pos, neg, chat = self.sets.positive, self.sets.negative, self.cfg.chat
            details = {"positive": vec.positive, "negative": vec.negative}
        log(f"building {vec.method} vectors at layer(s) {', '.join(map(str, layers))} from {len(pos)} positive and {len(neg)} negative prompts")
        made = diff_means_vectors(
            self.model, pos, neg, hooks,
            positions=parse_positions(vec.positions), chat=chat, system=self.cfg.system if chat else None,
            batch_size=self.cfg.generation.batch_size, method=vec.method, details={**details, "sweep": self.cfg.name},
        )
        (self.run_dir / "vectors").mkdir(parents=True, exist_ok=True)
        for lay, hook in zip(layers, hooks):
            sv = made[hook]
            prov = build_provenance(model=self.model.model_id, backend=self.model.backend_name, hooks=[hook], vector={"method": vec.method, **details})
            path = self.run_dir / "vectors" / f"L{lay:02d}.h5"
            write_vector(path, sv, provenance=prov, overwrite=True)
            sv.path = path
            self.vectors[lay] = sv

    def norm_at(self, hook: str) -> float:
        if hook not in self.norms:
            texts = [t for ts in self.texts.values() for t in ts]
            self.norms[hook] = measure_norm(self.model, texts, hook, chat=self.cfg.chat, batch_size=self.cfg.generation.batch_size)
        return self.norms[hook]

    # cells ----------------------------------------------------------------------------------------
    def run(self, pending: list[Cell], show_progress: bool, result: SweepResult) -> None:
        total = sum(len(self.texts[c.split]) for c in pending)
        pending_layers = sorted({c.layer for c in pending if c.layer is not None})
        log(f"sweep {self.cfg.name}: {len(pending)} cell(s) to run, {result.skipped} already done -> {self.run_dir}")
        with token_progress("sweep", total=total, enabled=show_progress, unit="completions") as advance:
            for cell in pending:
                start = time.perf_counter()
                msg = self.run_cell(cell, pending_layers, advance)
                result.computed.append(cell)
                if msg:
                    result.failed.append((cell, msg))
                    warn(f"{cell.label()}: {msg}")
                else:
                    debug(f"{cell.label()} done in {time.perf_counter() - start:.1f}s")

    def steering_for(self, cell: Cell, pending_layers: list[int]):
        from saetool.steer.api import make_steering

        spec = next(s for s in self.cfg.interventions if s.key == cell.intervention)
        iv = get_intervention(spec.name)
        assert cell.layer is not None and cell.alpha is not None
        if iv.needs_sae:
            sae = self.clamp_saes[spec.key]
            steering, _ = make_steering(self.model, iv, str(sae.cfg.hook), cell.alpha, sae=sae, feature=spec.feature, positions=self.cfg.positions)
            return steering, None
        hook = hook_name(cell.layer, self.cfg.site)
        sv = self.vector_for(cell.layer, pending_layers)
        steering, _ = make_steering(self.model, iv, hook, cell.alpha, vector=sv, scale=self.cfg.scale, positions=self.cfg.positions, measure_norm=self.norm_at)
        return steering, sv

    def run_cell(self, cell: Cell, pending_layers: list[int], advance) -> str:
        cfg = self.cfg
        prompts = self.sets.eval[cell.split]
        texts = self.texts[cell.split]
        seed = cell.seed(cfg.generation.seed)
        steering, sv = (None, None) if cell.is_baseline else self.steering_for(cell, pending_layers)
        status, error = "ok", ""
        start = time.perf_counter()
        try:
            comps = generate_completions(self.model, texts, chat=cfg.chat, settings=cfg.generation, steering=steering, seed=seed, advance=advance)
        except NonFiniteActivations as exc:
            status, error = "error", exc.one_line()
            comps = [""] * len(prompts)
            advance(len(prompts))
        if status == "ok":
            ctx = MetricContext(model=self.model, batch_size=cfg.generation.batch_size, chat=cfg.chat)
            items = [CompletionItem(p, c, cell.split, t) for p, c, t in zip(prompts, comps, texts)]
            metrics = score_all(cfg.metrics, items, ctx)
        else:
            metrics = {m: [math.nan] * len(prompts) for m in cfg.metrics}
        cond = "baseline" if cell.is_baseline else "steered"
        hook = steering.hook if steering is not None else None
        settings = {
            "sweep": cfg.name,
            "cell": {"split": cell.split, "layer": cell.layer, "intervention": cell.intervention, "alpha": cell.alpha},
            "hook": hook,
            "scale": cfg.scale,
            "positions": cfg.positions,
            "chat": cfg.chat,
            "generation": cfg.generation.to_dict(),
            "seed": seed,
            "fingerprint": self.fp_hash,
            "seconds": round(time.perf_counter() - start, 2),
        }
        parents = [sv.path] if sv is not None and sv.path is not None and Path(sv.path).exists() else []
        prov = build_provenance(model=self.model.model_id, backend=self.model.backend_name, hooks=[hook] if hook else [], parents=parents, sweep=settings)
        path = self.run_dir / cell.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_completions(
            path, prompts=prompts, splits=[cell.split] * len(prompts), texts={cond: comps}, metrics={cond: metrics},
            settings=settings, provenance=prov, status=status, error=error, overwrite=True,
        )
        return error


# -- summary -------------------------------------------------------------------------------------
def summarize(cfg: SweepConfig, run_dir: Path, grid: list[GridRow], *, model: "HookedModel | None" = None) -> "pd.DataFrame":
    """One row per split × layer × intervention × alpha with rates, intervals and tests."""
    import pandas as pd

    from saetool.steer.stats import adjust, fisher_exact_p, mean_ci, paired_p, welch_p, wilson_ci

    loaded: dict[Cell, Completions | None] = {}

    def load(cell: Cell) -> "Completions | None":
        if cell not in loaded:
            path = run_dir / cell.relpath
            loaded[cell] = read_completions(path) if path.exists() else None
            if loaded[cell] is not None:
                _fill_missing_metrics(cfg, loaded[cell], model)
        return loaded[cell]

    metrics = {name: get_metric(name) for name in cfg.metrics}
    rows: list[dict[str, Any]] = []
    for split, layer, key, alpha, cell in grid:
        comp = load(cell)
        base = load(Cell(split))
        row: dict[str, Any] = {
            "split": split,
            "layer": layer,
            "hook": hook_name(layer, cfg.site),
            "intervention": key,
            "alpha": alpha,
            "scale": cfg.scale,
            "positions": cfg.positions,
            "is_baseline": cell.is_baseline,
            "status": "missing" if comp is None else comp.status,
            "error": "" if comp is None else comp.error,
            "n": 0 if comp is None else comp.n,
        }
        # statistics.test paired: the steered and alpha-0 completions of one prompt are a pair (same prompts, same order)
        paired = cfg.statistics.test == "paired" and comp is not None and base is not None and list(comp.prompts) == list(base.prompts)
        for name, metric in metrics.items():
            vals = _values(comp, name)
            bvals = _values(base, name)
            pair = paired and len(vals) == len(bvals)
            finite = [v for v in vals if not math.isnan(v)]
            bfinite = [v for v in bvals if not math.isnan(v)]
            if metric.kind == "rate":
                k, n = int(round(sum(finite))), len(finite)
                bk, bn = int(round(sum(bfinite))), len(bfinite)
                lo, hi = wilson_ci(k, n)
                row[f"{name}_rate"] = k / n if n else math.nan
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = lo, hi
                row[f"{name}_k"] = k
                row[f"{name}_delta"] = (k / n - bk / bn) if n and bn else math.nan
                row[f"{name}_p"] = math.nan if cell.is_baseline else (paired_p(bvals, vals, rate=True) if pair else fisher_exact_p(k, n, bk, bn))
            else:
                m, lo, hi = mean_ci(finite, bounds=metric.bounds)
                bm = mean_ci(bfinite)[0]
                row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = m, lo, hi
                row[f"{name}_delta"] = m - bm if finite and bfinite else math.nan
                row[f"{name}_p"] = math.nan if cell.is_baseline else (paired_p(bvals, vals, rate=False) if pair else welch_p(finite, bfinite))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    groups = [df.index[df["split"].isin(family)] for family in cfg.statistics.families(list(dict.fromkeys(df["split"])))]
    for name in metrics:
        df[f"{name}_p_adj"] = math.nan
        for rows in groups:  # one family per split (statistics.family: split) or the whole run
            df.loc[rows, f"{name}_p_adj"] = adjust(df.loc[rows, f"{name}_p"].tolist(), cfg.statistics.correction)
    if "helpfulness" in metrics:
        df["helpfulness_drop"] = 0.0 - df["helpfulness_delta"] + 0.0
    if "refusal" in metrics:
        df["significant"] = df["refusal_p_adj"] < cfg.statistics.level
    for ours, seeds in SEED_COLUMNS.items():
        if ours in df:
            df[seeds] = df[ours]
    df["layer"] = df["layer"].astype("Int64")
    return df


def _values(comp: "Completions | None", name: str) -> list[float]:
    if comp is None or comp.status != "ok":
        return []
    cond = next(iter(comp.metrics), None)
    if cond is None or name not in comp.metrics[cond]:
        return []
    return comp.metrics[cond][name]


def _fill_missing_metrics(cfg: SweepConfig, comp: "Completions", model: "HookedModel | None") -> None:
    """Compute configured metrics a cell file lacks (added to the config after it ran), in memory."""
    if comp.status != "ok" or not comp.texts:
        return
    cond = next(iter(comp.texts))
    have = comp.metrics.setdefault(cond, {})
    missing = [m for m in cfg.metrics if m not in have]
    if not missing:
        return
    needs_model = [m for m in missing if get_metric(m).needs_model]
    if needs_model and model is None:
        warn(f"metric(s) {', '.join(needs_model)} are missing from {comp.path} and need the model; rerun with cells to compute, or delete the cell")
        missing = [m for m in missing if m not in needs_model]
    texts = format_prompts(model.tokenizer, comp.prompts, chat=cfg.chat, system=cfg.system) if model is not None else [None] * comp.n
    items = [CompletionItem(p, c, s, t) for p, c, s, t in zip(comp.prompts, comp.texts[cond], comp.splits, texts)]
    ctx = MetricContext(model=model, batch_size=cfg.generation.batch_size, chat=cfg.chat)
    for m in missing:
        have[m] = [float(v) for v in get_metric(m).score(items, ctx)]


def write_outputs(cfg: SweepConfig, run_dir: Path, summary: "pd.DataFrame", cells: list[Cell]) -> list[Path]:
    """``summary.csv``, ``completions.csv`` and the plots."""
    import pandas as pd

    write_atomic(run_dir / SUMMARY, summary.to_csv(index=False))
    rows = []
    for cell in cells:
        path = run_dir / cell.relpath
        if not path.exists():
            continue
        comp = read_completions(path)
        cond = next(iter(comp.texts), "steered")
        mets = comp.metrics.get(cond, {})
        for i in range(comp.n):
            rows.append({
                "split": cell.split,
                "layer": cell.layer,
                "intervention": cell.intervention or "none",
                "alpha": 0.0 if cell.alpha is None else cell.alpha,
                "status": comp.status,
                "prompt": comp.prompts[i],
                "completion": comp.texts.get(cond, [""] * comp.n)[i],
                **{m: v[i] for m, v in mets.items()},
            })
    table = pd.DataFrame(rows)
    if not table.empty:
        table["layer"] = table["layer"].astype("Int64")  # baselines have no layer: "", not "15.0" for the rest
        table["intervention_type"] = table["intervention"]
    write_atomic(run_dir / COMPLETIONS_CSV, table.to_csv(index=False))
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    out = []
    if summary.empty:
        return out
    for metric in cfg.metrics:
        if f"{metric}_rate" in summary or f"{metric}_mean" in summary:
            out.append(plot_metric_vs_alpha(summary, plots_dir / f"{metric}_vs_alpha.png", metric, title=cfg.name, level=cfg.statistics.level))
    if "refusal_rate" in summary:
        p = plot_tradeoff(summary, plots_dir / "tradeoff.png", title=cfg.name)
        if p is not None:
            out.append(p)
    return out
