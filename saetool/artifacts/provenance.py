"""Provenance recorded in every artifact: who made it, from what, how."""

from __future__ import annotations

import hashlib
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import saetool


def file_sha256(path: str | Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def command_line(argv: list[str] | None = None) -> str:
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return " ".join(shlex.quote(a) for a in _redact(argv))


def _redact(argv: list[str]) -> list[str]:
    """Blank the value of any option that looks like a secret."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        lowered = arg.lower()
        if any(word in lowered for word in ("key", "token=", "secret", "password")) and lowered.startswith("--"):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def parent_record(path: str | Path) -> dict[str, Any]:
    """Path, kind and content hash of a parent artifact."""
    from saetool.artifacts.store import read_header

    p = Path(path)
    record: dict[str, Any] = {"path": str(p.resolve()), "sha256": file_sha256(p)}
    try:
        header = read_header(p)
        record["kind"] = header["saetool_kind"]
    except Exception:
        pass
    return record


def build_provenance(
    *,
    model: str | None = None,
    backend: str | None = None,
    hooks: Iterable[str] | None = None,
    corpus: str | None = None,
    parents: Iterable[str | Path] = (),
    argv: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance dictionary stored (as JSON) in an artifact's attributes."""
    prov: dict[str, Any] = {
        "saetool_version": saetool.__version__,
        "command": command_line(argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "backend": backend,
        "hooks": list(hooks) if hooks is not None else [],
        "corpus": corpus,
        "parents": [parent_record(p) for p in parents],
    }
    prov.update(extra)
    return prov
