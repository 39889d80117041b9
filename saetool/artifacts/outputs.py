"""Outputs that are inputs: one check, before any work, for every command.

:func:`check_outputs` compares every output a command will write (``-o``,
``--report``, ``--html``, ``--export``, an export or sweep folder) with every
input it reads and with the other outputs, after resolving links and ``..``
(``os.path.realpath``, and ``os.path.samefile`` for hard links). An output
never replaces an input, even with ``--overwrite``; an existing output file is
replaced only with ``--overwrite``; a symbolic link planted where saetool will
make an output's partial or lock file (``X.partial``, ``X.lock``) is refused
here too, before any output is written. Each output's option is remembered
(:mod:`saetool.output_options`) for later errors about files made beside it.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

from saetool.artifacts.files import LOCK_SUFFIX, PARTIAL_SUFFIX, refuse_link
from saetool.errors import ArtifactError
from saetool.output_options import remember

PathLike = str | os.PathLike | None


def _real(p: PathLike) -> str | None:
    if p is None or str(p) in ("", "-"):
        return None
    return os.path.realpath(os.fspath(p))


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def check_outputs(
    outputs: Mapping[str, PathLike] | Iterable[tuple[str, PathLike]],
    inputs: Iterable[PathLike | tuple[str, PathLike]] = (),
    *,
    overwrite: bool = False,
    folders: Iterable[str] = (),
) -> None:
    """One-line :class:`ArtifactError` when an output names an input (or, for an
    output folder in ``folders``, holds one), when two outputs name the same
    path, or when an output file exists and ``overwrite`` is not given.

    ``outputs`` maps the option (``"--report"``) to its path (None: not given;
    pairs allow an option given twice);
    ``inputs`` are paths read (names that are not existing paths, such as a
    corpus or model name, are ignored), or ``(source, path)`` pairs for an input
    a setting names (``("best_from", path)``): the error then names the setting
    and offers to change it too.
    """
    named = [(None, p) if not isinstance(p, tuple) else p for p in inputs]
    ins = [(source, p, r) for source, p in named if (r := _real(p)) is not None and os.path.exists(r)]
    pairs = list(outputs.items() if isinstance(outputs, Mapping) else outputs)
    for option, path in pairs:
        if _real(path) is not None:
            remember(option, path)
    seen: list[tuple[str, PathLike, str]] = []
    for option, path in pairs:
        real = _real(path)
        if real is None:
            continue
        for source, given, inp in ins:
            if _same(real, inp) or (option in folders and _inside(inp, real)):
                what = "holds the input" if option in folders and not _same(real, inp) else "is also an input"
                raise ArtifactError(
                    f"{option} {path} {what} ({source + ' ' if source else ''}{given}); writing it would destroy that input",
                    hint=f"choose another {option}" + (f", or another {source}" if source else ""),
                )
        for other, other_path, other_real in seen:
            if _same(real, other_real):
                raise ArtifactError(f"{other} {other_path} and {option} {path} name the same file", hint="give each output its own name")
        seen.append((option, path, real))
        if option not in folders:
            for suffix, what in ((PARTIAL_SUFFIX, "partial output"), (LOCK_SUFFIX, "lock file")):
                refuse_link(os.fspath(path) + suffix, what=what)
        if option not in folders and os.path.isfile(real) and not overwrite:
            raise ArtifactError(f"output {path} already exists", hint=f"pass --overwrite to replace it, or choose another {option}")
