"""An architecture's own settings: a dataclass per architecture, values from ``KEY=VALUE`` text.

An :class:`~saetool.train.architectures.SAEArchitecture` names its settings class
in ``options_class`` (a dataclass whose fields have defaults and a docstring
each). ``TrainConfig.options`` gives values by key, as text (``"256,1024"``,
from ``saetool train --arch-option KEY=VALUE``) or already typed (Python API);
:func:`convert_options` checks the keys and converts the values, with a one-line
error naming the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping

from saetool.errors import ConfigError, did_you_mean
from saetool.fielddocs import field_docs

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def option_fields(options_class: type | None) -> list[dataclasses.Field]:
    return list(dataclasses.fields(options_class)) if options_class is not None else []


def convert_options(options_class: type | None, given: Mapping[str, Any], arch: str) -> dict[str, Any]:
    """``given`` with every key checked against ``options_class`` and every value of its field's type.

    Without an ``options_class`` (a plugin written before architectures declared
    their options) the options pass unchecked, as they always did.
    """
    if options_class is None:
        return dict(given)
    known = {f.name: f for f in option_fields(options_class)}
    hints = typing.get_type_hints(options_class)
    out = {}
    for key, value in given.items():
        if key not in known:
            hint = did_you_mean(key, known) or (f"{arch}'s options: " + ", ".join(known) if known else f"{arch} takes none")
            raise ConfigError(f"unknown `options` key {key!r} for architecture {arch!r}", hint=hint)
        out[key] = _convert(value, hints[key], key)
    return out


def read_options(options_class: type, stored: Mapping[str, Any]) -> Any:
    """The settings instance for a stored ``SAEConfig.options`` (defaults for keys not stored; other keys ignored)."""
    names = {f.name for f in dataclasses.fields(options_class)}
    return options_class(**{k: v for k, v in stored.items() if k in names})


def describe(options_class: type | None) -> list[dict[str, Any]]:
    """Each option's name, type, default and help (``saetool plugins``)."""
    docs = field_docs(options_class) if options_class is not None else {}
    hints = typing.get_type_hints(options_class) if options_class is not None else {}
    return [
        {"name": f.name, "type": _type_name(hints[f.name]), "default": f.default if f.default is not dataclasses.MISSING else None, "help": docs.get(f.name, "")}
        for f in option_fields(options_class)
    ]


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _type_name(args[0])
    if typing.get_origin(annotation) is list:
        return f"comma-separated {_type_name(typing.get_args(annotation)[0])}s"
    return getattr(annotation, "__name__", str(annotation))


def _convert(value: Any, annotation: Any, key: str) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        annotation = args[0]
    expected = _type_name(annotation)
    wrong = ConfigError(f"`options` {key}={value!r} is not {'a ' if not expected.startswith('comma') else ''}{expected}")
    if typing.get_origin(annotation) is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise wrong
        try:
            return [_scalar(item.strip() if isinstance(item, str) else item, typing.get_args(annotation)[0]) for item in items if not (isinstance(item, str) and not item.strip())]
        except (TypeError, ValueError):
            raise wrong from None
    try:
        return _scalar(value, annotation)
    except (TypeError, ValueError):
        raise wrong from None


def _scalar(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if kind is str:
        return str(value)
    raise TypeError(f"architecture options of type {kind!r} are not supported")
