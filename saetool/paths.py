"""Where saetool keeps converted models and other caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$SAETOOL_CACHE_DIR`` if set, else the platform's user cache folder."""
    env = os.environ.get("SAETOOL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("saetool", appauthor=False))


def models_cache_dir() -> Path:
    return cache_dir() / "models"
