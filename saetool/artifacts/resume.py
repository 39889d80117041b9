"""The "settings changed, cannot resume" check every resumable stage runs.

``extract``, ``train``, ``interpret`` and ``steer sweep`` record the settings a
run was made with; continuing it with other settings would mix two runs in one
result, so each compares them here and refuses with one line naming what changed.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from saetool.errors import SaetoolError

RESUME_HINT = "rerun with the original settings, or without --resume to start afresh"


def _as_json(value: Any) -> Any:
    """Settings compare as stored (a JSON round trip: tuples become lists)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def changed_settings(before: Mapping[str, Any], now: Mapping[str, Any], keys: Iterable[str] | None = None) -> list[str]:
    """The settings among ``keys`` (default: every key of either, sorted) whose values differ."""
    names = sorted(set(before) | set(now)) if keys is None else list(keys)
    return [k for k in names if _as_json(before.get(k)) != _as_json(now.get(k))]


def check_resumable(
    before: Mapping[str, Any],
    now: Mapping[str, Any],
    where: str,
    *,
    keys: Iterable[str] | None = None,
    also_changed: Iterable[str] = (),
    hint: str = RESUME_HINT,
) -> None:
    """One-line error when the run at ``where`` was made with other settings than ``now``
    (``also_changed``: differences the caller found itself, named after the settings)."""
    changed = changed_settings(before, now, keys) + list(also_changed)
    if changed:
        raise SaetoolError(f"cannot resume {where}: it was made with different {', '.join(changed)}", hint=hint)
