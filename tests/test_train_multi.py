"""`saetool train --hooks`: several SAEs from one pass, each identical to its one-hook run."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.errors import SaetoolError
from saetool.sae.io import read_sae_artifact
from saetool.sae.sets import expand_sae_paths, read_sae_set
from saetool.train import TrainConfig, train_sae
from saetool.train import multi
from saetool.train.multi import train_saes
from saetool.train.synthetic import sparse_dictionary_data, write_activations

HOOKS = [f"blocks.{i}.hook_resid_post" for i in range(3)]
CONFIG = TrainConfig(arch="topk", k=4, d_sae=32, batch_size=64, steps=20, checkpoint_every=8, log_every=4, val_tokens=128, shuffle_buffer=256)


@pytest.fixture(scope="module")
def acts(tmp_path_factory):
    data = {h: sparse_dictionary_data(1600, 16, 40, active=3, seed=i)[0] * (i + 1) for i, h in enumerate(HOOKS)}
    return write_activations(tmp_path_factory.mktemp("multi") / "acts.h5", data, context_size=16)


def weights(path):
    with read_sae_artifact(path) as art:
        return art.weights()


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture(scope="module")
def full_set(acts, tmp_path_factory):
    return train_saes(CONFIG, [acts], "all", tmp_path_factory.mktemp("set") / "set", progress=False)


def test_each_sae_of_a_set_is_its_one_hook_run_bit_for_bit(acts, full_set, tmp_path):
    assert full_set.hooks == HOOKS
    members = read_sae_set(full_set.index)
    assert [m.hook for m in members] == HOOKS and [m.layer for m in members] == [0, 1, 2]
    assert expand_sae_paths([full_set.index.parent]) == [m.path for m in members]
    for hook, member in zip(HOOKS, members):
        single = train_sae(replace(CONFIG, hook=hook), [acts], tmp_path / f"{hook}.h5", progress=False)
        assert_same_weights(member.path, single.path)
        with read_sae_artifact(member.path) as art:
            assert art.config.hook == hook
            assert art.training["init_seed"] == single.training["init_seed"]
    seeds = {r.training["init_seed"] for r in full_set.results}
    assert len(seeds) == 3  # one seed per hook, derived from the base seed


def test_resume_continues_every_sae_even_from_different_steps(acts, full_set, tmp_path):
    out = tmp_path / "set"

    def stop(step):
        if step == 17:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_saes(CONFIG, [acts], HOOKS, out, progress=False, on_step=stop)
    lagging = out / f"sae-topk-{HOOKS[1]}.h5.checkpoints" / "step_000016"
    assert lagging.is_dir()
    shutil.rmtree(lagging)  # as if killed between two SAEs' checkpoints: this one resumes from step 8
    resumed = train_saes(CONFIG, [acts], HOOKS, out, progress=False, resume=True)
    for a, b in zip(resumed.results, full_set.results):
        assert_same_weights(a.path, b.path)


def test_a_set_that_does_not_fit_is_refused_in_one_line(acts, tmp_path, monkeypatch):
    monkeypatch.setattr(multi, "available_memory", lambda device: 1 << 10)
    with pytest.raises(SaetoolError, match=r"training 2 SAEs at once needs about 0.3 MiB \(0.2 MiB per SAE\) but 0.0 MiB is available on cpu") as err:
        train_saes(CONFIG, [acts], HOOKS[:2], tmp_path / "set", progress=False)
    assert "fewer --hooks" in (err.value.hint or "")
    assert not (tmp_path / "set").exists()  # refused before anything is written
    per = multi.estimate_peak_bytes(CONFIG, 16, 32)
    assert per["state"] == 4 * 4 * (2 * 16 * 32 + 2 * 32 + 16)  # parameters, gradients, Adam's two moments
    assert per["data"] == (256 + 256 + 128 + 20 * 64) * 16 * 4  # shuffle buffer + a chunk, held-out rows, start-up rows


def test_cli_pipes_one_manifest_for_the_set(acts, tmp_path):
    proc = run_cli("train", str(acts), "--hooks", ",".join(HOOKS[:2]), "-o", str(tmp_path / "set"), "--k", "4", "--d-sae", "32", "-b", "64", "--steps", "6", "--val-tokens", "64", "--shuffle-buffer", "256")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["kind"] == "sae-set" and record["hooks"] == HOOKS[:2]
    err = " ".join(proc.stderr.split())
    for h in HOOKS[:2]:  # 6 steps: each SAE's short-run warning names its hook; the summary says what its figures are over
        assert f"{h}: this run looks too short to converge" in err
        assert re.search(re.escape(h) + r": FVU [0-9.]+, L0 [0-9.]+ \(on the [0-9,]+ held-out rows\), never active there [0-9.]+%, dead in training [0-9.]+%", err)
    assert [json.loads(json.dumps(p)) for p in record["saes"]] == [str(tmp_path / "set" / f"sae-topk-{h}.h5") for h in HOOKS[:2]]
    assert_clean_error(run_cli("train", str(acts), "--hooks", "blocks.9.hook_resid_post", "-o", str(tmp_path / "x")), "no hook 'blocks.9.hook_resid_post'")


def test_a_command_needing_one_sae_names_the_sets_members(full_set):
    from saetool.sae.io import load_sae

    with pytest.raises(SaetoolError, match=r"is a set of 3 SAEs \(blocks.0.hook_resid_post, blocks.1.hook_resid_post, blocks.2.hook_resid_post\)") as err:
        load_sae(full_set.index.parent)
    assert "sae-topk-blocks.0.hook_resid_post.h5" in (err.value.hint or "")
