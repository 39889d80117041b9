"""Typer options generated from a config dataclass: one field, one flag.

A field's flag is ``--field-name`` (a command may rename it or add a short
option), its type and default are the field's, and its help is the docstring
written under the field. In help and in :class:`~saetool.errors.ConfigError`
messages a backticked setting (``` `d_sae` ```) becomes its flag (``--d-sae``),
so the library names its settings and only this layer knows the flags.

The docstrings are read by :func:`saetool.fielddocs.field_docs` (the module's
syntax tree, a few milliseconds, no import), so ``saetool --help`` stays light.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, TypeVar

import typer
from typer.models import ParameterInfo

from saetool.errors import ConfigError, SaetoolError
from saetool.fielddocs import field_docs

F = TypeVar("F", bound=Callable[..., Any])
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")


@dataclass(frozen=True)
class Group:
    """The options one dataclass contributes to a command.

    ``name`` is the field holding the dataclass in the command's config
    (``""`` for the config itself); its values reach the command as the
    keyword argument of that name (``config`` for ``""``), a dict by field.
    ``flags`` overrides a field's flag declaration (``"--l1-coeff"``,
    ``"--bos/--no-bos"``); ``short`` adds a short option; ``skip`` leaves fields
    off the command line. With ``optional`` every option defaults to ``None``
    (leave the value to the command). ``help`` formats each option's help from
    the field's docstring (``{help}``).
    """

    cls: type
    name: str = ""
    flags: Mapping[str, str] = field(default_factory=dict)
    short: Mapping[str, str] = field(default_factory=dict)
    skip: frozenset[str] | set[str] = frozenset()
    optional: bool = False
    help: str = "{help}"

    def path(self, name: str) -> str:
        """The setting's name in messages: ``sparsity_coeff`` or ``samples.every``."""
        return f"{self.name}.{name}" if self.name else name

    def param(self, name: str) -> str:
        """The command parameter's name (typer passes values under it)."""
        return f"{self.name}__{name}" if self.name else name

    def declaration(self, name: str) -> str:
        return self.flags.get(name, "--" + name.replace("_", "-"))

    def fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self.cls) if f.name not in self.skip]


def _cli_type(annotation: Any, optional: bool) -> tuple[Any, Callable[[Any], Any]]:
    """The option's type for typer and the conversion back to the field's value.

    ``list[str]`` fields take one comma-separated value.
    """
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        optional, annotation = True, next(a for a in args if a is not type(None))
    back: Callable[[Any], Any] = _same
    if typing.get_origin(annotation) is list and typing.get_args(annotation) == (str,):
        optional, annotation, back = True, str, _comma_list
    if annotation not in (bool, int, float, str):
        raise TypeError(f"no command-line type for {annotation!r}")
    return (Optional[annotation] if optional else annotation), back


def _same(value: Any) -> Any:
    return value


def _comma_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; nothing -> ``None``."""
    return text.split(",") if text else None


def _flag_names(param: inspect.Parameter) -> list[str]:
    """The long flags a command's own option declares (``["--dead-steps"]``)."""
    info = param.default
    if not isinstance(info, ParameterInfo):
        return []
    decls = [d for d in (getattr(info, "param_decls", None) or ()) if d.startswith("--")]
    return [d.split("/")[0] for d in decls]


def from_config(*groups: Group, after: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Give a typer command the options of ``groups``.

    The command's own arguments come first, then the generated options in field
    order, then its own options; ``after`` moves a parameter (own or generated,
    by parameter name) right after another, in the order given. The command
    receives each group's values as a dict under the group's name (``config``
    for the top-level group). A :class:`ConfigError` it raises is re-raised with
    the flags in place of the settings' names.
    """

    def decorate(func: F) -> F:
        own = [p for p in inspect.signature(func).parameters.values() if p.name not in {g.name or "config" for g in groups}]
        generated: list[inspect.Parameter] = []
        convert: dict[str, tuple[Group, str, Callable[[Any], Any]]] = {}
        names: dict[str, str] = {}
        for group in groups:
            docs, hints = field_docs(group.cls), typing.get_type_hints(group.cls)
            for f in group.fields():
                cli_type, back = _cli_type(hints[f.name], group.optional)
                if f.name not in docs:
                    raise TypeError(f"{group.cls.__name__}.{f.name} has no docstring (the option's help)")
                default = None if group.optional else f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                decl = [group.declaration(f.name), *([group.short[f.name]] if f.name in group.short else [])]
                info = typer.Option(default, *decl, help=group.help.format(help=docs[f.name]))
                generated.append(inspect.Parameter(group.param(f.name), inspect.Parameter.KEYWORD_ONLY, default=info, annotation=cli_type))
                convert[group.param(f.name)] = (group, f.name, back)
                names[group.path(f.name)] = decl[0].split("/")[0]
        for p in own:
            for flag in _flag_names(p)[:1]:
                names.setdefault(p.name, flag)
        arguments = [p for p in own if not _flag_names(p)]
        options = [p for p in own if _flag_names(p)]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*arguments, *generated, *options)]
        for name, anchor in (after or {}).items():
            moved = next(p for p in params if p.name == name)
            params.remove(moved)
            params.insert(next(i for i, p in enumerate(params) if p.name == anchor) + 1, moved)
        for i, p in enumerate(params):  # help text names flags, not settings
            if isinstance(p.default, ParameterInfo) and p.default.help and "`" in p.default.help:
                info = copy.copy(p.default)  # shared options (OUTPUT, DEVICE) stay as they are
                info.help = flag_text(p.default.help, names)
                params[i] = p.replace(default=info)

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values: dict[str, dict[str, Any]] = {g.name or "config": {} for g in groups}
            for key in list(kwargs):
                if key in convert:
                    group, name, back = convert[key]
                    values[group.name or "config"][name] = back(kwargs.pop(key))
            try:
                return func(**kwargs, **values)
            except ConfigError as exc:
                raise SaetoolError(flag_text(exc.message, names), hint=flag_text(exc.hint, names) if exc.hint else None) from exc

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.flag_names = names  # type: ignore[attr-defined]
        return command  # type: ignore[return-value]

    return decorate


def flag_text(text: str, names: Mapping[str, str]) -> str:
    """``"`sparsity_coeff` must be ..."`` -> ``"--l1-coeff must be ..."`` (names not in ``names`` keep their backticks)."""
    return _BACKTICKED.sub(lambda m: names.get(m.group(1), m.group(0)), text)
