"""SIGKILL at random points of ``extract``, ``train`` and ``sweep`` (real subprocesses),
then ``--resume``: the finished result equals an uninterrupted run.

Each stage is killed five times in one chain (run, kill, resume, kill, ... resume to
the end). Every kill waits until the run's own files show progress past a seeded
random target (partial file size, checkpoint step, finished cells) and then a seeded
random few milliseconds more, so the kills land at different stages: while batches
are appended, between and during checkpoint writes, between cells.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path
from typing import Callable

import h5py
import pytest

from helpers import CliProcess, run_cli
from saetool.artifacts.store import partial_path
from test_extract import datasets_of
from test_sweep import tiny_config

KILLS = 5


def run_and_kill(args: list[str], progress: Callable[[], float], target: float, delay: float, *, cwd: Path | None = None, timeout: float = 300) -> bool:
    """Run ``saetool ARGS``; SIGKILL it ``delay`` s after ``progress() >= target``.

    Returns whether it was killed (False: it finished first)."""
    proc = CliProcess(args, cwd=cwd)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if progress() >= target:
                time.sleep(delay)
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            return False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_chain(args: list[str], resume_args: list[str], progress: Callable[[], float], targets: list[float], rng: random.Random, *, cwd: Path | None = None) -> list[float]:
    """Kill a run at each target in turn (the first run plain, later ones resumed);
    returns the progress seen right after each kill."""
    seen = []
    for i, target in enumerate(targets):
        killed = run_and_kill(args if i == 0 else [*args, *resume_args], progress, target, rng.uniform(0, 0.03), cwd=cwd)
        assert killed, f"kill {i + 1} came too late (the run finished); make the run longer"
        seen.append(progress())
    return seen


# -- extract ---------------------------------------------------------------------------
@pytest.mark.slow  # launches and SIGKILLs the CLI six times
def test_extract_killed_five_times_then_resumed_is_byte_identical(tmp_path, tiny_gpt2_dir):
    args = ["extract", "--model", str(tiny_gpt2_dir), "--corpus", "bbc-news:tech", "--layers", "0,1", "-n", "12000", "--context-size", "32", "-b", "1"]
    whole = tmp_path / "whole.h5"
    done = run_cli(*args, "-o", str(whole))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed.h5"
    part = partial_path(out)
    full_size = whole.stat().st_size
    rng = random.Random(8)
    targets = sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS))
    seen = kill_chain([*args, "-o", str(out)], ["--resume"], lambda: part.stat().st_size / full_size if part.exists() else 0.0, targets, rng)
    assert not out.exists() and part.exists()
    with h5py.File(part, "r") as fh:  # a killed partial stays a readable, resumable HDF5 file
        assert 0 < int(fh.attrs["n_tokens"]) < 12000
    assert seen == sorted(seen)
    resumed = run_cli(*args, "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert datasets_of(out) == datasets_of(whole)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.h5", "whole.h5"]  # no partial, no lock


# -- train -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_acts(tmp_path_factory) -> Path:
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    x, _ = sparse_dictionary_data(4000, 16, 32, active=3, seed=2)
    return write_activations(tmp_path_factory.mktemp("acts") / "acts.h5", {"blocks.0.hook_resid_post": x}, context_size=20)


def sae_contents(path: Path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path, "r") as fh:
        for group in ("weights", "samples"):
            for name, ds in fh[group].items() if group in fh else ():
                out[f"{group}/{name}"] = ds[()].tobytes()
    return out


def latest_step(checkpoints: Path, total: int) -> float:
    if (checkpoints / "final").is_dir():
        return float(total)
    try:
        names = [p.name for p in checkpoints.iterdir()]
    except FileNotFoundError:
        return 0.0
    steps = [int(m.group(1)) for n in names if (m := re.fullmatch(r"step_(\d+)", n))]
    return float(max(steps, default=0))


@pytest.mark.slow  # launches and SIGKILLs the CLI six times
def test_train_killed_five_times_then_resumed_has_identical_weights(tmp_path, train_acts):
    steps = 600
    args = ["train", str(train_acts), "--d-sae", "32", "--k", "3", "--batch-size", "64", "--steps", str(steps), "--checkpoint-every", "20",
            "--collect-samples", "--sample-every", "50", "--seed", "5"]
    whole = tmp_path / "whole.h5"
    done = run_cli(*args, "-o", str(whole))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed.h5"
    ckpt = tmp_path / "killed.h5.checkpoints"
    rng = random.Random(9)
    targets = sorted(rng.sample(range(20, steps - 40, 20), KILLS))
    seen = kill_chain([*args, "-o", str(out)], ["--resume"], lambda: latest_step(ckpt, steps), [float(t) for t in targets], rng)
    assert not out.exists() and seen == sorted(seen) and seen[-1] < steps
    resumed = run_cli(*args, "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert sae_contents(out) == sae_contents(whole)
    assert (tmp_path / "killed.h5.history.csv").read_text() == (tmp_path / "whole.h5.history.csv").read_text()
    assert not list(tmp_path.glob("killed.h5*.partial")) and not list(tmp_path.glob("killed.h5*.lock"))


# -- sweep -----------------------------------------------------------------------------
SWEEP = """\
name: kill
model: {model}
prompts:
  harm_train: h_train.txt
  harm_test: h_test.txt
  benign: benign.txt
  benign_train: b_train.txt
splits: [harm_test, benign]
max_prompts: 3
vector: {{method: diff-means, positive: harm_train, negative: benign_train}}
layers: [1]
alphas: [0, 1.0, 2.0, 4.0]
interventions: [add]
scale: raw
generation: {{max_new_tokens: 4, batch_size: 4}}
metrics: [refusal, helpfulness, coherence]
"""


@pytest.mark.slow  # launches and SIGKILLs the CLI six times
def test_sweep_killed_five_times_then_rerun_has_the_same_summary(tmp_path, tiny_gpt2_dir):
    cfg = tiny_config(tmp_path, SWEEP.format(model=tiny_gpt2_dir))
    whole = run_cli("sweep", str(cfg), "--output-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    cells = tmp_path / "runs" / "kill" / "cells"
    n_cells = len(list((tmp_path / "whole" / "kill" / "cells").rglob("*.h5")))
    assert n_cells == 8  # 2 splits x (baseline + 3 alphas)

    def finished() -> float:
        return float(len(list(cells.rglob("*.h5")))) if cells.exists() else 0.0

    rng = random.Random(10)
    targets = sorted(rng.sample(range(0, n_cells - 2), KILLS))
    args = ["sweep", str(cfg), "--output-dir", str(tmp_path / "runs")]
    seen = kill_chain(args, [], finished, [float(t) for t in targets], rng)  # rerunning a sweep resumes it
    assert seen == sorted(seen) and seen[-1] < n_cells
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    computed = re.search(r"(\d+) cell\(s\) computed, (\d+) skipped", " ".join(resumed.stderr.split()))
    assert computed and int(computed.group(2)) == seen[-1] and int(computed.group(1)) == n_cells - seen[-1]
    run, ref = tmp_path / "runs" / "kill", tmp_path / "whole" / "kill"
    assert (run / "summary.csv").read_text() == (ref / "summary.csv").read_text()
    assert (run / "completions.csv").read_text() == (ref / "completions.csv").read_text()
    assert not [p for p in run.rglob("*") if p.name.endswith((".partial", ".lock"))]
