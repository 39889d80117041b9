"""Files saetool makes for itself, and write errors as one line.

Every stage writes through here (HDF5 artifacts through
:class:`saetool.artifacts.store.ArtifactWriter`, which uses these too):

- :func:`claim_temporary` makes a path saetool owns (``X.partial``, a lock, a
  checkpoint staging folder) safe to create: a symbolic link planted there is
  refused, a stale regular file or folder is removed, so nothing is ever
  written through a link to a file the user never named.
- :func:`create_new` opens a new file with ``O_CREAT | O_EXCL | O_NOFOLLOW``.
- :func:`atomic_file` writes a non-HDF5 file through ``X.partial``: renamed
  into place only once every write, the flush, ``fsync`` and close succeeded.
- :func:`write_error` turns an error that says the disk is full (or failing)
  into the one-line :class:`ArtifactError` naming the output, and
  :func:`write_errors_as_one_line` applies it to a block.
- :class:`DeferredErrors` keeps the write errors h5py raises while freeing
  objects (Python would only print them as "Exception ignored" and go on), so a
  writer can raise them instead of committing a file with missing rows.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from saetool.errors import ArtifactError, SaetoolError
from saetool.output_options import another, link_refused

#: Errors that mean "this write did not reach the disk".
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# h5py ("errno = 28"), safetensors/Rust ("code: 28", "os error 28"), Python ("[Errno 28]")
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)|code: (\d+)|os error (\d+)|\[Errno (\d+)\]")
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"  # beside an output while a stage writes it (saetool.locking)


def write_errno(exc: BaseException) -> int | None:
    """The errno of a failed write carried by ``exc`` (an OSError, or h5py's or
    safetensors' error text), if it is one of :data:`WRITE_ERRNOS`."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in WRITE_ERRNOS:
        return code
    for m in _ERRNO_IN_TEXT.finditer(str(exc)):
        n = int(next(g for g in m.groups() if g))
        if n in WRITE_ERRNOS:
            return n
    return errno.ENOSPC if "No space left on device" in str(exc) else None


def write_error(exc: BaseException, path: str | Path) -> ArtifactError | None:
    """``error: no space left on device writing PATH; free space or choose another
    --output`` (or the like; the option that named the output) when ``exc`` is a failed write, else None."""
    code = write_errno(exc)
    if code is None:
        return None
    choose = another(path, "--output")  # the option that named the output (--report, --output-dir, ...)
    hint = f"free space or {choose}" if code in _FULL else f"check the disk, or {choose}"
    return ArtifactError(f"{os.strerror(code).lower()} writing {path}", hint=hint)


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is :func:`write_error`'s one line (the disk, not the input, failed)."""
    return isinstance(exc, ArtifactError) and exc.__cause__ is not None and write_errno(exc.__cause__) is not None


@contextmanager
def write_errors_as_one_line(path: str | Path) -> Iterator[None]:
    """Re-raise a failed write inside the block as :func:`write_error`'s one line."""
    try:
        yield
    except SaetoolError:
        raise
    except Exception as exc:
        err = write_error(exc, path)
        if err is None:
            raise
        raise err from exc


class DeferredErrors:
    """While active, errors raised as h5py frees (and so flushes) an object are kept
    in :attr:`errors` instead of printed and forgotten; :meth:`check` raises the first.

    h5py reports them twice, through ``sys.excepthook`` (a traceback) and
    ``sys.unraisablehook`` ("Exception ignored"); both hooks are taken over, and
    anything not from h5py goes on to the previous hook.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.errors: list[BaseException] = []
        self._previous: Any = None
        self._previous_except: Any = None

    def __enter__(self) -> "DeferredErrors":
        self._previous, self._previous_except = sys.unraisablehook, sys.excepthook
        sys.unraisablehook, sys.excepthook = self._unraisable, self._except
        return self

    def __exit__(self, *exc: object) -> None:
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._previous
        if sys.excepthook == self._except:
            sys.excepthook = self._previous_except

    def _unraisable(self, unraisable: Any) -> None:
        where = f"{unraisable.object!r} {unraisable.err_msg or ''}"
        if not self._keep(unraisable.exc_value, "h5py" in where):
            self._previous(unraisable)

    def _except(self, kind: Any, value: Any, tb: Any) -> None:
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        if not self._keep(value, any("h5py" in f for f in frames)):
            self._previous_except(kind, value, tb)

    def _keep(self, exc: BaseException | None, from_h5py: bool) -> bool:
        if exc is None or not (from_h5py or write_errno(exc) is not None):
            return False
        if not any(e is exc for e in self.errors):
            self.errors.append(exc)
        return True

    def check(self) -> None:
        if not self.errors:
            return
        first = self.errors[0]
        err = write_error(first, self.path) or ArtifactError(
            f"writing {self.path} failed ({' '.join(str(first).split())[:160]})", hint=f"check the disk, or {another(self.path, '--output')}"
        )
        raise err from first


#: HDF5 files abandoned after a write failed as h5py freed an object: HDF5 can then
#: neither flush nor close them (it crashes), so they are kept open, never freed.
_ABANDONED: list[Any] = []


def abandon(h5file: Any) -> None:
    """Keep ``h5file`` (an open ``h5py.File`` HDF5 can no longer close) from ever being
    closed: the process ends with :func:`os._exit` instead of HDF5's own clean-up,
    which would crash on it (exit code 2 unless the CLI exits first with its own)."""
    if not _ABANDONED:
        atexit.register(exit_if_abandoned, 2)
    _ABANDONED.append(h5file)


def exit_if_abandoned(code: int) -> None:
    """End the process now (stdio flushed) if an HDF5 file was abandoned; else return."""
    if _ABANDONED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def refuse_link(path: str | Path, *, what: str) -> Path:
    """One-line error when ``path``, a name saetool makes for its own use (``what``), is a symbolic link."""
    p = Path(path)
    if p.is_symlink():
        raise link_refused(p, what)
    return p


def claim_temporary(path: str | Path, *, what: str = "temporary file") -> Path:
    """Make ``path`` (a name saetool creates for its own use) free to create:
    refuse a symbolic link there, remove a stale file or folder."""
    p = refuse_link(path, what=what)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()
    return p


def create_new(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None) -> IO[Any]:
    """Open a file that must not exist yet (``O_EXCL``), never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        raise


def fsync_path(path: str | Path) -> None:
    """Ask the OS to put ``path`` on disk (a late write error surfaces here)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO[Any]]:
    """``with atomic_file(PATH) as fh:`` write ``PATH.partial`` and rename it to
    ``PATH`` once everything written reached the disk. On any error (a full disk
    is one line naming ``PATH``) the partial file is removed and ``PATH`` untouched."""
    target = Path(path)
    tmp = claim_temporary(target.with_name(target.name + PARTIAL_SUFFIX), what="partial output")
    with write_errors_as_one_line(target):
        fh = create_new(tmp, mode, encoding=encoding, newline=newline)
        try:
            try:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fh.close()  # a failed close (a late write error) raises too
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text as UTF-8 with ``\\n`` line ends, or bytes) to ``path`` atomically."""
    if isinstance(data, bytes):
        with atomic_file(path, "wb") as fh:
            fh.write(data)
    else:
        with atomic_file(path, "w", encoding=encoding, newline="\n") as fh:
            fh.write(data)
    return Path(path)
