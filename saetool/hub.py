"""Is the Hugging Face hub reachable? Asked once, quickly, before anything retries."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

# Deferred imports: `saetool models` and --model resolution import this module; huggingface_hub (its cache lookup about 0.3 s) loads only when its settings or cache are consulted.


def env_true(value: str | None) -> bool:
    """huggingface_hub's reading of a yes/no variable: 1, ON, YES or TRUE, in any case."""
    from huggingface_hub.constants import ENV_VARS_TRUE_VALUES

    return value is not None and value.upper() in ENV_VARS_TRUE_VALUES


def offline_requested() -> bool:
    """Whether the user asked for offline mode, by huggingface_hub's rule (``HF_HUB_OFFLINE``,
    else ``TRANSFORMERS_OFFLINE``) or datasets' (``HF_DATASETS_OFFLINE``), read now:
    the libraries read the variables once, when first imported."""
    return env_true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")) or env_true(os.environ.get("HF_DATASETS_OFFLINE"))


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """True if a TCP connection to the hub endpoint opens within ``timeout`` seconds."""
    if offline_requested():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def in_local_cache(repo_id: str, filename: str = "config.json", repo_type: str = "model") -> bool:
    """Whether ``filename`` of ``repo_id`` is already in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str)
    except Exception:
        return False
