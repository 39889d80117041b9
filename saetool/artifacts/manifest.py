"""The JSON-line manifest stages pass to each other through pipes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from saetool.errors import SaetoolError


def emit_manifest(path: str | Path, kind: str, *, force: bool = False, **extra: Any) -> dict[str, Any]:
    """Write ``{"path": ..., "kind": ..., ...}`` as one line to stdout.

    Written when stdout is not a terminal (a pipe or a file) or when ``force``
    is set; returns the manifest either way.
    """
    record = {"path": str(Path(path).resolve()), "kind": kind, **extra}
    if force or not sys.stdout.isatty():
        sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()
    return record


def read_manifests(stream: Any = None) -> list[dict[str, Any]]:
    """All manifest records on ``stream`` (stdin by default)."""
    stream = sys.stdin if stream is None else stream
    records = []
    for line in stream.read().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise SaetoolError(
                f"stdin is not a saetool manifest (got {line[:60]!r})",
                hint="pipe the output of a saetool stage, or pass the input file as an argument",
            ) from None
        if not isinstance(record, dict) or "path" not in record:
            raise SaetoolError("stdin manifest line has no 'path'", hint="pipe the output of a saetool stage")
        records.append(record)
    return records


def resolve_input(arg: str | Path | None, *, what: str = "input artifact", stream: Any = None) -> Path:
    """The input path: ``arg`` itself, or (when omitted or ``-``) the last manifest on stdin."""
    if arg is not None and str(arg) != "-":
        return Path(arg)
    stream = sys.stdin if stream is None else stream
    if stream is None or (hasattr(stream, "isatty") and stream.isatty()):
        raise SaetoolError(f"no {what} given", hint="pass a FILE argument or pipe a saetool stage into this one")
    records = read_manifests(stream)
    if not records:
        raise SaetoolError(f"no {what} given and stdin was empty", hint="pass a FILE argument or pipe a saetool stage into this one")
    return Path(records[-1]["path"])
