"""``saetool interpret --resume``: SIGKILLed at random points, the continued run equals an uninterrupted one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

from tests.helpers import REPO, assert_clean_error, run_cli

SETTINGS = dict(examples=5, held_out=3, negatives=3, context=8, neighbours=4, bins=8, chunk_rows=32)


def _cli_args(acts, sae, out) -> list[str]:
    s = SETTINGS
    return [
        "interpret", str(acts), "--sae", str(sae), "-o", str(out), "--labeler", "none",
        "--examples", str(s["examples"]), "--held-out", str(s["held_out"]), "--negatives", str(s["negatives"]),
        "--context", str(s["context"]), "--neighbours", str(s["neighbours"]), "--bins", str(s["bins"]),
        "--chunk-rows", str(s["chunk_rows"]), "--checkpoint-every", "1",
    ]


def _start(args: list[str], tmpdir=None) -> tuple[subprocess.Popen, threading.Event, list[str]]:
    """Start the CLI (with ``TMPDIR`` set to ``tmpdir`` if given); the event is set once
    it is working (partial created or resumed)."""
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    proc = subprocess.Popen([sys.executable, "-m", "saetool", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    started, lines = threading.Event(), []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "resuming" in line or "interpret pass" in line:
                started.set()
        started.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, started, lines


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        out["@settings"] = np.array(fh.attrs["settings"])
    return out


def test_resume_after_sigkills_equals_uninterrupted_run(smollm2_acts, smollm2_sae, tmp_path):
    from saetool.interpret.api import InterpretConfig, interpret

    out = tmp_path / "features.h5"
    partial = out.with_name(out.name + ".partial")
    args = _cli_args(smollm2_acts, smollm2_sae, out)
    rng = random.Random(20261122)
    kills = launches = 0
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    while kills < 5 and not out.exists():
        resume = partial.exists()
        proc, started, lines = _start(args + (["--resume"] if resume else []), tmpdir)
        launches += 1
        assert started.wait(120), "".join(lines)
        # the first run: wait for the partial file; afterwards the "resuming" line marks the start
        deadline = time.monotonic() + 60
        while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.05, 1.2))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            assert not out.exists() and partial.exists()
            assert list(tmpdir.iterdir()) == []  # interpret of an activations file makes no temporary folder a kill could leave
        else:
            assert proc.returncode == 0, "".join(lines)
    assert kills == 5, f"the run finished after {kills} kills"
    if not out.exists():
        proc = run_cli(*args, "--resume")
        assert proc.returncode == 0, proc.stderr
        assert "resuming" in proc.stderr
    assert out.exists() and not partial.exists()

    reference = interpret(InterpretConfig(labeler=None, checkpoint_every=1, **SETTINGS), smollm2_acts, smollm2_sae, tmp_path / "reference.h5", progress=False)
    got, want = _datasets(out), _datasets(reference.path)
    assert "checkpoint/slot0/main/top_v" not in got
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_resume_refuses_other_settings_and_nothing_to_resume(smollm2_acts, smollm2_sae, tmp_path):
    out = tmp_path / "f.h5"
    assert_clean_error(run_cli(*_cli_args(smollm2_acts, smollm2_sae, out), "--resume"), "nothing to resume")
    proc, started, lines = _start(_cli_args(smollm2_acts, smollm2_sae, out))
    partial = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + 120
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.5)  # past the first checkpoint
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert partial.exists(), "".join(lines)
    changed = _cli_args(smollm2_acts, smollm2_sae, out)
    changed[changed.index("--examples") + 1] = "6"
    assert_clean_error(run_cli(*changed, "--resume"), "cannot resume", "examples")
    assert partial.exists() and not out.exists()


def _crash_on_read(monkeypatch, n: int) -> None:
    """The n-th chunk read from an activations file raises: a crash mid-run, after n - 1 checkpoints."""
    from saetool.artifacts.activations import ActivationsFile

    real, calls = ActivationsFile.read_finite, [0]

    def read_finite(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise RuntimeError("simulated crash")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ActivationsFile, "read_finite", read_finite)


def test_resume_after_a_crash_equals_an_uninterrupted_run_on_the_tiny_model(tiny_acts, tiny_sae, tmp_path, monkeypatch):
    """The same check in one process, crashing in each pass (pass 1 has 64 chunks of 32 rows here)."""
    from saetool.artifacts.store import partial_path
    from saetool.errors import SaetoolError
    from saetool.interpret.api import InterpretConfig, interpret

    config = InterpretConfig(labeler=None, checkpoint_every=1, **SETTINGS)
    reference = interpret(config, tiny_acts, tiny_sae, tmp_path / "reference.h5", progress=False)
    out = tmp_path / "features.h5"
    for n in (20, 70):  # pass 1, then pass 2 of the resumed run
        with monkeypatch.context() as m:
            _crash_on_read(m, n)
            with pytest.raises(RuntimeError, match="simulated crash"):
                interpret(config, tiny_acts, tiny_sae, out, progress=False, resume=n != 20)
        assert not out.exists() and partial_path(out).exists()
    with pytest.raises(SaetoolError, match="cannot resume .*made with different examples"):
        interpret(InterpretConfig(labeler=None, checkpoint_every=1, **{**SETTINGS, "examples": 6}), tiny_acts, tiny_sae, out, progress=False, resume=True)
    interpret(config, tiny_acts, tiny_sae, out, progress=False, resume=True)
    assert out.exists() and not partial_path(out).exists()
    got, want = _datasets(out), _datasets(reference.path)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
