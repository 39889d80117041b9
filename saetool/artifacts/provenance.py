"""Provenance recorded in every artifact: who made it, from what, how."""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import saetool
from saetool.artifacts.store import read_header


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


_SECRET_WORDS = frozenset({"secret", "secrets", "password", "passwd", "credential", "credentials", "auth", "authorization", "bearer"})
_SECRET_ENDINGS = ("key", "keys", "token", "tokens")  # --api-key, --hf-token, --access-tokens, apikey, hfToken
_COUNT_WORDS = frozenset({"n", "num", "skip", "max", "min", "new", "dead", "aux", "total", "exclude", "special", "context", "per", "extra"})  # --num-tokens, --skip-tokens
_NAME = re.compile(r"[A-Za-z_][\w.-]*")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def redact_urls(text: str) -> str:
    """``text`` with every URL's user info, query and fragment removed (they may carry credentials)."""

    def clean(match: re.Match) -> str:
        try:
            parts = urlsplit(match.group(0))
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
        except ValueError:
            return "***"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    return _URL.sub(clean, text)


def is_secret_name(name: str) -> bool:
    """Whether an option or setting called ``name`` (``--api-key``, ``hf_token``,
    ``accessToken``) holds a secret: a word of it names one (:data:`_SECRET_WORDS`), or its
    last word ends in key(s) or token(s) and no word makes it a count or a list of token ids
    (``--num-tokens``, ``--skip-tokens``, ``--max-new-tokens``, ``--exclude-tokens``), which
    are kept so that the stored command reruns."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)  # camelCase: words too
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return words[-1].endswith(_SECRET_ENDINGS) and not any(w in _COUNT_WORDS for w in words[:-1])


def redact_value(name: str, value: str) -> str:
    """A ``NAME=VALUE`` setting made safe to store: secret-looking names blanked, URLs cleaned."""
    return "***" if is_secret_name(name) else redact_urls(value)


def _redact(argv: list[str]) -> list[str]:
    """Blank the value of any option that looks like a secret, and credentials in URLs."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        if arg.startswith("--") and is_secret_name(arg.split("=", 1)[0]):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        name, eq, value = arg.partition("=")
        if eq and _NAME.fullmatch(name):  # KEY=VALUE option values (e.g. --labeler-option)
            out.append(f"{name}={redact_value(name, value)}")
            continue
        out.append(redact_urls(arg))
    return out


#: Parent hashes already computed in this process, by (path, device, inode, size, mtime): a run
#: writing several artifacts from one input (``train --hooks``) reads it once, not once per output.
_PARENT_SHA256: dict[tuple[Any, ...], str] = {}


def _parent_sha256(p: Path) -> str:
    st = p.stat()
    key = (str(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _PARENT_SHA256:
        _PARENT_SHA256[key] = file_sha256(p)
    return _PARENT_SHA256[key]


def parent_record(path: str | Path) -> dict[str, Any]:
    """Path, kind and content hash of a parent artifact."""
    p = Path(path)
    record: dict[str, Any] = {"path": str(p.resolve()), "sha256": _parent_sha256(p)}
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
