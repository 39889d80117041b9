"""What a bench eval is (``register_bench_evals``), what it returns, and metric cards.

An eval (:class:`BenchEval`) measures one SAE at a time (:meth:`BenchEval.run`)
and returns an :class:`EvalResult`: named numbers, JSON details and notes (e.g.
"the model is too small for this metric"). Work shared by every SAE (the model's
activations on a probe set, a trained probe) is computed once and kept in
:attr:`BenchContext.cache`. Every number an eval reports has a
:class:`MetricCard`: which direction is better, its chance level or baseline,
and when it does not mean much.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from saetool.errors import SaetoolError
from saetool.plugins import host

if TYPE_CHECKING:
    from saetool.bench.config import BenchConfig
    from saetool.models.base import HookedModel
    from saetool.sae.model import SAE


@dataclass(frozen=True)
class MetricCard:
    """What one reported number means. ``higher_is_better`` is None where neither
    direction is better (L0, feature splitting); ``chance`` the value a
    label-blind or random method gets, when there is one; ``baseline`` says in
    words what to compare with; ``caveat`` when the number does not mean much."""

    name: str
    description: str
    higher_is_better: bool | None
    baseline: str = "the random SAE of the same shape (always evaluated alongside)"
    chance: float | None = None
    caveat: str = ""

    def direction(self) -> str:
        return {True: "higher", False: "lower", None: "neither"}[self.higher_is_better]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "better": self.direction()}


@dataclass
class SAEEntry:
    """An SAE of the run: ``name`` as shown, ``path`` (None for a random floor),
    ``random_of`` the name of the SAE a random floor copies the shape of."""

    name: str
    sae: "SAE"
    path: str | None = None
    random_of: str | None = None

    @property
    def is_random(self) -> bool:
        return self.random_of is not None

    def describe(self) -> dict[str, Any]:
        cfg = self.sae.cfg
        return {"name": self.name, "path": self.path, "random_of": self.random_of, "d_in": cfg.d_in, "d_sae": cfg.d_sae,
                "hook": cfg.hook, "activation": cfg.activation, "k": cfg.k}


@dataclass
class EvalResult:
    """``metrics`` (name -> number or None), ``details`` (JSON), ``notes`` (sentences for people)."""

    metrics: dict[str, float | None]
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalResult":
        return cls(**{k: data[k] for k in ("metrics", "details", "notes", "seconds") if k in data})


@dataclass
class BenchContext:
    """What evals share: the settings, every SAE of the run, the activations file
    (``acts``), the model (loaded on first use), and a cache for work done once."""

    config: "BenchConfig"
    entries: list[SAEEntry]
    acts: Path | None = None
    model_name: str | None = None
    progress: bool = True
    workdir: Path | None = None  # a temporary folder, removed at the end of the run
    cache: dict[str, Any] = field(default_factory=dict)
    #: the entries the running eval has still to measure (set by the runner before each eval)
    todo: list[SAEEntry] = field(default_factory=list)
    _model: "HookedModel | None" = None
    load: "Callable[[], HookedModel] | None" = None

    @property
    def model(self) -> "HookedModel":
        """The language model (loaded once, when an eval first asks)."""
        if self._model is None:
            if self.load is None:
                raise SaetoolError("this eval needs the model, and none is known", hint="pass --model, or activations made by saetool extract")
            self._model = self.load()
        return self._model

    def options(self, ev: "BenchEval") -> Any:
        """``ev``'s options dataclass filled from ``--option`` (checked once, by :func:`eval_options`)."""
        return eval_options(ev, self.config.options.get(ev.name, {}))

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` the first time ``key`` is asked for, the cached value after."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


@dataclass
class NoOptions:
    pass


class BenchEval:
    """Base class for bench evals (``register_bench_evals`` hook).

    ``needs`` names what :meth:`run` uses: ``"activations"`` (the activations
    file) and/or ``"model"``. ``options`` is a dataclass whose fields
    ``--option NAME.FIELD=VALUE`` sets. ``cards`` describe every metric.
    """

    name: str = ""
    description: str = ""
    needs: tuple[str, ...] = ()
    options: type = NoOptions
    cards: tuple[MetricCard, ...] = ()
    #: the metric the summary plots and the trained-vs-random comparison use first
    headline: str = ""

    def run(self, entry: SAEEntry, ctx: BenchContext) -> EvalResult:
        raise NotImplementedError

    def card(self, metric: str) -> MetricCard | None:
        return next((c for c in self.cards if c.name == metric), None)


def eval_options(ev: BenchEval, given: dict[str, str]) -> Any:
    """``ev.options`` built from ``given`` text values, converted to each field's
    type (int, float, bool, str, comma lists of int); one-line error on a bad one."""
    fields = {f.name: f for f in dataclasses.fields(ev.options)}
    values: dict[str, Any] = {}
    for key, text in given.items():
        if key not in fields:
            raise SaetoolError(f"eval {ev.name!r} has no option {key!r}", hint="its options: " + (", ".join(fields) or "none"))
        default = getattr(ev.options(), key)
        try:
            if isinstance(default, bool):
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                values[key] = text.lower() in ("1", "true", "yes")
            elif isinstance(default, (tuple, list)):
                values[key] = tuple(int(x) for x in text.split(",") if x.strip())
            elif default is None or isinstance(default, str):
                values[key] = text
            else:
                values[key] = type(default)(text)
        except ValueError:
            raise SaetoolError(f"--option {ev.name}.{key} must be a {type(default).__name__} (got {text!r})") from None
    opts = ev.options(**values)
    check = getattr(opts, "validate", None)
    if check is not None:
        check()
    return opts


def bench_evals(names: list[str] | None = None) -> dict[str, BenchEval]:
    """The registered evals (all, or ``names`` in order; one-line error on an unknown one)."""
    known = {name: reg.obj for name, reg in host().collect("bench_evals").items()}
    if names is None:
        return known
    out = {}
    for name in names:
        if name not in known:
            raise SaetoolError(f"unknown eval {name!r}", hint="choose from: " + ", ".join(known))
        out[name] = known[name]
    return out
