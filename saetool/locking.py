"""One exclusive, advisory lock file per output, shared by every stage.

``flock`` on ``PATH`` (non-blocking): a second process asking for the same
lock gets an error at once instead of waiting. The lock file holds the owner's
PID and is removed on release. Because a waiting process may have opened the
file just before the owner removed it, a lock counts only if, once held, the
path still names the very file that was locked; otherwise the attempt is
repeated on the new file. A killed owner's lock is released by the kernel; the
file it leaves behind is reused by the next run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from saetool.errors import SaetoolError


class FileLock:
    """Hold ``path`` exclusively; ``busy()`` builds the error raised when another process does."""

    def __init__(self, path: str | Path, busy: Callable[[], SaetoolError]) -> None:
        self.path = Path(path)
        self.busy = busy
        self._fh = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = open(self.path, "a+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                raise self.busy() from None
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(self.path))
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

    def release(self) -> None:
        if self._fh is None:
            return
        import fcntl

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
