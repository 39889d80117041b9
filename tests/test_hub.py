"""Offline mode is read by huggingface_hub's own rule (saetool/hub.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from saetool.hub import offline_requested

VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.mark.parametrize(("env", "offline"), [
    ({}, False),
    ({"HF_HUB_OFFLINE": "1"}, True),
    ({"HF_HUB_OFFLINE": "true"}, True),
    ({"HF_HUB_OFFLINE": "Yes"}, True),
    ({"HF_HUB_OFFLINE": "ON"}, True),
    ({"HF_HUB_OFFLINE": "0"}, False),
    ({"HF_HUB_OFFLINE": "false"}, False),  # saetool used to read any value but "" and "0" as offline
    ({"HF_HUB_OFFLINE": "no"}, False),
    ({"HF_HUB_OFFLINE": "2"}, False),
    ({"TRANSFORMERS_OFFLINE": "1"}, True),
    ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, False),  # HF_HUB_OFFLINE, when set, decides for the hub
    ({"HF_DATASETS_OFFLINE": "1"}, True),
])
def test_offline_follows_huggingface_hubs_rule(monkeypatch, env, offline):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert offline_requested() is offline


@pytest.mark.parametrize("value", ["1", "true", "off", "no", "2", ""])
def test_agrees_with_huggingface_hub_constants(value):
    """huggingface_hub itself, in a fresh interpreter, decides the same (datasets' variable unset)."""
    code = "import huggingface_hub.constants as c; from saetool.hub import offline_requested; print(c.HF_HUB_OFFLINE, offline_requested())"
    env = {k: v for k, v in __import__("os").environ.items() if k not in VARS}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "HF_HUB_OFFLINE": value}, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1], (value, out)
