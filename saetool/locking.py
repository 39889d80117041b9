"""One exclusive, advisory lock file per output, shared by every stage.

``flock`` on ``PATH`` (non-blocking): a second process asking for the same
lock gets an error at once instead of waiting. The file is opened with
``O_NOFOLLOW``: a symbolic link planted at ``PATH`` is refused, never written
through. The lock file holds the owner's
PID and is removed on release. Because a waiting process may have opened the
file just before the owner removed it, a lock counts only if, once held, the
path still names the very file that was locked; otherwise the attempt is
repeated on the new file. A killed owner's lock is released by the kernel; the
file it leaves behind is reused by the next run.

Not the ``filelock`` package: its flock lock leaves ``PATH`` behind on release
(so waiters share one inode), and saetool promises no lock file is left next
to an output; removing it ourselves would bring back the race handled here.
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from saetool.errors import SaetoolError
from saetool.output_options import link_refused


class FileLock:
    """Hold ``path`` exclusively; ``busy()`` builds the error raised when another process does."""

    def __init__(self, path: str | Path, busy: Callable[[], SaetoolError]) -> None:
        self.path = Path(path)
        self.busy = busy
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = self._open()
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                raise self.busy() from None
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()  # the owner removed this file as we locked it: lock the new one
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def _open(self) -> IO[str]:
        """Open (or create) the lock file, never through a symbolic link planted there."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or self.path.is_symlink():
                raise link_refused(self.path, "lock file") from None
            raise
        return os.fdopen(fd, "r+")

    def check(self) -> None:
        """Raise ``busy()`` when another process holds the lock; takes nothing.
        No file (or a link, refused when the lock is taken) counts as free."""
        if not self.path.exists() or self.path.is_symlink():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, IsADirectoryError):
            return
        with os.fdopen(fd) as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise self.busy() from None
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def release(self) -> None:
        if self._fh is None:
            return

        try:
            self.path.unlink(missing_ok=True)  # while still held: nobody can lock the old file and count it
        finally:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def locked(path: str | Path, busy: Callable[[], SaetoolError]) -> Iterator[FileLock]:
    """``with locked(PATH, busy):`` hold ``PATH`` for the block."""
    with FileLock(path, busy) as lock:
        yield lock
