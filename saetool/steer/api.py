"""The Python API behind ``saetool steer`` and ``saetool vector``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from saetool.artifacts.manifest import resolve_input
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import check_output_path
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.models import registry  # the module, so tests can stub registry.load_model
from saetool.models.hooks import hook_name, parse_hooks
from saetool.progress import token_progress
from saetool.sae.io import load_sae
from saetool.sae.registry import split_name
from saetool.steer.completions import read_completions, write_completions
from saetool.steer.generation import GenerationSettings, Steering, generate_completions
from saetool.steer.interventions import POSITIONS, SCALES, get_intervention, scaled_vector
from saetool.steer.metrics import CompletionItem, MetricContext, get_metric, score_all
from saetool.steer.prompts import format_prompts, read_prompts
from saetool.steer.vectors import FROM_SAE, artifact_kind_of, check_model_match, import_vector, measure_norm, read_vector, vector_from_sae

if TYPE_CHECKING:
    from saetool.models.base import HookedModel
    from saetool.sae.model import SAE
    from saetool.steer.completions import Completions
    from saetool.steer.vectors import SteeringVector

DEFAULT_METRICS = ("refusal", "helpfulness", "coherence", "sentiment")


@dataclass
class SteerSource:
    """What steers: a vector, or an SAE (+ feature), and where it came from."""

    vector: "SteeringVector | None" = None
    sae: "SAE | None" = None
    sae_path: str | None = None
    feature: int | None = None
    parent: Path | None = None  # the artifact it was read from (for provenance)


def resolve_source(
    vector: str | Path | None = None,
    sae: str | Path | None = None,
    feature: int | None = None,
    *,
    layer: int | None = None,
    site: str = "hook_resid_post",
    device: str = "cpu",
    stdin: Any = None,
) -> SteerSource:
    """A vector artifact, a raw vector file (.npy/.pt/.safetensors/.txt, needs ``layer``),
    an SAE (artifact or folder, with ``feature``), or the last manifest on stdin."""
    if sae is not None:
        return _sae_source(Path(sae), feature, device)
    path = resolve_input(vector, what="steering vector or SAE", stream=stdin)
    if not path.exists():
        if split_name(str(path)) is not None:  # a pretrained SAE name, RELEASE/SAE_ID
            return _sae_source(path, feature, device)
        raise SaetoolError(f"{path} does not exist", hint="pass a vector artifact (saetool vector ...), an SAE, or a .npy/.pt file")
    if path.is_dir():
        return _sae_source(path, feature, device)
    kind = artifact_kind_of(path)
    if kind == "vector":
        return SteerSource(vector=read_vector(path), parent=path)
    if kind == "sae":
        return _sae_source(path, feature, device)
    if kind is not None:
        raise SaetoolError(f"{path} is a {kind!r} artifact, not a steering vector or an SAE", hint="make one with `saetool vector ...`")
    if layer is None:
        raise SaetoolError(f"{path} is a raw vector file, so --layer is needed to know where to steer")
    return SteerSource(vector=import_vector(path, hook_name(layer, site)))


def _sae_source(path: Path, feature: int | None, device: str) -> SteerSource:
    sae = load_sae(path, device)
    return SteerSource(sae=sae, sae_path=str(path), feature=feature, parent=path if path.is_file() else None)


@dataclass
class SteerConfig:
    """What ``saetool steer`` does. ``layer`` (with ``site``) overrides the hook
    the vector was made at; ``alpha`` None means the intervention's default."""

    prompts: str = ""
    split: str | None = None
    max_prompts: int | None = None
    layer: int | None = None
    site: str = "hook_resid_post"
    intervention: str = "add"
    alpha: float | None = None
    scale: str = "unit"
    positions: str = "all"
    feature: int | None = None
    model: str = "smollm2-135m"
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str = "float32"
    chat: bool = True
    system: str | None = None
    baseline: bool = True
    #: prompt-suffix steering (seed 000's "(thinking positively)"): each suffix is appended to every
    #: prompt and the model continues it unsteered, as one more condition (see :func:`suffix_conditions`)
    prompt_suffixes: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    def validate(self) -> None:
        self.generation.validate()
        if self.scale not in SCALES:
            raise SaetoolError(f"unknown --scale {self.scale!r}", hint="choose one of: " + ", ".join(SCALES))
        if self.positions not in POSITIONS:
            raise SaetoolError(f"unknown --positions {self.positions!r}", hint="choose all or generated")
        if self.alpha is not None and not math.isfinite(self.alpha):
            raise SaetoolError(f"--alpha must be a finite number (got {self.alpha})")
        if self.layer is not None and self.layer < 0:
            raise SaetoolError(f"layer {self.layer} is out of range", hint="layers count from 0")
        for suffix in self.prompt_suffixes:
            if not suffix.strip():
                raise SaetoolError("--prompt-suffix is empty", hint='give the text to append, e.g. --prompt-suffix " (thinking positively)"')


def suffix_conditions(suffixes: Sequence[str]) -> dict[str, str]:
    """Condition name -> suffix: ``prompted`` for one suffix, ``prompted-1``, ``prompted-2``, ... for several."""
    if len(suffixes) == 1:
        return {"prompted": suffixes[0]}
    return {f"prompted-{i}": s for i, s in enumerate(suffixes, 1)}


@dataclass
class SteerResult:
    path: Path
    completions: "Completions"
    hook: str
    alpha: float
    seconds: float


def make_steering(
    model: "HookedModel",
    iv: Any,
    hook: str,
    alpha: float,
    *,
    vector: "SteeringVector | None" = None,
    sae: "SAE | None" = None,
    feature: int | None = None,
    scale: str = "unit",
    positions: str = "all",
    measure_norm: Callable[[str], float] | None = None,
) -> tuple[Steering, float | None]:
    """The :class:`Steering` of intervention ``iv`` at ``hook`` (a checked hook name),
    shared by ``steer`` and ``sweep``: the intervention checks the model's width there,
    the vector (when ``iv`` needs one) is scaled per ``scale`` and moved to the
    model's device and dtype, the SAE (when ``iv`` needs one) to its device.
    ``relative`` scaling uses the norm the vector recorded at this hook, else
    ``measure_norm(hook)``. Returns the steering and that reference norm."""
    vec = vector.vector if (iv.needs_vector and vector is not None) else None
    sae = sae if iv.needs_sae else None
    iv.check(d=model.hook_dim(hook), vector=vec, sae=sae, feature=feature, hook=hook)
    scaled, norm_ref = None, None
    if vec is not None:
        assert vector is not None
        norm_ref = vector.resid_norm_mean if vector.hook == hook else None
        if scale == "relative" and not norm_ref:
            if measure_norm is None:
                raise SaetoolError("--scale relative needs the mean activation norm at the hook", hint="use --scale unit or raw")
            norm_ref = measure_norm(hook)
        scaled = scaled_vector(vec.to(model.device), scale, norm_ref)
        scaled = scaled.to(getattr(model, "dtype", None) or scaled.dtype)
    if sae is not None and str(sae.device) != str(model.device):
        sae = sae.to(model.device)
    return Steering(iv, hook, float(alpha), vector=scaled, sae=sae, feature=feature, positions=positions), norm_ref


def build_steering(
    model: "HookedModel",
    source: SteerSource,
    *,
    intervention: str,
    alpha: float | None,
    layer: int | None,
    site: str,
    scale: str,
    positions: str,
    norm_texts: Sequence[str] = (),
    chat: bool = True,
    batch_size: int = 16,
) -> tuple[Steering, dict[str, Any]]:
    """Resolve the intervention, hook, alpha and scaled vector against a loaded model."""
    iv = get_intervention(intervention)
    info: dict[str, Any] = {"intervention": iv.name, "scale": scale, "positions": positions}
    sv = source.vector
    if iv.needs_vector and sv is None:
        if source.sae is None:
            raise SaetoolError(f"intervention {iv.name!r} needs a steering vector")
        if source.feature is None:
            raise SaetoolError("steering with an SAE needs --feature N (which feature's decoder direction to use)")
        sv = vector_from_sae(source.sae, source.feature, source=source.sae_path)
    if iv.needs_sae and source.sae is None:
        raise SaetoolError(f"intervention {iv.name!r} needs an SAE", hint="pass --sae FILE --feature N (or pipe an sae artifact)")
    if iv.needs_sae and source.feature is None:
        raise SaetoolError(f"intervention {iv.name!r} needs --feature N")

    if layer is not None:
        hook = hook_name(layer, site)
    elif iv.needs_sae and source.sae is not None:
        hook = str(source.sae.cfg.hook)
    elif sv is not None and sv.hook:
        hook = sv.hook
    else:
        raise SaetoolError("the vector records no hook", hint="pass --layer")
    (point,) = parse_hooks([hook], model.n_layers, model.supported_sites)  # layer out of range -> one line
    hook = point.name
    if sv is not None and iv.needs_vector:
        check_model_match(sv, model.model_id)
        if sv.hook and sv.hook != hook:
            warn(f"the vector was made at {sv.hook}; steering at {hook}")
        info["vector"] = sv.describe()
    if alpha is None:
        if iv.default_alpha is None:
            raise SaetoolError(f"intervention {iv.name!r} needs --alpha (for clamp: the value to clamp the feature to)")
        alpha = iv.default_alpha

    def measure(at: str) -> float:
        if not norm_texts:
            raise SaetoolError("--scale relative needs the mean activation norm at the hook", hint="use --scale unit or raw")
        norm = measure_norm(model, norm_texts, at, chat=chat, batch_size=batch_size)
        log(f"[dim]mean activation norm at {at} over the prompts: {norm:.1f}[/dim]")
        return norm

    steering, norm_ref = make_steering(model, iv, hook, alpha, vector=sv, sae=source.sae, feature=source.feature, scale=scale, positions=positions, measure_norm=measure)
    if steering.vector is not None:
        info["norm_ref"] = norm_ref
        info["added_norm"] = float(abs(alpha) * steering.vector.float().norm()) if iv.name == "add" else None
    info.update(hook=hook, layer=point.layer, alpha=float(alpha), feature=source.feature, sae=source.sae_path)
    if source.feature is None and sv is not None and iv.needs_vector and sv.method == FROM_SAE and sv.details.get("feature") is not None:
        # a `vector from-sae` file: record its SAE and feature, so audit joins selected features to steered ones
        info.update(feature=int(sv.details["feature"]), sae=sv.details.get("sae"), feature_layer=sv.layer)
    return steering, info


def run_steer(
    config: SteerConfig,
    source: SteerSource,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    model: "HookedModel | None" = None,
    progress: bool = True,
) -> SteerResult:
    """Generate baseline and steered completions and write a ``completions`` artifact."""
    config.validate()
    for name in config.metrics:
        get_metric(name)  # unknown metric -> one line, before any work
    prompts = read_prompts(config.prompts, split=config.split, max_prompts=config.max_prompts)
    out = check_output_path(output or default_output(source), overwrite=overwrite, inputs=[config.prompts, source.sae_path, source.parent])
    if model is None:
        model = registry.load_model(config.model, backend=config.backend, device=config.device, dtype=config.dtype)
    texts = format_prompts(model.tokenizer, [p.text for p in prompts], chat=config.chat, system=config.system)
    steering, info = build_steering(
        model,
        source,
        intervention=config.intervention,
        alpha=config.alpha,
        layer=config.layer,
        site=config.site,
        scale=config.scale,
        positions=config.positions,
        norm_texts=texts,
        chat=config.chat,
        batch_size=config.generation.batch_size,
    )
    start = time.perf_counter()
    conditions: dict[str, list[str]] = {}
    suffixes = suffix_conditions(config.prompt_suffixes)
    formatted = {"baseline": texts, "steered": texts}
    for cond, suffix in suffixes.items():
        formatted[cond] = format_prompts(model.tokenizer, [p.text + suffix for p in prompts], chat=config.chat, system=config.system)
    n_runs = (2 if config.baseline else 1) + len(suffixes)
    with token_progress("steer", total=n_runs * len(texts), enabled=progress, unit="completions") as advance:
        if config.baseline:
            conditions["baseline"] = generate_completions(model, texts, chat=config.chat, settings=config.generation, advance=advance)
        conditions["steered"] = generate_completions(model, texts, chat=config.chat, settings=config.generation, steering=steering, advance=advance)
        for cond in suffixes:
            conditions[cond] = generate_completions(model, formatted[cond], chat=config.chat, settings=config.generation, advance=advance)
    ctx = MetricContext(model=model, batch_size=config.generation.batch_size, chat=config.chat)
    metrics = {}
    for cond, comps in conditions.items():
        items = [CompletionItem(p.text, c, p.split, t) for p, c, t in zip(prompts, comps, formatted[cond])]
        metrics[cond] = score_all(config.metrics, items, ctx)
    seconds = time.perf_counter() - start
    settings = {
        **info,
        "prompts_file": str(Path(config.prompts).resolve()),
        "split": config.split,
        "chat": config.chat,
        "system": config.system,
        "generation": config.generation.to_dict(),
        "model": model.model_id,
        "seconds": round(seconds, 2),
    }
    if suffixes:
        settings["prompt_suffixes"] = suffixes
    parents = [source.parent] if source.parent is not None else []
    provenance = build_provenance(model=model.model_id, backend=model.backend_name, hooks=[steering.hook], parents=parents, steer=settings)
    write_completions(
        out,
        prompts=[p.text for p in prompts],
        splits=[p.split for p in prompts],
        texts=conditions,
        metrics=metrics,
        settings=settings,
        provenance=provenance,
        overwrite=overwrite,
    )
    return SteerResult(out, read_completions(out), steering.hook, steering.alpha, seconds)


def default_output(source: SteerSource) -> Path:
    if source.vector is not None and source.vector.path is not None:
        stem = source.vector.path.stem
    elif source.sae_path is not None:
        stem = f"{Path(source.sae_path).stem}-f{source.feature}"
    elif source.vector is not None:
        stem = source.vector.method
    else:
        stem = "steer"
    return Path(f"completions-{stem}.h5")
