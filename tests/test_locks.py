"""Two processes writing the same output: the second is refused with a one-line
message, and the first finishes with the same result as a run that had no
competition (real ``saetool`` processes).

The first process is paused (SIGSTOP) as soon as it holds its lock, so the second
always arrives while the first is mid-write, however slow the machine is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import CliProcess, assert_clean_error, run_cli
from saetool.artifacts.store import partial_path
from test_extract import datasets_of
from test_kill_resume import SWEEP, sae_contents
from test_sweep import tiny_config


def holds_lock(pid: int, lock: Path) -> bool:
    """Whether process ``pid`` holds an flock on ``lock`` (read from /proc/locks, without touching the lock)."""
    try:
        inode = os.stat(lock).st_ino
    except FileNotFoundError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[4] == str(pid) and fields[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def start_and_pause_when(args: list[str], lock: Path, timeout: float = 300, written: Path | None = None) -> CliProcess:
    """Start ``saetool ARGS`` and SIGSTOP it as soon as it holds ``lock`` (and, with
    ``written``, once that file exists: a run takes its lock before it creates its output)."""
    proc = CliProcess(args)
    deadline = time.monotonic() + timeout
    while not (holds_lock(proc.pid, lock) and (written is None or written.exists())):
        assert proc.poll() is None, f"the first run ended before taking its lock: {proc.communicate()[1]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGSTOP)
    return proc


def resume_and_finish(proc: CliProcess) -> subprocess.CompletedProcess:
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def paused():
    procs: list[CliProcess] = []
    yield procs
    for proc in procs:  # never leave a stopped process behind
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_second_extract_is_refused_and_the_first_is_intact(tmp_path, tiny_gpt2_dir, paused):
    args = ["extract", "--model", str(tiny_gpt2_dir), "--corpus", "bbc-news:tech", "--layers", "1", "-n", "6000", "--context-size", "32", "-b", "1"]
    out = tmp_path / "acts.h5"
    first = start_and_pause_when([*args, "-o", str(out)], out.with_name("acts.h5.lock"), written=partial_path(out))
    paused.append(first)
    second = run_cli(*args, "-o", str(out))
    line = assert_clean_error(second, "another saetool process is writing", "acts.h5.lock", "choose another --output")
    assert line == f"error: another saetool process is writing {out} (lock {out}.lock); wait for it to finish, or choose another --output"
    assert partial_path(out).exists() and not out.exists()  # the refused run touched nothing
    again = run_cli(*args, "-o", str(out), "--resume")  # not even a resume gets in
    assert_clean_error(again, "another saetool process is writing")
    done = resume_and_finish(first)
    assert done.returncode == 0, done.stderr
    alone = run_cli(*args, "-o", str(tmp_path / "alone.h5"))
    assert alone.returncode == 0, alone.stderr
    assert datasets_of(out) == datasets_of(tmp_path / "alone.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5", "alone.h5"]


def test_second_train_is_refused_and_the_first_is_intact(tmp_path, paused):
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    x, _ = sparse_dictionary_data(3000, 16, 32, active=3, seed=4)
    acts = write_activations(tmp_path / "acts.h5", {"blocks.0.hook_resid_post": x}, context_size=20)
    args = ["train", str(acts), "--d-sae", "32", "--k", "3", "--batch-size", "64", "--steps", "300", "--checkpoint-every", "50", "--seed", "1"]
    out = tmp_path / "sae.h5"
    first = start_and_pause_when([*args, "-o", str(out)], tmp_path / "sae.h5.checkpoints.lock")
    paused.append(first)
    for extra in ([], ["--resume"], ["--overwrite"]):
        second = run_cli(*args, "-o", str(out), *extra)
        line = assert_clean_error(second, "another saetool process is training into", "choose another --output")
        assert line == f"error: another saetool process is training into {out}.checkpoints; wait for it to finish, or choose another --output"
    done = resume_and_finish(first)
    assert done.returncode == 0, done.stderr
    alone = run_cli(*args, "-o", str(tmp_path / "alone.h5"))
    assert alone.returncode == 0, alone.stderr
    assert sae_contents(out) == sae_contents(tmp_path / "alone.h5")
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob("*.partial"))


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_second_sweep_is_refused_and_the_first_is_intact(tmp_path, tiny_gpt2_dir, paused):
    cfg = tiny_config(tmp_path, SWEEP.format(model=tiny_gpt2_dir))
    run_dir = tmp_path / "runs" / "kill"
    args = ["sweep", str(cfg), "--output-dir", str(tmp_path / "runs")]
    first = start_and_pause_when(args, run_dir / ".sweep.lock")
    paused.append(first)
    for extra in ([], ["--overwrite"]):
        second = run_cli(*args, *extra)
        line = assert_clean_error(second, "another sweep is running")
        assert line == f"error: another sweep is running in {run_dir}; wait for it, or use another name"
    done = resume_and_finish(first)
    assert done.returncode == 0, done.stderr
    alone = run_cli("sweep", str(cfg), "--output-dir", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    assert (run_dir / "summary.csv").read_text() == (tmp_path / "alone" / "kill" / "summary.csv").read_text()
    assert not (run_dir / ".sweep.lock").exists()
