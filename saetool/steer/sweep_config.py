"""The ``saetool sweep`` configuration file: schema, validation and defaults.

Validation happens on load, before any model is touched. The file's keys and
types are pydantic models with ``extra="forbid"`` (:class:`_SweepFile`); their
errors become saetool's one-line messages: an unknown key names the nearest
valid key (``difflib``), a value of the wrong type names the key and what was
expected. Rules that span keys follow in :func:`config_from_dict`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Sequence

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError

from saetool.errors import SaetoolError, did_you_mean
from saetool.paths import special_file_kind
from saetool.plugins import host
from saetool.steer import interventions
from saetool.steer.generation import GenerationSettings
from saetool.steer.metrics import completion_metrics
from saetool.steer.vectors import parse_positions

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


TESTS = ("fisher", "paired")  # each steered cell against alpha 0: independent samples (Fisher, Welch) or the same prompts paired (McNemar, paired t)
#: the p-values corrected together, per metric: one split's steered cells (each split asks its own question: held-out
#: harmful prompts, the vector's own training prompts, side effects on benign ones) or every steered cell of the run
FAMILIES = ("split", "run")


@dataclass
class StatisticsSpec:
    test: str = "fisher"
    correction: str = "holm"
    level: float = 0.05
    family: str = "split"

    def families(self, splits: Sequence[str]) -> list[list[str]]:
        """The splits whose steered cells are corrected together: each alone (``family: split``) or all at once (``run``)."""
        return [list(splits)] if self.family == "run" else [[s] for s in splits]


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
    refusal_metric: str = "refusal"  # the rate metric best.json judges refusal by (e.g. refusal_strict); one of metrics
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


class _Where:
    def __init__(self, path: Path | None) -> None:
        self.file = path.name if path is not None else "the sweep config"

    def err(self, message: str, hint: str | None = None) -> SaetoolError:
        return SaetoolError(f"{self.file}: {message}", hint=hint)


# -- the file's schema (pydantic) ---------------------------------------------------------------
class _Bad(ValueError):
    """A validator's complete one-line message (and hint)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _choice(key: str, choices: Sequence[str]) -> Any:
    """A validator: the value must be one of ``choices`` (the nearest suggested)."""

    def check(value: Any) -> Any:
        if value not in choices:
            raise _Bad(f"{key} {value!r} is not one of {', '.join(choices)}", did_you_mean(value, choices) or "choose one of: " + ", ".join(choices))
        return value

    return AfterValidator(check)


def _one_or_list(value: Any) -> Any:
    """A single number or string stands for a one-item list."""
    return [value] if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value


def _lazy_choice(key: str, name: str) -> Any:
    """:func:`_choice` over a tuple of :mod:`saetool.steer.interventions` (which imports torch: looked up when used)."""

    def check(value: Any) -> Any:
        return _choice(key, getattr(interventions, name)).func(value)

    return AfterValidator(check)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("empty")
    return value


Text = Annotated[StrictStr, AfterValidator(_non_empty)]
Count = Annotated[StrictInt, Field(ge=1)]
Index = Annotated[StrictInt, Field(ge=0)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
OneOrMore = BeforeValidator(_one_or_list)
Absent = BeforeValidator(lambda value: value or None)  # a section given as null, 0, "" or [] takes its defaults
_FORBID = ConfigDict(extra="forbid")


class _Vector(BaseModel):
    model_config = _FORBID
    method: Annotated[Any, _choice("vector.method", VECTOR_METHODS)] = "diff-means"
    positive: Text | None = None
    negative: Text | None = None
    positions: Any = None
    file: Text | None = None
    sae: Text | None = None
    feature: Index | None = None
    template: Text | None = None
    max_prompts: Count | None = None


class _Intervention(BaseModel):
    model_config = _FORBID
    name: Text
    sae: Text | None = None
    feature: Index | None = None
    label: Text | None = None


class _Generation(BaseModel):
    model_config = _FORBID
    max_new_tokens: Count | None = None
    batch_size: Count | None = None
    do_sample: StrictBool | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    seed: Index | None = None


class _Statistics(BaseModel):
    model_config = _FORBID
    test: Annotated[Any, _choice("statistics.test", TESTS)] = "fisher"
    correction: Annotated[Any, _choice("statistics.correction", CORRECTIONS)] = "holm"
    level: Number = 0.05
    family: Annotated[Any, _choice("statistics.family", FAMILIES)] = "split"


def _each(key: str, value: Any, kind: Any) -> Any:
    """``value`` validated as ``kind`` alone, its error named ``key``."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        raise _Bad(_message(exc.errors(include_url=False)[0], [key])) from None


def _prompts(value: Any) -> Any:
    """One prompt file, or split names to prompt files."""
    if isinstance(value, dict):
        if not value:
            raise _Bad("prompts must name at least one split")
        return {str(k): _each(f"prompts.{k}", v, Text) for k, v in value.items()}
    return _each("prompts", value, Text)


def _max_prompts(value: Any) -> Any:
    """A cap for every split, or one per split."""
    if isinstance(value, dict):
        return {str(k): _each(f"max_prompts.{k}", v, Count) for k, v in value.items()}
    return None if value is None else _each("max_prompts", value, Count)


def _interventions(value: Any) -> Any:
    value = _one_or_list(value)
    if isinstance(value, list):
        return [_Intervention.model_construct(name=v) if isinstance(v, str) else v for v in value]  # a bare name is checked against the registry later
    return value


class _SweepFile(BaseModel):
    """The keys of a sweep YAML file and their types; what needs more than one key is checked after."""

    model_config = _FORBID
    name: Text = None  # type: ignore[assignment]  # None: the file's name; an explicit null is an error
    description: Any = ""
    expected_time: Any = ""
    model: Text = "smollm2-135m"
    backend: Text = "transformers"
    device: Text = "cpu"
    dtype: Annotated[Any, _choice("dtype", ("float32", "float16", "bfloat16"))] = "float32"
    chat: StrictBool = True
    system: Any = None
    prompts: Annotated[Any, AfterValidator(_prompts)]
    splits: Annotated[list[Text], OneOrMore, Field(min_length=1)] | None = None
    max_prompts: Annotated[Any, AfterValidator(_max_prompts)] = None
    vector: Annotated[_Vector | None, Absent] = None
    layers: Annotated[list[Index], OneOrMore, Field(min_length=1)]
    site: Text = "hook_resid_post"
    alphas: Annotated[list[Number], OneOrMore, Field(min_length=1)]
    interventions: Annotated[list[_Intervention], BeforeValidator(_interventions), Field(min_length=1)] = [_Intervention(name="add")]
    scale: Annotated[Any, _lazy_choice("scale", "SCALES")] = "unit"
    positions: Annotated[Any, _lazy_choice("positions", "POSITIONS")] = "all"
    generation: Annotated[_Generation | None, Absent] = None
    metrics: Annotated[list[Text], OneOrMore, Field(min_length=1)] = ["refusal", "helpfulness", "coherence"]
    refusal_metric: Text = "refusal"
    statistics: Annotated[_Statistics | None, Absent] = None
    output_dir: Text = "artifacts/runs"
    best_from: Text | None = None


#: What each kind of pydantic error says, in the file's own terms.
_MESSAGES = {
    "int_type": "{key} must be an integer (got {input!r})",
    "int_from_float": "{key} must be an integer (got {input!r})",
    "greater_than_equal": "{key} must be at least {ge} (got {input})",
    "float_type": "{key} must be a number (got {input!r})",
    "finite_number": "{key} must be a finite number (got {input!r})",
    "bool_type": "{key} must be true or false (got {input!r})",
    "string_type": "{key} must be a non-empty string (got {input!r})",
    "value_error": "{key} must be a non-empty string (got {input!r})",
    "list_type": "{key} must be a non-empty list (got {input!r})",
    "too_short": "{key} must be a non-empty list (got {input!r})",
    "model_type": "{key} must be a mapping",
    "dict_type": "{key} must be a mapping",
}
_SECTIONS = {"vector": _Vector, "generation": _Generation, "statistics": _Statistics, "interventions": _Intervention}


def _error(exc: ValidationError, where: _Where) -> SaetoolError:
    """The first problem pydantic found, as saetool's one-line error."""
    errors = exc.errors(include_url=False)  # an unknown key first, then a missing one, then values, in file order
    err = min(errors, key=lambda e: {"extra_forbidden": 0, "missing": 1}.get(e["type"], 2))
    loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
    kind, given = err["type"], err.get("input")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _Bad):
        return where.err(cause.message, hint=cause.hint)
    section = loc[0] if len(loc) > 1 else ""
    if kind == "extra_forbidden":
        model = _SECTIONS.get(section, _SweepFile)
        place = {"": "", "interventions": " in an interventions entry"}.get(section, f" in {section}")
        keys = list(model.model_fields)
        return where.err(f"unknown key {loc[-1]!r}{place}", hint=did_you_mean(loc[-1], keys) or "valid keys: " + ", ".join(keys))
    if kind == "missing":
        if section == "interventions":
            return where.err("an interventions entry has no 'name'")
        return where.err(f"missing key {loc[-1]!r}", hint="see examples/configs/smoke.yaml")
    if kind in ("model_type", "model_attributes_type") and loc == ["vector"]:
        return where.err("vector must be a mapping (method, positive, negative, ...)")
    if kind in ("model_type", "model_attributes_type") and loc[:1] == ["interventions"]:
        return where.err(f"interventions entries must be names or mappings (got {given!r})")
    return where.err(_message(err, loc))


def _message(err: Any, loc: list[str]) -> str:
    """One pydantic error about the value at ``loc``, in the file's own terms."""
    kind = "model_type" if err["type"] == "model_attributes_type" else err["type"]
    template = _MESSAGES.get(kind)
    if template is None:  # a kind not mapped above: pydantic's own words, still one line
        return f"{'.'.join(loc)}: {err['msg']}"
    return template.format(key=".".join(loc), input=err.get("input"), **(err.get("ctx") or {}))


# -- loading ------------------------------------------------------------------------------------
#: YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e300`` and ``1e-3`` (no dot, or no exponent sign) as text.
_FLOAT = r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"


def _strict_loader() -> type:
    """A safe YAML loader that reads YAML 1.2 floats and refuses a key given twice in one mapping."""
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
    """Validate the file's settings (:class:`_SweepFile`, then the rules that span keys) into a :class:`SweepConfig`."""
    where = _Where(path)
    layers_best = data.get("layers") == "best"
    try:
        raw = _SweepFile.model_validate({**data, "layers": [0]} if layers_best else data)
    except ValidationError as exc:
        raise _error(exc, where) from None
    name = raw.name if raw.name is not None else (path.stem if path is not None else "sweep")
    if "/" in name or name in (".", ".."):
        raise where.err(f"name {name!r} must be a plain folder name")
    if layers_best and raw.best_from is None:
        raise where.err("layers: best needs best_from: RUN (the earlier sweep whose best.json names the layer)", hint="e.g. best_from: layer_comparison")
    if len(set(raw.alphas)) != len(raw.alphas):
        raise where.err("alphas has duplicates")
    interventions = [InterventionSpec(**entry.model_dump()) for entry in raw.interventions]
    keys = [spec.key for spec in interventions]
    if len(set(keys)) != len(keys):
        raise where.err("interventions has duplicates", hint="give clamp entries different features or a label")

    given = raw.vector.model_dump(exclude_unset=True) if raw.vector is not None else {}
    vec = VectorSpec(**{k: v for k, v in given.items() if v is not None})
    if "positions" in given:
        vec.positions = str(given["positions"])

        try:
            parse_positions(vec.positions)
        except SaetoolError as exc:
            raise where.err(f"vector.positions: {exc.message}", hint=exc.hint) from None
    if vec.method == "file" and not vec.file:
        raise where.err("vector.method file needs vector.file")
    if vec.method == "sae" and (not vec.sae or vec.feature is None):
        raise where.err("vector.method sae needs vector.sae and vector.feature")
    if vec.method == "words" and "positive" not in given:
        vec.positive = vec.negative = None  # the seed's default word lists
    if vec.method == "words" and "positions" not in given:
        vec.positions = "last"

    gen = GenerationSettings(**(raw.generation.model_dump(exclude_none=True) if raw.generation is not None else {}))
    try:
        gen.validate()
    except SaetoolError as exc:
        raise where.err("generation: " + exc.message) from None
    stats = StatisticsSpec(**raw.statistics.model_dump()) if raw.statistics is not None else StatisticsSpec()
    if not 0 < stats.level < 1:
        raise where.err(f"statistics.level must be between 0 and 1 (got {stats.level})")

    cfg = SweepConfig(
        name=name,
        prompts=dict(raw.prompts) if isinstance(raw.prompts, dict) else raw.prompts,
        layers=[] if layers_best else sorted(set(raw.layers)),
        alphas=[float(a) for a in raw.alphas],
        interventions=interventions,
        splits=raw.splits,
        max_prompts=raw.max_prompts,
        vector=vec,
        site=raw.site,
        scale=raw.scale,
        positions=raw.positions,
        model=raw.model,
        backend=raw.backend,
        device=raw.device,
        dtype=raw.dtype,
        chat=raw.chat,
        system=None if raw.system is None else str(raw.system),
        generation=gen,
        metrics=raw.metrics,
        refusal_metric=raw.refusal_metric,
        statistics=stats,
        output_dir=raw.output_dir,
        description=str(raw.description or ""),
        expected_time=str(raw.expected_time or ""),
        layers_best=layers_best,
        best_from=raw.best_from,
        path=path,
    )
    _check_plugins(cfg, where)
    return cfg


def _check_plugins(cfg: SweepConfig, where: _Where) -> None:
    """Interventions and metrics must be registered names (checked without importing torch)."""
    known_iv = host().collect("interventions")
    for spec in cfg.interventions:
        if spec.name not in known_iv:
            raise where.err(f"unknown intervention {spec.name!r}", hint=did_you_mean(spec.name, known_iv) or "choose one of: " + ", ".join(sorted(known_iv)))
        iv = known_iv[spec.name].obj
        if getattr(iv, "needs_sae", False) and (spec.sae is None or spec.feature is None):
            raise where.err(f"intervention {spec.name!r} needs sae and feature", hint=f"write it as {{name: {spec.name}, sae: PATH, feature: N}}")

    known_m = completion_metrics()  # SAE metrics (register_sae_metrics) belong to evaluate
    for m in cfg.metrics:
        if m not in known_m:
            raise where.err(f"unknown metric {m!r}", hint=did_you_mean(m, known_m) or "choose from: " + ", ".join(sorted(known_m)))
    decider = cfg.refusal_metric
    if decider not in known_m:
        raise where.err(f"unknown refusal_metric {decider!r}", hint=did_you_mean(decider, known_m) or "choose a refusal detector such as refusal or refusal_strict")
    if getattr(known_m[decider].obj, "kind", "rate") != "rate":
        raise where.err(f"refusal_metric {decider!r} is a mean, not a rate", hint="choose a refusal detector such as refusal or refusal_strict")
    if decider != "refusal" and decider not in cfg.metrics:
        raise where.err(f"refusal_metric {decider!r} is not one of metrics", hint=f"add it to metrics: [{', '.join([*cfg.metrics, decider])}]")
    if isinstance(cfg.prompts, dict):
        for split in cfg.splits or []:
            if split not in cfg.prompts:
                raise where.err(f"split {split!r} has no prompt file in prompts", hint="prompts has: " + ", ".join(cfg.prompts))
