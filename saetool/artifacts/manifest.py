"""The JSON-line manifest stages pass to each other through pipes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import h5py

from saetool.artifacts.jsonable import finite
from saetool.errors import SaetoolError


def emit_manifest(path: str | Path, kind: str, *, force: bool = False, **extra: Any) -> dict[str, Any]:
    """Write ``{"path": ..., "kind": ..., ...}`` as one line to stdout.

    Written when stdout is not a terminal (a pipe or a file) or when ``force``
    is set; returns the manifest either way.
    """
    record = finite({"path": str(Path(path).resolve()), "kind": kind, **extra})  # strict JSON: NaN and inf are null
    if force or not sys.stdout.isatty():
        sys.stdout.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        sys.stdout.flush()
    return record


def read_manifests(stream: Any = None) -> list[dict[str, Any]]:
    """All manifest records on ``stream`` (stdin by default), each checked by :func:`check_manifest`."""
    stream = sys.stdin if stream is None else stream
    records = []
    for line in stream.read().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise SaetoolError(
                f"stdin is not a saetool manifest (got {line[:60]!r})",
                hint="pipe the output of a saetool stage, or pass the input file as an argument",
            ) from None
        records.append(check_manifest(record))
    return records


def _malformed(why: str) -> SaetoolError:
    return SaetoolError(f"the upstream manifest on stdin is malformed ({why})", hint="pipe the output of a saetool stage, or pass the input file as an argument")


_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "list"}


def check_manifest(record: Any) -> dict[str, Any]:
    """``record`` if it is a manifest a stage can follow: an object whose ``path`` is
    a non-empty string naming something that exists and whose ``kind`` (when
    given) is a non-empty string that agrees with the artifact's own kind."""
    if not isinstance(record, dict):
        raise _malformed(f"a JSON {_JSON_TYPES.get(type(record), 'value')}, not an object with a 'path'")
    path = record.get("path")
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise _malformed(f"'path' is {json.dumps(path)[:60]}, not a file path" if "path" in record else "no 'path'")
    kind = record.get("kind")
    if "kind" in record and (not isinstance(kind, str) or not kind.strip()):
        raise _malformed(f"'kind' is {json.dumps(kind)[:60]}, not an artifact kind")
    p = Path(path)
    try:
        exists = p.exists()
    except OSError as exc:  # a name too long for the file system
        raise _malformed(f"its path {path[:60]}... cannot be checked: {exc.strerror}") from None
    if not exists:
        raise _malformed(f"its path {path} does not exist")
    if kind is not None and p.is_file():
        actual = _artifact_kind(p)
        if actual is not None and actual != kind:
            raise _malformed(f"it says kind {kind!r}, but {path} is a {actual!r} artifact")
    return record


def _artifact_kind(path: Path) -> str | None:
    """The ``saetool_kind`` of an HDF5 artifact, or None for anything else."""
    try:
        if not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as fh:
            value = fh.attrs.get("saetool_kind")
    except OSError:
        return None  # a corrupt file: the stage that opens it says so
    value = value.decode(errors="replace") if isinstance(value, bytes) else value
    return value if isinstance(value, str) else None


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
