"""Shared helpers for the test suite (run the real CLI in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, input: str | None = None, env: dict[str, str | None] | None = None, cwd: str | Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m saetool ARGS`` as a user would; stdout and stderr captured apart.

    ``env`` entries override the environment; a ``None`` value removes the variable.
    """
    full_env = {**os.environ, **{k: v for k, v in (env or {}).items() if v is not None}}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
    full_env["COLUMNS"] = (env or {}).get("COLUMNS") or "200"  # tables assert on whole rows: never wrap them
    return subprocess.run(
        [sys.executable, "-m", "saetool", *args],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """A one-line error on stderr, the given exit code, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), err
    error_lines = [line for line in lines if line.startswith("error:")]
    assert len(error_lines) == 1, err
    for needle in needles:
        assert needle.lower() in error_lines[0].lower(), (needle, err)
    return error_lines[0]


def install_plugin_package(source: Path, base: Path, env: dict[str, str] | None = None) -> Path:
    """Install a plugin package folder (e.g. ``plugins/saetool-csv``) with pip into
    ``base/site`` (``--target``, no deps, no network) and return that folder, to
    put on ``PYTHONPATH``. Builds from a copy so the checkout collects no build files."""
    import shutil

    src = base / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    target = base / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return target
