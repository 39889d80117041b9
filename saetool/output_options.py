"""Which option named each output, so that an error about a file saetool makes
beside or inside an output (``OUT.partial``, ``OUT.lock``, ``OUT.checkpoints/``,
a sweep's ``RUN/cells``) tells the user which option to change.

``saetool.artifacts.outputs.check_outputs`` (run by every command before any
work) calls :func:`remember` for each output; :func:`another` turns a path into
"choose another --report" (the output it belongs to is the longest remembered
path it equals, extends with ``.`` or lies inside), or "choose another path"
when no option named it (a Python API call that checked nothing). Only names
that are options (``-...``) are remembered. A later command in the same process
replaces what an earlier one said of the same path.
"""

from __future__ import annotations

import os

from saetool.errors import ArtifactError

_OPTIONS: dict[str, str] = {}  # output path (its folder resolved) -> the option that named it


def _key(path: str | os.PathLike) -> str:
    """``path`` with its folder resolved but not itself: a link stays the link's path."""
    p = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))


def remember(option: str, path: str | os.PathLike) -> None:
    """Note that ``option`` (``"--report"``) names the output ``path``; a file a
    command writes inside an output folder already named (a sweep's cells inside
    its ``--output-dir``) keeps that folder's option."""
    p = _key(path)
    if option.startswith("-") and (p in _OPTIONS or not any(p.startswith(out + os.sep) for out in _OPTIONS)):
        _OPTIONS[p] = option


def option_for(path: str | os.PathLike) -> str | None:
    """The option whose output ``path`` is or belongs to, or None."""
    p = _key(path)
    owners = [out for out in _OPTIONS if p == out or p.startswith(out + ".") or p.startswith(out + os.sep)]
    return _OPTIONS[max(owners, key=len)] if owners else None


def another(path: str | os.PathLike, fallback: str = "path") -> str:
    """``"choose another --report"``, or ``"choose another " + fallback`` when no option named ``path``."""
    return f"choose another {option_for(path) or fallback}"


def link_refused(path: str | os.PathLike, what: str) -> ArtifactError:
    """The one-line error for a symbolic link planted where saetool keeps its ``what``."""
    return ArtifactError(
        f"{path} is a symbolic link where saetool keeps its {what}; saetool will not write through it",
        hint=f"remove the link, or {another(path)}",
    )
