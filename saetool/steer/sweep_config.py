"""The ``saetool sweep`` configuration file: schema, validation and defaults.

Validation happens on load, before any model is touched: an unknown key is an
error that names the nearest valid key (``difflib``), a value of the wrong type
names the key and what was expected.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from saetool.errors import SaetoolError
from saetool.paths import special_file_kind
from saetool.steer.generation import GenerationSettings

TOP_KEYS = (
    "name", "description", "expected_time", "model", "backend", "device", "dtype", "chat", "system",
    "prompts", "splits", "max_prompts", "vector", "layers", "site", "alphas", "interventions", "scale",
    "positions", "generation", "metrics", "statistics", "output_dir", "best_from",
)
VECTOR_KEYS = ("method", "positive", "negative", "positions", "file", "sae", "feature", "template", "max_prompts")
GENERATION_KEYS = ("max_new_tokens", "batch_size", "do_sample", "temperature", "top_p", "seed")
STATISTICS_KEYS = ("test", "correction", "level")
INTERVENTION_KEYS = ("name", "sae", "feature", "label")
VECTOR_METHODS = ("diff-means", "words", "file", "sae")
CORRECTIONS = ("holm", "bh", "none")
DEFAULT_SPLITS = ("harm_train", "harm_test", "benign")


@dataclass
class VectorSpec:
    """How the sweep gets its steering vector at each layer.

    ``diff-means``: mean activation of ``positive`` minus ``negative`` prompts
    (each a split name from ``prompts`` or a prompt file) at ``positions``;
    ``words``: the same with word lists put into ``template``; ``file``: one
    vector artifact (or .npy/.pt) for every layer; ``sae``: an SAE feature's
    decoder direction.
    """

    method: str = "diff-means"
    positive: str | None = "harm_train"
    negative: str | None = "benign_train"
    positions: str = "last"
    file: str | None = None
    sae: str | None = None
    feature: int | None = None
    template: str = "Today I feel {word}"
    max_prompts: int | None = None


@dataclass
class InterventionSpec:
    name: str
    sae: str | None = None
    feature: int | None = None
    label: str | None = None

    @property
    def key(self) -> str:
        if self.label:
            return self.label
        return self.name if self.feature is None else f"{self.name}-f{self.feature}"


@dataclass
class StatisticsSpec:
    test: str = "fisher"
    correction: str = "holm"
    level: float = 0.05


@dataclass
class SweepConfig:
    name: str
    prompts: dict[str, str] | str
    layers: list[int]
    alphas: list[float]
    interventions: list[InterventionSpec] = field(default_factory=lambda: [InterventionSpec("add")])
    splits: list[str] | None = None
    max_prompts: int | dict[str, int] | None = None
    vector: VectorSpec = field(default_factory=VectorSpec)
    site: str = "hook_resid_post"
    scale: str = "unit"
    positions: str = "all"
    model: str = "smollm2-135m"
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str = "float32"
    chat: bool = True
    system: str | None = None
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    metrics: list[str] = field(default_factory=lambda: ["refusal", "helpfulness", "coherence"])
    statistics: StatisticsSpec = field(default_factory=StatisticsSpec)
    output_dir: str = "artifacts/runs"
    description: str = ""
    expected_time: str = ""
    layers_best: bool = False  # ``layers: best``: the layer of best_from's best.json (resolved when the sweep runs)
    best_from: str | None = None
    path: Path | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path(".")

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def cap_for(self, split: str) -> int | None:
        if isinstance(self.max_prompts, dict):
            return self.max_prompts.get(split)
        return self.max_prompts

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path", None)
        return d


# -- validation helpers ---------------------------------------------------------------------
class _Where:
    def __init__(self, path: Path | None) -> None:
        self.file = path.name if path is not None else "the sweep config"

    def err(self, message: str, hint: str | None = None) -> SaetoolError:
        return SaetoolError(f"{self.file}: {message}", hint=hint)


def _check_keys(data: dict, allowed: tuple[str, ...], section: str, where: _Where) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            place = f" in {section}" if section else ""
            hint = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(allowed)
            raise where.err(f"unknown key {key!r}{place}", hint=hint)


def _int(v: Any, key: str, where: _Where, *, minimum: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise where.err(f"{key} must be an integer (got {v!r})")
    if minimum is not None and v < minimum:
        raise where.err(f"{key} must be at least {minimum} (got {v})")
    return v


def _float(v: Any, key: str, where: _Where) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise where.err(f"{key} must be a number (got {v!r})")
    if not math.isfinite(float(v)):
        raise where.err(f"{key} must be a finite number (got {v!r})")
    return float(v)


def _bool(v: Any, key: str, where: _Where) -> bool:
    if not isinstance(v, bool):
        raise where.err(f"{key} must be true or false (got {v!r})")
    return v


def _str(v: Any, key: str, where: _Where) -> str:
    if not isinstance(v, str) or not v.strip():
        raise where.err(f"{key} must be a non-empty string (got {v!r})")
    return v


def _list(v: Any, key: str, where: _Where) -> list:
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not v:
        raise where.err(f"{key} must be a non-empty list (got {v!r})")
    return v


def _choice(v: Any, key: str, choices: tuple[str, ...], where: _Where) -> str:
    if v not in choices:
        close = difflib.get_close_matches(str(v), choices, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else "choose one of: " + ", ".join(choices)
        raise where.err(f"{key} {v!r} is not one of {', '.join(choices)}", hint=hint)
    return v


# -- loading ------------------------------------------------------------------------------------
#: YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e300`` and ``1e-3`` (no dot, or no exponent sign) as text.
_FLOAT = r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"


def _strict_loader() -> type:
    """A safe YAML loader that reads YAML 1.2 floats and refuses a key given twice in one mapping."""
    import re

    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: SafeLoader says so
                    break
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice (first on line {first.line + 1}); keep one", key_node.start_mark
                    )
            return super().construct_mapping(node, deep=deep)

    resolvers = StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for first in "-+.0123456789":
        resolvers[first] = [r for r in resolvers.get(first, []) if r[0] != "tag:yaml.org,2002:float"]
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_FLOAT), list("-+.0123456789"))
    return StrictLoader


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file (one-line errors for every problem)."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise SaetoolError(f"sweep config {p} does not exist", hint="see examples/configs/ for examples")
    if p.is_dir():
        raise SaetoolError(f"sweep config {p} is a directory", hint="pass a .yaml file")
    special = special_file_kind(p)
    if special is not None:
        raise SaetoolError(f"sweep config {p} is a {special}, not a regular file", hint="pass a .yaml file")
    try:
        loader = _strict_loader()(p.read_text(encoding="utf-8"))  # a SafeLoader subclass
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SaetoolError(f"{p.name} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise SaetoolError(f"{p.name} is not UTF-8 text") from None
    if data is None:
        raise SaetoolError(f"{p.name} is empty", hint="see examples/configs/smoke.yaml")
    if not isinstance(data, dict):
        raise SaetoolError(f"{p.name} must be a YAML mapping of settings (got {type(data).__name__})")
    return config_from_dict(data, path=p)


def config_from_dict(data: dict[str, Any], *, path: Path | None = None) -> SweepConfig:
    where = _Where(path)
    _check_keys(data, TOP_KEYS, "", where)
    for required in ("prompts", "layers", "alphas"):
        if required not in data:
            raise where.err(f"missing key {required!r}", hint="see examples/configs/smoke.yaml")
    name = _str(data.get("name", path.stem if path is not None else "sweep"), "name", where)
    if "/" in name or name in (".", ".."):
        raise where.err(f"name {name!r} must be a plain folder name")

    prompts = data["prompts"]
    if isinstance(prompts, dict):
        if not prompts:
            raise where.err("prompts must name at least one split")
        prompts = {str(k): _str(v, f"prompts.{k}", where) for k, v in prompts.items()}
    else:
        prompts = _str(prompts, "prompts", where)

    layers_best = data["layers"] == "best"
    layers = [] if layers_best else [_int(x, "layers", where, minimum=0) for x in _list(data["layers"], "layers", where)]
    best_from = _str(data["best_from"], "best_from", where) if data.get("best_from") is not None else None
    if layers_best and best_from is None:
        raise where.err("layers: best needs best_from: RUN (the earlier sweep whose best.json names the layer)", hint="e.g. best_from: layer_comparison")
    alphas = [_float(x, "alphas", where) for x in _list(data["alphas"], "alphas", where)]
    if len(set(alphas)) != len(alphas):
        raise where.err("alphas has duplicates")

    interventions = []
    for entry in _list(data.get("interventions", ["add"]), "interventions", where):
        if isinstance(entry, str):
            interventions.append(InterventionSpec(entry))
        elif isinstance(entry, dict):
            _check_keys(entry, INTERVENTION_KEYS, "an interventions entry", where)
            if "name" not in entry:
                raise where.err("an interventions entry has no 'name'")
            interventions.append(
                InterventionSpec(
                    _str(entry["name"], "interventions.name", where),
                    sae=_str(entry["sae"], "interventions.sae", where) if entry.get("sae") is not None else None,
                    feature=_int(entry["feature"], "interventions.feature", where, minimum=0) if entry.get("feature") is not None else None,
                    label=_str(entry["label"], "interventions.label", where) if entry.get("label") is not None else None,
                )
            )
        else:
            raise where.err(f"interventions entries must be names or mappings (got {entry!r})")
    keys = [s.key for s in interventions]
    if len(set(keys)) != len(keys):
        raise where.err("interventions has duplicates", hint="give clamp entries different features or a label")

    splits = None
    if data.get("splits") is not None:
        splits = [_str(s, "splits", where) for s in _list(data["splits"], "splits", where)]

    max_prompts = data.get("max_prompts")
    if isinstance(max_prompts, dict):
        max_prompts = {str(k): _int(v, f"max_prompts.{k}", where, minimum=1) for k, v in max_prompts.items()}
    elif max_prompts is not None:
        max_prompts = _int(max_prompts, "max_prompts", where, minimum=1)

    vec_data = data.get("vector") or {}
    if not isinstance(vec_data, dict):
        raise where.err("vector must be a mapping (method, positive, negative, ...)")
    _check_keys(vec_data, VECTOR_KEYS, "vector", where)
    vec = VectorSpec()
    if "method" in vec_data:
        vec.method = _choice(vec_data["method"], "vector.method", VECTOR_METHODS, where)
    for key in ("positive", "negative", "file", "sae", "template"):
        if vec_data.get(key) is not None:
            setattr(vec, key, _str(vec_data[key], f"vector.{key}", where))
    if "positions" in vec_data:
        vec.positions = str(vec_data["positions"])
        from saetool.steer.vectors import parse_positions

        try:
            parse_positions(vec.positions)
        except SaetoolError as exc:
            raise where.err(f"vector.positions: {exc.message}", hint=exc.hint) from None
    if vec_data.get("feature") is not None:
        vec.feature = _int(vec_data["feature"], "vector.feature", where, minimum=0)
    if vec_data.get("max_prompts") is not None:
        vec.max_prompts = _int(vec_data["max_prompts"], "vector.max_prompts", where, minimum=1)
    if vec.method == "file" and not vec.file:
        raise where.err("vector.method file needs vector.file")
    if vec.method == "sae" and (not vec.sae or vec.feature is None):
        raise where.err("vector.method sae needs vector.sae and vector.feature")
    if vec.method == "words" and "positive" not in vec_data:
        vec.positive = vec.negative = None  # the seed's default word lists
    if vec.method == "words" and "positions" not in vec_data:
        vec.positions = "last"

    gen_data = data.get("generation") or {}
    if not isinstance(gen_data, dict):
        raise where.err("generation must be a mapping")
    _check_keys(gen_data, GENERATION_KEYS, "generation", where)
    gen = GenerationSettings()
    for key in ("max_new_tokens", "batch_size", "seed"):
        if key in gen_data:
            setattr(gen, key, _int(gen_data[key], f"generation.{key}", where, minimum=0 if key == "seed" else 1))
    if "do_sample" in gen_data:
        gen.do_sample = _bool(gen_data["do_sample"], "generation.do_sample", where)
    for key in ("temperature", "top_p"):
        if key in gen_data:
            setattr(gen, key, _float(gen_data[key], f"generation.{key}", where))
    try:
        gen.validate()
    except SaetoolError as exc:
        raise where.err("generation: " + exc.message) from None

    st_data = data.get("statistics") or {}
    if not isinstance(st_data, dict):
        raise where.err("statistics must be a mapping")
    _check_keys(st_data, STATISTICS_KEYS, "statistics", where)
    stats = StatisticsSpec()
    if "test" in st_data:
        stats.test = _choice(st_data["test"], "statistics.test", ("fisher",), where)
    if "correction" in st_data:
        stats.correction = _choice(st_data["correction"], "statistics.correction", CORRECTIONS, where)
    if "level" in st_data:
        stats.level = _float(st_data["level"], "statistics.level", where)
        if not 0 < stats.level < 1:
            raise where.err(f"statistics.level must be between 0 and 1 (got {stats.level})")

    from saetool.steer.interventions import POSITIONS, SCALES

    cfg = SweepConfig(
        name=name,
        prompts=prompts,
        layers=sorted(set(layers)),
        alphas=alphas,
        interventions=interventions,
        splits=splits,
        max_prompts=max_prompts,
        vector=vec,
        site=_str(data.get("site", "hook_resid_post"), "site", where),
        scale=_choice(data.get("scale", "unit"), "scale", SCALES, where),
        positions=_choice(data.get("positions", "all"), "positions", POSITIONS, where),
        model=_str(data.get("model", "smollm2-135m"), "model", where),
        backend=_str(data.get("backend", "transformers"), "backend", where),
        device=_str(data.get("device", "cpu"), "device", where),
        dtype=_choice(data.get("dtype", "float32"), "dtype", ("float32", "float16", "bfloat16"), where),
        chat=_bool(data.get("chat", True), "chat", where),
        system=data.get("system") if data.get("system") is None else str(data.get("system")),
        generation=gen,
        metrics=[_str(m, "metrics", where) for m in _list(data.get("metrics", ["refusal", "helpfulness", "coherence"]), "metrics", where)],
        statistics=stats,
        output_dir=_str(data.get("output_dir", "artifacts/runs"), "output_dir", where),
        description=str(data.get("description", "") or ""),
        expected_time=str(data.get("expected_time", "") or ""),
        layers_best=layers_best,
        best_from=best_from,
        path=path,
    )
    _check_plugins(cfg, where)
    return cfg


def _check_plugins(cfg: SweepConfig, where: _Where) -> None:
    """Interventions and metrics must be registered names (checked without importing torch)."""
    from saetool.plugins import host

    known_iv = host().collect("interventions")
    for spec in cfg.interventions:
        if spec.name not in known_iv:
            close = difflib.get_close_matches(spec.name, list(known_iv), n=1, cutoff=0.5)
            raise where.err(f"unknown intervention {spec.name!r}", hint=f"did you mean {close[0]!r}?" if close else "choose one of: " + ", ".join(sorted(known_iv)))
        iv = known_iv[spec.name].obj
        if getattr(iv, "needs_sae", False) and (spec.sae is None or spec.feature is None):
            raise where.err(f"intervention {spec.name!r} needs sae and feature", hint=f"write it as {{name: {spec.name}, sae: PATH, feature: N}}")
    from saetool.steer.metrics import completion_metrics

    known_m = completion_metrics()  # SAE metrics (register_sae_metrics) belong to evaluate
    for m in cfg.metrics:
        if m not in known_m:
            close = difflib.get_close_matches(m, list(known_m), n=1, cutoff=0.5)
            raise where.err(f"unknown metric {m!r}", hint=f"did you mean {close[0]!r}?" if close else "choose from: " + ", ".join(sorted(known_m)))
    if isinstance(cfg.prompts, dict):
        for split in cfg.splits or []:
            if split not in cfg.prompts:
                raise where.err(f"split {split!r} has no prompt file in prompts", hint="prompts has: " + ", ".join(cfg.prompts))
