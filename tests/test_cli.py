"""The CLI boundary: help, version, completion, one-line errors, exit codes."""

from __future__ import annotations

import json
import re

import pytest

import saetool
from helpers import assert_clean_error, run_cli
from saetool.plugins import PluginHost

BUILTIN_COMMANDS = sorted(PluginHost(load_entry_points=False).collect("commands"))


def test_help_lists_every_builtin_command():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for name in BUILTIN_COMMANDS:
        assert re.search(rf"\b{name}\b", proc.stdout), name


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"saetool {saetool.__version__}"


@pytest.mark.parametrize("command", BUILTIN_COMMANDS)
def test_every_command_has_help_with_an_example(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Example" in proc.stdout
    assert f"saetool {command}" in proc.stdout or "saetool " in proc.stdout


def test_help_does_not_import_heavy_libraries():
    code = "import sys; from saetool.cli.main import build_app; build_app(); print(sorted(m for m in ('torch','transformers','h5py','datasets','transformer_lens','sae_lens') if m in sys.modules))"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shell_completion_script():
    # the shell comes from the argument, not from detecting an ancestor shell process (none under some runners)
    proc = run_cli("--show-completion", "bash", env={"SHELL": "/bin/bash", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "_SAETOOL_COMPLETE" in proc.stdout


def test_unknown_option_is_a_one_line_usage_error():
    proc = run_cli("extract", "--no-such-option")
    line = assert_clean_error(proc, "no such option")
    assert "saetool extract --help" in line


def test_unknown_command():
    proc = run_cli("frobnicate")
    assert_clean_error(proc, "frobnicate")


def test_missing_artifact_is_one_line_and_debug_shows_traceback(tmp_path):
    proc = run_cli("inspect", str(tmp_path / "nope.h5"))
    assert_clean_error(proc, "does not exist")
    proc = run_cli("inspect", str(tmp_path / "nope.h5"), "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_inspect_without_input_or_pipe():
    proc = run_cli("inspect", input="")
    assert_clean_error(proc, "no input artifact")


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_inspect_json_and_manifest_passthrough(tmp_path):
    from test_artifacts import write_sample

    path = write_sample(tmp_path / "a.h5")
    proc = run_cli("inspect", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["kind"] == "activations"
    assert {"name": "tokens/token_ids", "shape": [3], "dtype": "int64"} in info["datasets"]
    assert info["provenance"]["model"] == "m"
    manifest = json.dumps({"path": str(path), "kind": "activations"})
    proc = run_cli("inspect", input=manifest + "\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(path.resolve())  # passes the manifest on
    assert "datasets" in proc.stderr


def test_plugins_json_lists_builtins():
    proc = run_cli("plugins", "--json", env={"SAETOOL_LOAD_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["saetool.builtins.commands"]["registered"]["commands"] == ["extract", "inspect", "models", "plugins", "doctor"]
    assert "bbc-news" in rows["saetool.builtins.corpora"]["registered"]["corpus_sources"]
    assert all(r["builtin"] for r in rows.values())


def test_help_read_from_a_pipe_keeps_whole_option_names():
    """Without a terminal or COLUMNS, rich would lay help out in 80 columns and cut long
    option names (--sparsity-warmup…); help then takes 120 columns."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "saetool", "train", "--help"], capture_output=True, text=True, env=env, timeout=120).stdout
    names = re.findall(r"│ (--[\w-]+…?)", out)
    assert "--sparsity-warmup-steps" in names and "--apply-b-dec-to-input" in names and not [n for n in names if n.endswith("…")]
    assert max(len(line) for line in out.splitlines()) == 120
