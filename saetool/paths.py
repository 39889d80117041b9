"""Where saetool keeps converted models and other caches."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """``$SAETOOL_CACHE_DIR`` if set, else the platform's user cache folder."""
    env = os.environ.get("SAETOOL_CACHE_DIR")
    if env:
        return Path(env).expanduser()

    return Path(user_cache_dir("saetool", appauthor=False))


def models_cache_dir() -> Path:
    return cache_dir() / "models"


def special_file_kind(path: str | Path) -> str | None:
    """What ``path`` is when it exists but is neither a regular file nor a folder
    (``"character device"``, ``"FIFO"``, ``"socket"``, ``"block device"``), else None.

    Reading such a path never ends (/dev/zero) or blocks (a FIFO), so inputs are refused.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return None
