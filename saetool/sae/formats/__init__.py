"""Other libraries' SAE formats: SAELens (read and write) and sparsify (read).

:func:`atomic_output_dir` is the folder counterpart of
:class:`saetool.artifacts.store.ArtifactWriter`: write into a temporary sibling
folder, rename it into place only once complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from saetool.artifacts.files import is_write_failure, write_error, write_errors_as_one_line
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.store import check_name_length, ensure_writable_parent
from saetool.errors import ArtifactError


def check_output_dir(path: str | Path, *, overwrite: bool = False, inputs: Iterable[object] = ()) -> Path:
    """Validate an output folder before any work starts: it may not exist yet, or
    be empty, or (with ``overwrite``) hold anything but one of ``inputs``. Creates its parent."""
    p = Path(path)
    check_name_length(p)
    check_outputs({"--output": p}, inputs, folders=["--output"])
    if p.exists() and not p.is_dir():
        raise ArtifactError(f"output {p} exists and is not a folder", hint="choose another --output")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise ArtifactError(f"output folder {p} already exists and is not empty", hint="pass --overwrite to replace it, or choose another --output")
    ensure_writable_parent(p)
    return p


@contextmanager
def atomic_output_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh (not yet existing) folder path next to ``path``; when the
    block finishes without error, move it to ``path`` (replacing an empty or,
    with ``overwrite``, any existing folder). On an error nothing is left behind
    and ``path`` is untouched."""
    target = check_output_dir(path, overwrite=overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    work = staging / target.name
    try:
        try:
            with write_errors_as_one_line(target):
                yield work
        except ArtifactError as exc:  # a writer inside named its file in the staging folder: name the output
            if is_write_failure(exc) and str(staging) in str(exc):
                raise write_error(exc.__cause__, target) from exc.__cause__  # type: ignore[arg-type]
            raise
        if not work.is_dir():
            raise ArtifactError(f"nothing was written for {target}")
        work.chmod(0o755)
        if target.exists():
            check_output_dir(target, overwrite=overwrite)  # it may have changed meanwhile
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            try:
                os.replace(work, target)
            except BaseException:
                os.replace(old / target.name, target)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_json_object(path: Path, *, what: str) -> dict:
    """A JSON object from ``path``; one line naming ``what`` when it is missing, malformed or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {what} {path} ({exc})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{what} {path} is not a JSON object")
    return data


def hub_repo_of(path: Path) -> str | None:
    """The Hugging Face repo a path inside the hub cache belongs to
    (``.../models--google--gemma-scope-2b-pt-res/snapshots/REV/...`` -> ``google/gemma-scope-2b-pt-res``), or None."""
    for part in reversed(Path(path).absolute().parts):
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/", 1)
    return None
