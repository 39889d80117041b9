"""Shared helpers for the test suite (run the real CLI in a process of its own)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Third-party modules a forked CLI run finds already imported (see :func:`run_cli`):
#: importing them costs about 3 CPU-seconds per fresh ``python -m saetool``.
PRELOAD = ["torch", "transformers", "transformers.modeling_utils", "transformers.generation", "transformers.models.auto.modeling_auto",
           "transformers.models.llama.modeling_llama", "transformers.models.gpt2.modeling_gpt2", "h5py", "numpy", "scipy.stats",
           "pandas", "safetensors.torch", "rich.console", "rich.progress", "typer", "pluggy", "yaml", "pydantic"]
#: Environment variables the CLI reads when it runs (not when a module is imported), so a
#: forked run honours them; any other override (PYTHONPATH, HF_*, OMP_*...) takes a fresh interpreter.
RUNTIME_ENV = frozenset({"COLUMNS", "LINES", "TERM", "NO_COLOR", "FORCE_COLOR", "SAETOOL_LOAD_PLUGINS", "SAETOOL_DEBUG",
                         "SAETOOL_CACHE_DIR", "SHELL", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"})


def run_cli(*args: str, input: str | None = None, env: dict[str, str | None] | None = None, cwd: str | Path | None = None,
            timeout: float = 600, fresh: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m saetool ARGS`` as a user would; stdout and stderr captured apart.

    ``env`` entries override the environment; a ``None`` value removes the variable.
    The run is a process of its own (see :class:`CliProcess`).
    """
    proc = CliProcess(list(args), input=input, env=env, cwd=cwd, fresh=fresh)
    out, err = proc.communicate(timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class CliProcess:
    """``python -m saetool ARGS`` started in a process of its own, with a small
    ``subprocess.Popen``-like interface (``pid``, ``poll``, ``wait``, ``kill``, ``communicate``).

    The process is forked from a server that has torch and transformers imported
    (milliseconds instead of about 3 CPU-seconds per run), or, with ``fresh=True`` or an
    ``env`` override outside :data:`RUNTIME_ENV`, a new interpreter. Its streams go
    through files, so a stopped or killed run never blocks on a full pipe.
    """

    def __init__(self, args: list[str], *, input: str | None = None, env: dict[str, str | None] | None = None,
                 cwd: str | Path | None = None, fresh: bool = False) -> None:
        full_env = {**os.environ, **{k: v for k, v in (env or {}).items() if v is not None}}
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
        full_env["COLUMNS"] = (env or {}).get("COLUMNS") or "200"  # tables assert on whole rows: never wrap them
        self.args = [sys.executable, "-m", "saetool", *args]
        self.returncode: int | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="saetool-cli-")
        stdin, self._out, self._err = (os.path.join(self._tmp.name, name) for name in ("stdin", "stdout", "stderr"))
        Path(stdin).write_text(input or "", encoding="utf-8")
        Path(self._out).touch()
        Path(self._err).touch()
        stdin = stdin if input is not None else os.devnull
        cwd = str(cwd if cwd is not None else os.getcwd())
        if fresh or not set(env or {}) <= RUNTIME_ENV or os.environ.get("SAETOOL_TEST_FRESH_CLI"):
            with open(stdin, "rb") as i, open(self._out, "wb") as o, open(self._err, "wb") as e:
                self._popen: subprocess.Popen | None = subprocess.Popen(self.args, stdin=i, stdout=o, stderr=e, env=full_env, cwd=cwd)
            self._child = None
        else:
            self._popen = None
            self._child = _fork_server().Process(target=_cli_child, args=(list(args), full_env, cwd, stdin, self._out, self._err))
            self._child.start()
        self.pid: int = self._popen.pid if self._popen is not None else self._child.pid  # type: ignore[union-attr]

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._popen.poll() if self._popen is not None else self._child.exitcode  # type: ignore[union-attr]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            self.returncode = self._popen.wait(timeout)
        else:
            self._child.join(timeout)  # type: ignore[union-attr]
            if self.poll() is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end (killing the run on ``timeout``, as ``subprocess.run`` does) and
        return its stdout and stderr."""
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise
        out, err = (Path(p).read_bytes().decode("utf-8") for p in (self._out, self._err))
        self._tmp.cleanup()
        return out, err


@functools.cache
def _fork_server() -> multiprocessing.context.BaseContext:
    """The fork server's context (the server starts with the first run and preloads :data:`PRELOAD`)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _cli_child(args: list[str], env: dict[str, str], cwd: str, stdin: str, stdout: str, stderr: str) -> None:
    """The forked child: the caller's streams (files), then :func:`run_saetool_here`."""
    for fd, path, flags in ((0, stdin, os.O_RDONLY), (1, stdout, os.O_WRONLY), (2, stderr, os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    os._exit(run_saetool_here(args, env, cwd))


def run_saetool_here(args: list[str], env: dict[str, str], cwd: str) -> int:
    """``python -m saetool ARGS`` in this (freshly forked) process, on file descriptors
    0-2 as they are, in ``cwd`` with exactly ``env``; returns the exit code the
    interpreter would end with (stdio flushed, exit handlers run)."""
    import atexit
    import runpy
    import traceback

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    sys.argv = ["saetool", *args]
    code: object = 0
    try:
        runpy.run_module("saetool", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # what the interpreter would print before exiting 1
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # as the interpreter does on its way out (saetool's own may end the process)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe: the interpreter would say so and carry on exiting
            pass
    return code


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
