"""Writing artifacts atomically and opening them with validation."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import h5py

from saetool.artifacts.files import (
    LOCK_SUFFIX,
    PARTIAL_SUFFIX,
    DeferredErrors,
    abandon,
    claim_temporary,
    fsync_path,
    is_write_failure,
    write_error,
    write_errors_as_one_line,
)
from saetool.artifacts.kinds import get_kind
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.validate import bad, integer, json_attr, validate
from saetool.console import log
from saetool.errors import ArtifactError, SaetoolError
from saetool.locking import FileLock



def partial_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def ensure_writable_parent(path: Path) -> None:
    """Create ``path``'s parent folder if needed; one-line error if it cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((q for q in (parent, *parent.parents) if q.exists() and not q.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None else exc.strerror
        raise ArtifactError(f"cannot create folder {parent} for the output ({reason})", hint="choose another --output") from exc
    if not os.access(parent, os.W_OK):
        raise ArtifactError(f"cannot write to {parent}: permission denied", hint="choose a writable --output location")
    check_name_length(path)
    try:  # os.access says yes to root even where writes fail (read-only mounts, /proc): try one
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".saetool-probe-")
    except OSError as exc:
        raise ArtifactError(f"cannot write to {parent} ({exc.strerror})", hint="choose a writable --output location") from exc
    os.close(fd)
    os.unlink(probe)


#: Room kept for the longest suffix a stage adds to an output name (``.checkpoints.lock``, ``.history.csv.partial``).
_SUFFIX_ROOM = 24


def check_name_length(path: Path) -> None:
    """One-line error when an output name (plus the suffixes stages add) is longer than the file system allows."""
    try:
        name_max = os.pathconf(path.parent if str(path.parent) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    size = len(os.fsencode(path.name))
    if size + _SUFFIX_ROOM > name_max:
        raise ArtifactError(
            f"output file name {path.name[:40]}... is too long ({size} bytes; at most {name_max - _SUFFIX_ROOM} here)",
            hint="choose a shorter --output name",
        )


def check_output_path(path: str | Path, *, overwrite: bool = False, resume: bool = False, inputs: Iterable[Any] = (), option: str = "--output") -> Path:
    """Validate an output path before any work starts (it may not be one of
    ``inputs``, even with ``overwrite``); returns it as a Path."""
    p = Path(path)
    check_name_length(p)  # before p.exists(), which raises for an over-long name
    check_outputs({option: p}, inputs, overwrite=True)
    if p.exists() and p.is_dir():
        raise ArtifactError(f"output {p} is a directory", hint="give a file name with --output")
    if p.exists() and not overwrite:
        raise ArtifactError(f"output {p} already exists", hint="pass --overwrite to replace it, or choose another --output")
    ensure_writable_parent(p)
    if resume and not partial_path(p).exists():
        raise ArtifactError(
            f"nothing to resume: no partial run at {partial_path(p)}",
            hint="run without --resume to start afresh",
        )
    return p


def _writer_lock(path: Path) -> "FileLock":
    """The lock on ``PATH.lock`` that keeps a second writer of ``path`` out."""
    lock = path.with_name(path.name + LOCK_SUFFIX)
    return FileLock(
        lock,
        lambda: ArtifactError(
            f"another saetool process is writing {path} (lock {lock})",
            hint="wait for it to finish, or choose another --output",
        ),
    )


def check_not_being_written(path: str | Path) -> None:
    """One-line error when another process holds ``PATH.lock`` (is writing ``path``)."""
    _writer_lock(Path(path)).check()


class ArtifactWriter:
    """Write an artifact to ``PATH.partial`` and rename it to ``PATH`` on commit.

    Use as a context manager. On an error the partial file is removed unless
    the stage is resumable (``keep_partial_on_error``), in which case it stays
    for ``--resume``. A lock file keeps a second writer of the same output out.

    A failed write (a full disk) is never committed: every write, flush, close
    and ``fsync`` is checked, and the errors h5py can only report while freeing
    an object are caught too (:class:`~saetool.artifacts.files.DeferredErrors`);
    the partial file is then removed (its rows cannot be trusted for
    ``--resume``) and the error is one line naming ``PATH``. The file is opened
    without a chunk cache, so a full disk raises where rows are written rather
    than later, as h5py frees a dataset. ``PATH.partial`` is created with
    ``O_EXCL`` and a symbolic link there is refused.
    """

    def __init__(
        self,
        path: str | Path,
        kind: str,
        provenance: dict[str, Any],
        *,
        overwrite: bool = False,
        resume: bool = False,
        keep_partial_on_error: bool = False,
    ) -> None:
        self.path = Path(path)
        self.kind = get_kind(kind)
        self.provenance = provenance
        self.overwrite = overwrite
        self.resume = resume
        self.keep_partial_on_error = keep_partial_on_error
        self.partial = partial_path(self.path)
        self._lock = _writer_lock(self.path)
        self.file: h5py.File | None = None
        self.resumed = False
        self._deferred = DeferredErrors(self.path)
        self._opened = False  # the partial file is ours (created or reopened by us)

    def __enter__(self) -> "ArtifactWriter":
        check_output_path(self.path, overwrite=self.overwrite)
        self._lock.acquire()
        self._deferred.__enter__()
        try:
            with write_errors_as_one_line(self.path):
                self._open()
        except BaseException:
            self._discard()
            raise
        return self

    def _open(self) -> None:
        if self.resume and self.partial.exists() and not self.partial.is_symlink():
            try:
                self.file = _checked_file(self.partial, "r+", self._deferred)
                self._opened = True
            except OSError as exc:
                raise ArtifactError(
                    f"the partial run {self.partial} is unreadable ({exc})",
                    hint="delete it and run without --resume",
                ) from exc
            if self.file.attrs.get("saetool_kind") != self.kind.name:
                raise ArtifactError(f"the partial run {self.partial} is not a {self.kind.name!r} artifact", hint="delete it and run without --resume")
            self.resumed = True
        else:
            if self.partial.exists() and not self.partial.is_symlink():
                log(f"[dim]discarding an earlier unfinished run at {self.partial} (use --resume to continue one)[/dim]")
            claim_temporary(self.partial, what="partial output")
            # "w-" creates with O_EXCL: never through a link planted meanwhile. Default
            # libver: no consistency flag left set by a crash, so --resume can reopen it.
            self.file = _checked_file(self.partial, "w-", self._deferred)
            self._opened = True
            self.file.attrs["saetool_kind"] = self.kind.name
            self.file.attrs["schema_version"] = self.kind.schema_version
            self.file.attrs["complete"] = False
        self.file.attrs["provenance"] = json.dumps(self.provenance, sort_keys=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
            return
        failed = self._write_failure(exc)
        interrupted = exc_type is KeyboardInterrupt
        keep = failed is None and self.keep_partial_on_error and (interrupted or not _is_user_error(exc))
        self._discard(keep=keep)
        if keep:
            log(f"[yellow]unfinished run kept at {self.partial}; rerun the same command with --resume to continue[/yellow]")
        if failed is not None and failed is not exc:
            raise failed from exc

    def flush(self) -> None:
        """Write what is buffered to disk; a failed write (now or freed earlier) raises one line."""
        assert self.file is not None
        self.file.flush()

    def commit(self) -> Path:
        """Mark the file complete and rename it into place, only if every write,
        the flush, the close and the ``fsync`` succeeded; otherwise remove it."""
        assert self.file is not None
        try:
            with write_errors_as_one_line(self.path):
                self._deferred.check()
                self.file.attrs["complete"] = True
                self.flush()
                self._close()
                self._deferred.check()
                fsync_path(self.partial)
                os.replace(self.partial, self.path)
        except BaseException as exc:
            self._discard()
            failed = self._write_failure(exc)
            if failed is not None and failed is not exc:
                raise failed from exc
            raise
        self._release()
        return self.path

    def _write_failure(self, exc: BaseException) -> ArtifactError | None:
        """The one-line error for a failed write (raised or deferred), else None."""
        if is_write_failure(exc):
            return exc  # type: ignore[return-value]
        try:
            self._deferred.check()
        except ArtifactError as deferred:
            return deferred
        return write_error(exc, self.path)

    def _discard(self, *, keep: bool = False) -> None:
        """Close (errors of a failing file are of no more use), remove the partial
        file unless ``keep``, release the lock."""
        mine = self._opened and not self.partial.is_symlink()
        if mine and not keep:
            # Free its space first: on a full disk HDF5 can only close a file once
            # its buffers can be written (a file it fails to close crashes the
            # interpreter at exit).
            try:
                os.truncate(self.partial, 0)
            except OSError:
                pass
        if self._deferred.errors and self.file is not None:
            abandon(self.file)  # HDF5 failed to close a dataset of it: it would crash closing the file
            self.file = None
        try:
            self._close()
        except Exception:
            pass
        if mine and not keep:
            self.partial.unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        self._deferred.__exit__()
        self._lock.release()

    def _close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            file.close()


_CHECKED: list[Any] = []


def _checked_file(path: Path, mode: str, deferred: DeferredErrors) -> "h5py.File":
    """``h5py.File(path, mode)`` whose ``flush()`` (also called by the stages
    directly) raises write errors deferred since, before HDF5 touches the file:
    HDF5 crashes flushing a dataset it failed to close. Opened without a chunk
    cache (see :class:`ArtifactWriter`)."""
    if not _CHECKED:
        class CheckedFile(h5py.File):
            def flush(self) -> None:
                self._saetool_deferred.check()
                with write_errors_as_one_line(self._saetool_deferred.path):
                    super().flush()
                self._saetool_deferred.check()

        _CHECKED.append(CheckedFile)
    fh = _CHECKED[0](path, mode, rdcc_nbytes=0)
    fh._saetool_deferred = deferred
    return fh


def _is_user_error(exc: BaseException | None) -> bool:
    return isinstance(exc, SaetoolError)


def read_header(path: str | Path) -> dict[str, Any]:
    """Kind, schema version and provenance of an artifact, without the kind's own checks
    (a malformed header is a one-line :class:`ArtifactError`)."""
    p = Path(path)
    with h5py.File(p, "r") as fh:
        kind = _text(fh.attrs.get("saetool_kind"))
        return {
            "saetool_kind": kind if isinstance(kind, str) else None,
            "schema_version": integer(fh.attrs.get("schema_version", 0), p, "schema_version"),
            "provenance": json_attr(fh.attrs.get("provenance", "{}"), p, "provenance", dict),
        }


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value: bytes decoded, JSON text parsed
    (other text kept as it is), numpy scalars and arrays as Python numbers and lists."""
    value = _text(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class Artifact:
    """An open, validated artifact (read-only). Use as a context manager."""

    def __init__(self, path: Path, file: "h5py.File") -> None:
        self.path = path
        self.file = file
        self.kind: str = _text(file.attrs["saetool_kind"])
        self.schema_version = integer(file.attrs["schema_version"], path, "schema_version")
        self.provenance: dict[str, Any] = json_attr(file.attrs.get("provenance", "{}"), path, "provenance", dict)

    @property
    def attrs(self) -> Any:
        return self.file.attrs

    def __getitem__(self, name: str) -> Any:
        return self.file[name]

    def __contains__(self, name: str) -> bool:
        return name in self.file

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "Artifact":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_artifact(path: str | Path, kind: str | Iterable[str] | None = None) -> Artifact:
    """Open ``path`` read-only, refusing missing, corrupt, unknown, too-new or
    wrong-kind files with a one-line :class:`ArtifactError`."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p} does not exist", hint="check the path, or pipe the previous stage's output")
    if p.is_dir():
        raise ArtifactError(f"{p} is a directory, not an artifact file")
    if not h5py.is_hdf5(p):
        raise ArtifactError(f"{p} is not an HDF5 file (truncated or corrupt?)", hint="re-create it with the stage that wrote it")
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise ArtifactError(f"{p} is corrupt or truncated ({exc})", hint="re-create it with the stage that wrote it") from exc
    try:
        if "saetool_kind" not in fh.attrs or "schema_version" not in fh.attrs:
            raise ArtifactError(f"{p} is an HDF5 file but not a saetool artifact (no saetool_kind attribute)")
        name = _text(fh.attrs["saetool_kind"])
        if not isinstance(name, str):
            raise bad(p, f"attribute 'saetool_kind' is {name!r}, not text")
        spec = get_kind(name)
        version = integer(fh.attrs["schema_version"], p, "schema_version")
        if version > spec.schema_version:
            raise ArtifactError(
                f"{p} has {name} schema version {version}, newer than this saetool reads ({spec.schema_version})",
                hint="upgrade saetool",
            )
        if kind is not None:
            wanted = (kind,) if isinstance(kind, str) else tuple(kind)
            if name not in wanted:
                raise ArtifactError(
                    f"{p} is a {name!r} artifact, but this needs {' or '.join(repr(w) for w in wanted)}",
                    hint="pass the output of the right stage",
                )
        try:
            validate(fh, p, spec)
        except (OSError, KeyError, TypeError, ValueError) as exc:  # h5py cannot even read a member: as corrupt
            raise bad(p, f"unreadable ({' '.join(str(exc).split())[:120]})") from exc
        return Artifact(p, fh)
    except BaseException:
        fh.close()
        raise
