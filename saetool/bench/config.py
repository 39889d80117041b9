"""The settings of a ``saetool bench`` run (no heavy imports: the command reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saetool.errors import SaetoolError

KIND = "bench"


@dataclass
class BenchConfig:
    """What to run and on what. ``options`` holds ``{eval: {key: text}}`` from
    ``--option EVAL.KEY=VALUE`` (each eval checks its own); ``random_floor`` adds a
    random SAE of every shape given (the floor every number is compared with)."""

    evals: list[str] | None = None  # None: every registered eval
    model: str | None = None
    corpus: str = "bbc-news"
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str = "float32"
    num_tokens: int = 4096
    context_size: int = 128
    batch_size: int = 8
    seed: int = 0
    random_floor: bool = True
    options: dict[str, dict[str, str]] = field(default_factory=dict)

    def validate(self) -> None:
        if self.evals is not None and not self.evals:
            raise SaetoolError("--evals is empty", hint="e.g. --evals core,probing")
        if self.evals is not None and len(set(self.evals)) != len(self.evals):
            raise SaetoolError("--evals lists an eval twice")
        for name, value, low in (("--num-tokens", self.num_tokens, 1), ("--context-size", self.context_size, 2), ("--batch-size", self.batch_size, 1)):
            if value < low:
                raise SaetoolError(f"{name} must be at least {low} (got {value})")
        unknown = sorted(set(self.options) - set(self.evals or ()))
        if self.evals is not None and unknown:
            raise SaetoolError(f"--option names eval {unknown[0]!r}, which this run does not include", hint="evals here: " + ", ".join(self.evals))

    def settings(self) -> dict[str, Any]:
        """What a resumed run must share with the first one."""
        return {k: getattr(self, k) for k in ("evals", "model", "corpus", "num_tokens", "context_size", "seed", "random_floor", "options", "dtype")}


def parse_evals(spec: str | None) -> list[str] | None:
    """``"core,probing"`` -> ``["core", "probing"]`` (``None``: every registered eval)."""
    if spec is None:
        return None
    return [s.strip() for s in spec.split(",") if s.strip()]


def parse_options(items: list[str]) -> dict[str, dict[str, str]]:
    """``["probing.per_class=40"]`` -> ``{"probing": {"per_class": "40"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        ev, dot, name = key.strip().partition(".")
        if not sep or not dot or not ev or not name:
            raise SaetoolError(f"--option must look like EVAL.KEY=VALUE (got {item!r})", hint="e.g. --option probing.per_class=40")
        out.setdefault(ev, {})[name.strip()] = value.strip()
    return out
