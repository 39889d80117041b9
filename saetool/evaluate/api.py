"""Evaluating an SAE: reconstruction metrics on held-out activations and
downstream metrics with the SAE spliced into the model.

Tokens come from an activations artifact (its stored rows for the
reconstruction metrics, its stored context windows ``sequences/token_ids`` for
the model metrics, so both see the same tokens) or, without one, from a corpus
packed into windows like ``extract`` does (the reconstruction metrics then use
the activations captured at the SAE's hook in the clean pass, special tokens
left out as ``extract`` leaves them out). Pass activations the SAE was not
trained on for a held-out estimate.

BOS handling (the same for every model metric, and what
``sae_lens.evals.get_recons_loss`` does with ``ignore_tokens=[bos]``): at
positions holding the BOS id (the first token of every window) the SAE is not
spliced in (the clean activation is kept: its norm is atypical and ``extract``
stores no rows for it), and the next-token loss and KL predicted *from* those
positions are left out of every mean, as is each window's last position (it
predicts nothing). Zero ablation ablates every position, BOS included.

For a transcoder (``cfg.hook_out != cfg.hook``) the SAE reads ``hook`` and its
output replaces ``hook_out``; zero ablation zeroes ``hook_out``.

Memory is bounded by ``batch_size`` windows per forward pass (a few
``batch_size x context x vocab`` float32 logit tensors live at once) and by
row chunks of at most 2**24 codes for the reconstruction metrics.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import torch
from rich.table import Table

from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.jsonable import finite
from saetool.artifacts.norms import DEFAULT_MAX_NORM_RATIO, NormFilter, sample_budget, sample_rows
from saetool.console import is_quiet, log, stderr, warn
from saetool.corpus.packing import bos_id, special_token_mask
from saetool.corpus.resolve import resolve_corpus
from saetool.errors import ModelError, SaetoolError
from saetool.evaluate.metrics import EvalContext, LMBatch, ReconBatch, sae_metrics
from saetool.evaluate.overlap import overlap_warning, training_file_warning
from saetool.extract.config import ExtractConfig
from saetool.extract.core import make_windows
from saetool.models import registry  # the module, so tests can stub registry.load_model
from saetool.models.hooks import parse_hooks
from saetool.sae.crosscoder import check_crosscoder_file, crosscoder_hooks, read_inputs
from saetool.sae.io import check_sae_matches, load_sae

if TYPE_CHECKING:
    from saetool.models.base import HookedModel
    from saetool.sae.config import SAEConfig
    from saetool.sae.model import SAE


@dataclass
class EvalConfig:
    """What to evaluate on. ``model`` defaults to the SAE's model (then the
    activations' model); ``use_model=False`` skips the model metrics."""

    model: str | None = None
    backend: str = "transformers"
    corpus: str = "bbc-news"
    context_size: int = 128
    num_tokens: int = 4096
    skip_tokens: int = 0  # with a corpus: start after the windows of its first N stored tokens (extract --skip-tokens)
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"
    dead_threshold: float = 0.0
    dense_threshold: float = 0.1
    use_model: bool = True
    metrics: list[str] | None = None
    max_norm_ratio: float = DEFAULT_MAX_NORM_RATIO  # reconstruction metrics are also reported without rows farther than this x the median distance from the median row

    def validate(self) -> None:
        if self.num_tokens < 1:
            raise SaetoolError(f"--num-tokens must be positive (got {self.num_tokens})")
        if self.skip_tokens < 0:
            raise SaetoolError(f"--skip-tokens must be 0 or more (got {self.skip_tokens})")
        if self.batch_size < 1:
            raise SaetoolError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.context_size < 2:
            raise SaetoolError(f"--context-size must be at least 2 (got {self.context_size})")
        for name, value in (("--dead-threshold", self.dead_threshold), ("--dense-threshold", self.dense_threshold)):
            if not 0 <= value <= 1:
                raise SaetoolError(f"{name} must be a firing frequency in [0, 1] (got {value})")
        if not (self.max_norm_ratio > 0 and math.isfinite(self.max_norm_ratio)):
            raise SaetoolError(f"--max-norm-ratio must be a positive number (got {self.max_norm_ratio})")


@dataclass
class Evaluation:
    """Metric values plus what they were measured on."""

    metrics: dict[str, float]
    sae: str
    hook: str
    hook_out: str
    d_in: int
    d_sae: int
    activations: str | None = None
    model: str | None = None
    corpus: str | None = None
    n_rows: int = 0
    n_positions: int = 0
    descriptions: dict[str, str] = field(default_factory=dict)
    #: the reconstruction metrics again without the massive-activation rows (farther than
    #: ``norm_filter["distance_cutoff"]`` from the median row; ``norm_filter["massive_rows"]`` of them), from an activations file
    metrics_ordinary: dict[str, float] = field(default_factory=dict)
    norm_filter: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("descriptions")
        return finite(out)  # a metric not measured (NaN) is null


# -- setup -----------------------------------------------------------------------------
def _model_name(config: EvalConfig, sae: "SAE", acts: "ActivationsFile | None") -> str | None:
    return config.model or sae.cfg.model or (acts.model if acts is not None else None)


def check_activations(sae: "SAE", acts: "ActivationsFile") -> None:
    """The file must hold the SAE's hook (and ``hook_out`` for a transcoder) at the SAE's widths."""
    cfg = sae.cfg
    if crosscoder_hooks(cfg):
        check_crosscoder_file(cfg, acts)
        return
    if cfg.hook not in acts.hooks:
        raise SaetoolError(f"the SAE reads {cfg.hook} but {acts.path} has activations for {', '.join(acts.hooks)}", hint="extract that hook, or pass the matching SAE")
    check_sae_matches(sae, d_in=acts.d(cfg.hook), hook=cfg.hook, model=acts.model, what=f"activations in {acts.path.name}")
    if cfg.is_transcoder:
        if cfg.hook_out not in acts.hooks:
            raise SaetoolError(f"the transcoder reconstructs {cfg.hook_out} but {acts.path} has no activations for it", hint=f"extract --hooks {cfg.hook},{cfg.hook_out}")
        if acts.d(cfg.hook_out) != cfg.d_out:
            raise SaetoolError(f"the transcoder outputs d_out={cfg.d_out} but {cfg.hook_out} in {acts.path.name} has d={acts.d(cfg.hook_out)}")


def check_model(sae: "SAE", model: "HookedModel") -> None:
    """The model must have the SAE's hook(s) at the SAE's widths."""
    cfg = sae.cfg
    for hook in dict.fromkeys([cfg.hook, cfg.hook_out]):
        try:
            parse_hooks([hook], model.n_layers, model.supported_sites)
        except (ModelError, ValueError) as exc:
            msg = exc.message if isinstance(exc, SaetoolError) else str(exc)
            raise SaetoolError(f"the SAE's hook does not exist in {model.model_id}: {msg}", hint="pass the model the SAE was trained on (--model)") from exc
    check_sae_matches(sae, d_in=model.hook_dim(cfg.hook), what=f"model {model.model_id} at {cfg.hook}")
    if cfg.is_transcoder and model.hook_dim(cfg.hook_out) != cfg.d_out:
        raise SaetoolError(f"the transcoder outputs d_out={cfg.d_out} but {model.model_id} has d={model.hook_dim(cfg.hook_out)} at {cfg.hook_out}")


# -- batches ---------------------------------------------------------------------------
def _row_chunk(d_sae: int) -> int:
    return max(1, min(4096, (1 << 24) // max(d_sae, 1)))


def _read_input(acts: "ActivationsFile", cfg: "SAEConfig", start: int, stop: int) -> "torch.Tensor":
    """Rows ``start:stop`` of the SAE's input (a crosscoder's hooks side by side)."""
    hooks = crosscoder_hooks(cfg)
    return read_inputs(acts, hooks, start, stop) if hooks else acts.read_finite(cfg.hook, start, stop)


def recon_batches_from_file(sae: "SAE", acts: "ActivationsFile", num_rows: int, rule: NormFilter) -> Iterator[tuple["Any", "torch.Tensor"]]:
    """:class:`ReconBatch` es over the first ``num_rows`` rows of the file, each with the
    mask of the rows ``rule`` keeps, judged on the rows as stored (before the cast to
    the SAE's dtype, which can move a row across the cutoff)."""
    cfg = sae.cfg
    stop = min(num_rows, acts.n_tokens)
    step = _row_chunk(cfg.d_sae)
    with torch.no_grad():
        for start in range(0, stop, step):
            end = min(start + step, stop)
            raw = _read_input(acts, cfg, start, end)
            keep = rule.keep(raw).to(sae.device)
            x = raw.to(device=sae.device, dtype=sae.dtype)
            target = acts.read_finite(cfg.hook_out, start, end).to(sae.device) if cfg.is_transcoder else x
            codes = sae.encode(x)
            yield ReconBatch(x=x, target=target, recon=sae.decode(codes) + sae.skip_term(x), codes=codes), keep


def recon_batches_from_rows(sae: "SAE", x: "torch.Tensor", target: "torch.Tensor") -> Iterator["Any"]:
    step = _row_chunk(sae.cfg.d_sae)
    with torch.no_grad():
        for start in range(0, x.shape[0], step):
            xs = x[start : start + step].to(device=sae.device, dtype=sae.dtype)
            codes = sae.encode(xs)
            yield ReconBatch(x=xs, target=target[start : start + step].to(sae.device), recon=sae.decode(codes) + sae.skip_term(xs), codes=codes)


def _log_probs(logits: "torch.Tensor") -> "torch.Tensor":
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)


@dataclass
class LMBaseline:
    """What a batch's model metrics need that no SAE changes, computed once and shared by
    every SAE of one hook (:func:`lm_baseline`): the clean next-token log-probabilities and
    probabilities ``[b, T-1, vocab]``, the clean and zero-ablated losses and the ablation's KL
    at the kept positions, the kept-position mask ``keep`` ``[b, T]`` (not BOS) and the SAE
    input (and, for a transcoder, target) rows of the clean pass when asked for."""

    logp_clean: "torch.Tensor"
    p_clean: "torch.Tensor"
    nll_clean: "torch.Tensor"
    nll_zero: "torch.Tensor"
    kl_zero: "torch.Tensor"
    keep: "torch.Tensor"
    rows: "tuple[torch.Tensor, torch.Tensor] | None" = None


def lm_baseline(model: "HookedModel", ids: "torch.Tensor", bos: int | None, hook: str, hook_out: str, *, capture_special: "np.ndarray | None" = None) -> LMBaseline:
    """The clean and zero-ablated passes over ``ids`` ``[b, T]`` for SAEs reading ``hook`` and
    writing ``hook_out`` (zero ablation zeroes ``hook_out`` at every position, BOS included).
    With ``capture_special`` (a bool mask of positions to leave out), ``rows`` holds the clean
    pass's activations at the other positions: ``(hook rows, hook_out rows)``."""
    ids = ids.to(model.device)
    keep = ids != bos if bos is not None else torch.ones_like(ids, dtype=torch.bool)
    seen: dict[str, torch.Tensor] = {}

    def capture(name: str):
        def fn(t):
            seen[name] = t
            return None

        return fn

    with torch.no_grad():
        clean_hooks = {hook: capture("in")}
        if hook_out != hook:
            clean_hooks[hook_out] = capture("out")
        logp_clean = _log_probs(model.logits(ids, edit_hooks=clean_hooks))
        rows = None
        if capture_special is not None:
            take = ~torch.as_tensor(capture_special, device=ids.device)
            x_in = seen["in"][take]
            rows = (x_in, seen["out"][take] if hook_out != hook else x_in)
        target = ids[:, 1:].unsqueeze(-1)
        mask = keep[:, :-1]
        p_clean = logp_clean.exp()
        nll_clean = -logp_clean.gather(-1, target).squeeze(-1)[mask]
        logp_zero = _log_probs(model.logits(ids, edit_hooks={hook_out: torch.zeros_like}))
        nll_zero = -logp_zero.gather(-1, target).squeeze(-1)[mask]
        kl_zero = (p_clean * (logp_clean - logp_zero)).sum(-1)[mask]
    return LMBaseline(logp_clean, p_clean, nll_clean, nll_zero, kl_zero, keep, rows)


def lm_batch(
    sae: "SAE", model: "HookedModel", ids: "torch.Tensor", bos: int | None, *, capture_special: "np.ndarray | None" = None, baseline: LMBaseline | None = None,
) -> "tuple[Any, tuple[torch.Tensor, torch.Tensor] | None]":
    """Clean, spliced and zero-ablated passes over ``ids`` ``[b, T]`` (full windows, no padding).

    Returns the :class:`LMBatch` and, when ``capture_special`` (a bool mask of
    positions to leave out) is given, the SAE input and target rows at the
    other positions of the clean pass. A ``baseline`` from :func:`lm_baseline`
    on the same ``ids`` (and the SAE's hooks) replaces the clean and zero-ablated
    passes: only the spliced pass runs (the numbers are the same).
    """
    cfg = sae.cfg
    ids = ids.to(model.device)
    if baseline is None:
        baseline = lm_baseline(model, ids, bos, cfg.hook, cfg.hook_out, capture_special=capture_special)
    keep = baseline.keep
    seen: dict[str, torch.Tensor] = {}

    def capture(t):
        seen["in"] = t
        return None

    def splice(t):
        x = seen["in"] if cfg.is_transcoder else t
        recon = sae(x.to(device=sae.device, dtype=sae.dtype)).to(device=t.device, dtype=t.dtype)
        return torch.where(keep[..., None], recon, t)

    with torch.no_grad():
        sae_hooks = {cfg.hook: capture, cfg.hook_out: splice} if cfg.is_transcoder else {cfg.hook: splice}
        logp_sae = _log_probs(model.logits(ids, edit_hooks=sae_hooks))
        target = ids[:, 1:].unsqueeze(-1)
        mask = keep[:, :-1]
        nll_sae = -logp_sae.gather(-1, target).squeeze(-1)[mask]
        kl_sae = (baseline.p_clean * (baseline.logp_clean - logp_sae)).sum(-1)[mask]
        del logp_sae
    batch = LMBatch(
        nll_clean=baseline.nll_clean.double().cpu(), nll_sae=nll_sae.double().cpu(), nll_zero=baseline.nll_zero.double().cpu(),
        kl_sae=kl_sae.double().cpu(), kl_zero=baseline.kl_zero.double().cpu(),
    )
    return batch, baseline.rows


def corpus_windows(corpus: str, tokenizer: Any, context_size: int, n_windows: int, skip_tokens: int = 0) -> "np.ndarray":
    """The first ``n_windows`` windows of ``corpus``, packed as ``extract`` packs them (BOS
    first), after those of its first ``skip_tokens`` stored tokens (as ``extract --skip-tokens``)."""
    resolve_corpus(corpus)
    windows = list(itertools.islice(make_windows(ExtractConfig(corpus=corpus, context_size=context_size, skip_tokens=skip_tokens), tokenizer), n_windows))
    if not windows:
        raise SaetoolError(f"corpus {corpus!r} gave no {context_size}-token windows", hint="use a larger corpus or a smaller --context-size")
    return np.stack(windows)


# -- the evaluation ----------------------------------------------------------------------
def evaluate_sae(
    sae_path: str | Path,
    activations: str | Path | None = None,
    config: EvalConfig | None = None,
    *,
    sae: "SAE | None" = None,
    model: "HookedModel | None" = None,
) -> Evaluation:
    """Evaluate the SAE at ``sae_path`` (or the loaded ``sae``) on ``activations``
    and/or the model. Every input is checked before any metric is computed."""
    config = config or EvalConfig()
    config.validate()
    if sae is None:
        sae = load_sae(sae_path, config.device)
    return evaluate_saes({str(sae_path): sae}, activations, config, model=model)[str(sae_path)]


def evaluate_saes(
    saes: "Mapping[str, SAE]",
    activations: str | Path | None = None,
    config: EvalConfig | None = None,
    *,
    model: "HookedModel | None" = None,
) -> dict[str, Evaluation]:
    """Evaluate several SAEs of one hook (``{name: sae}``) on the same tokens, as
    :func:`evaluate_sae` evaluates each alone (the same numbers), but with the model run
    clean and zero-ablated once per batch for all of them (:func:`lm_baseline`): each SAE
    adds only its spliced pass."""
    config = config or EvalConfig()
    config.validate()
    metrics = sae_metrics(config.metrics)
    if not saes:
        raise SaetoolError("no SAE to evaluate")
    for sae in saes.values():
        sae.eval()
    first = next(iter(saes.values()))
    cfg = first.cfg
    if len({(s.cfg.hook, s.cfg.hook_out, tuple(crosscoder_hooks(s.cfg) or ())) for s in saes.values()}) > 1:
        raise SaetoolError("the SAEs evaluated together read or write different hooks", hint="evaluate SAEs of one hook together")
    multi = crosscoder_hooks(cfg)
    if config.skip_tokens and activations is not None:
        raise SaetoolError("--skip-tokens picks text of --corpus; an activations file already holds its own", hint="drop --skip-tokens, or the activations file")
    if multi and activations is None:
        raise SaetoolError(f"a crosscoder over {len(multi)} hooks is evaluated on stored activations", hint="pass an activations artifact with its hooks (" + ",".join(multi) + ")")
    acts = ActivationsFile(activations).require_tokens() if activations is not None else None
    try:
        if acts is not None:
            for key, sae in saes.items():
                check_activations(sae, acts)
                message = training_file_warning(key, activations)
                if message:
                    warn(message)
        wants_model = config.use_model and any(m.source == "model" for m in metrics.values())
        if multi and wants_model:
            log("a crosscoder writes several hooks and the model metrics splice one: reconstruction metrics only (over every hook's rows side by side)")
            wants_model = False
        name = _model_name(config, first, acts)
        if acts is None and model is None and name is None:
            raise SaetoolError("nothing to evaluate on: no activations and no model", hint="pass an activations artifact, or --model")
        if wants_model or acts is None:
            if model is None:
                if name is None:
                    warn("no model known for this SAE: skipping CE-loss and KL metrics (pass --model)")
                else:
                    model = registry.load_model(name, backend=config.backend, device=config.device, dtype=config.dtype)
            if model is not None:
                for sae in saes.values():
                    check_model(sae, model)
                    if sae.cfg.model:
                        check_sae_matches(sae, model=model.model_id, what=f"model {model.model_id}")
        if not wants_model or model is None:
            metrics = {k: m for k, m in metrics.items() if m.source != "model"}

        recon = {k: m for k, m in metrics.items() if m.source == "activations"}
        lm = {k: m for k, m in metrics.items() if m.source == "model"}
        runs = {key: _SAERun(sae, metrics, config) for key, sae in saes.items()}

        if acts is not None and recon:
            rule = NormFilter.from_rows(sample_rows(lambda a, b: _read_input(acts, cfg, a, b), min(config.num_tokens, acts.n_tokens), sample_budget(cfg.d_in)), config.max_norm_ratio)
            for run in runs.values():
                run.ordinary = {k: m.init(run.ctx) for k, m in recon.items()}
                massive = 0
                for batch, keep in recon_batches_from_file(run.sae, acts, config.num_tokens, rule):
                    run.n_rows += batch.x.shape[0]
                    massive += int((~keep).sum())
                    kept = ReconBatch(batch.x[keep], batch.target[keep], batch.recon[keep], batch.codes[keep])
                    for k, m in recon.items():
                        m.update(run.states[k], batch)
                        if kept.x.shape[0]:
                            m.update(run.ordinary[k], kept)
                run.norm_filter = {**rule.to_dict(), "massive_rows": massive}

        if model is not None and (lm or (acts is None and recon)):
            context = acts.context_size if acts is not None else config.context_size
            n_windows = max(1, math.ceil(config.num_tokens / context))
            if acts is not None:
                windows = acts.artifact.file["sequences/token_ids"][:n_windows]
            else:
                windows = corpus_windows(config.corpus, model.tokenizer, context, n_windows, config.skip_tokens)
                for key in runs:
                    message = overlap_warning(key, config.corpus, config.skip_tokens, config.num_tokens)
                    if message:
                        warn(message)
            bos = bos_id(model.tokenizer)
            log(f"evaluating with {model.model_id}: {len(windows)} windows of {windows.shape[1]} tokens" + (f", {len(runs)} SAEs" if len(runs) > 1 else ""))
            for start in range(0, len(windows), config.batch_size):
                ids = torch.as_tensor(np.asarray(windows[start : start + config.batch_size], dtype=np.int64))
                special = special_token_mask(ids.numpy(), model.tokenizer) if acts is None and recon else None
                baseline = lm_baseline(model, ids, bos, cfg.hook, cfg.hook_out, capture_special=special)
                for run in runs.values():
                    batch, rows = lm_batch(run.sae, model, ids, bos, baseline=baseline)
                    run.n_pos += batch.nll_clean.numel()
                    for k, m in lm.items():
                        m.update(run.states[k], batch)
                    if rows is not None:
                        for rb in recon_batches_from_rows(run.sae, *rows):
                            run.n_rows += rb.x.shape[0]
                            for k, m in recon.items():
                                m.update(run.states[k], rb)
                del baseline
        return {
            key: Evaluation(
                metrics={k: float(m.result(run.states[k])) for k, m in metrics.items()},
                sae=key,
                hook=cfg.hook,
                hook_out=str(cfg.hook_out),
                d_in=run.sae.cfg.d_in,
                d_sae=run.sae.cfg.d_sae,
                activations=str(acts.path) if acts is not None else None,
                model=model.model_id if model is not None else None,
                corpus=config.corpus if acts is None and model is not None else None,
                n_rows=run.n_rows,
                n_positions=run.n_pos,
                descriptions={k: m.description for k, m in metrics.items()},
                metrics_ordinary={k: float(recon[k].result(st)) for k, st in run.ordinary.items()},
                norm_filter=run.norm_filter,
            )
            for key, run in runs.items()
        }
    finally:
        if acts is not None:
            acts.close()


class _SAERun:
    """One SAE's running metric states in :func:`evaluate_saes`."""

    def __init__(self, sae: "SAE", metrics: dict[str, Any], config: EvalConfig) -> None:
        self.sae = sae
        self.ctx = EvalContext(d_sae=sae.cfg.d_sae, dead_threshold=config.dead_threshold, dense_threshold=config.dense_threshold)
        self.states = {k: m.init(self.ctx) for k, m in metrics.items()}
        self.ordinary: dict[str, Any] = {}
        self.n_rows = 0
        self.n_pos = 0
        self.norm_filter: dict[str, float] | None = None


def print_evaluation(ev: Evaluation, *, title: str = "SAE evaluation") -> None:
    """The metrics as a table on stderr (not under ``--quiet``)."""
    if is_quiet():
        return
    on = [f"{ev.n_rows} activation rows"] + ([f"{ev.n_positions} next-token predictions scored through {ev.model}"] if ev.n_positions else [])
    table = Table(title=f"{title} ({', '.join(on)})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    nf = ev.norm_filter
    if nf is not None:
        table.add_column(f"without {nf['massive_rows']} massive", justify="right")
    table.add_column("meaning")
    for name, value in ev.metrics.items():
        cells = [name, _fmt(value)]
        if nf is not None:
            cells.append(_fmt(ev.metrics_ordinary[name]) if name in ev.metrics_ordinary else "")
        table.add_row(*cells, ev.descriptions.get(name, ""))
    stderr().print(table)
    if nf is not None:
        stderr().print(f"massive: rows farther than {nf['distance_cutoff']:.4g} from the median row ({nf['max_norm_ratio']:g} x the median distance {nf['median_distance']:.4g}; --max-norm-ratio)")


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"
