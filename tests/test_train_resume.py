"""Checkpoints and --resume: a crashed run resumed equals an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch

from saetool.errors import SaetoolError
from saetool.train import SampleSettings, TrainConfig, train_sae
from saetool.train.checkpoint import CheckpointDir, CheckpointError, checkpoint_dir_for, load_checkpoint
from saetool.train.synthetic import sparse_dictionary_data, write_activations

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def acts(tmp_path_factory):
    x, _ = sparse_dictionary_data(6000, 16, 48, active=4, seed=2)
    return write_activations(tmp_path_factory.mktemp("resume") / "acts.h5", {HOOK: x}, context_size=20)


def config(arch: str, **kw) -> TrainConfig:
    base = dict(arch=arch, d_sae=64, k=4, lr=3e-3, batch_size=128, steps=40, checkpoint_every=10, log_every=7, shuffle_buffer=512, dead_tokens=640, seed=3, samples=SampleSettings(every=5, per_feature=4, context=6, threshold=0.05, features=0))
    base.update(kw)
    return TrainConfig(**base)


class Crash(RuntimeError):
    pass


def crash_at(step: int):
    def on_step(info):
        if info.step == step:
            raise Crash(f"simulated crash at step {step}")

    return on_step


def artifact_contents(path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path, "r") as fh:
        for group in ("weights", "history", "samples"):
            if group in fh:
                for name, ds in fh[group].items():
                    out[f"{group}/{name}"] = ds[()].tobytes()
    return out


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, acts, arch):
    whole = train_sae(config(arch), [acts], tmp_path / "whole.h5", progress=False)
    out = tmp_path / "resumed.h5"
    with pytest.raises(Crash):
        train_sae(config(arch), [acts], out, progress=False, on_step=crash_at(27))
    assert not out.exists()
    ckpts = CheckpointDir(checkpoint_dir_for(out))
    assert [p.name for p in ckpts.step_dirs()] == ["step_000010", "step_000020"]
    assert (ckpts.root / "best").is_dir()
    resumed = train_sae(config(arch), [acts], out, resume=True, progress=False)
    for name, tensor in whole.sae.state_dict().items():
        assert torch.equal(tensor, resumed.sae.state_dict()[name]), name  # bit for bit
    for col, values in whole.history.items():
        assert np.array_equal(values, resumed.history[col], equal_nan=True), col
    a, b = artifact_contents(tmp_path / "whole.h5"), artifact_contents(out)
    assert a.keys() == b.keys() and "samples/values" in a
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    assert (ckpts.root / "final").is_dir()


def test_resume_refuses_changed_settings_and_missing_checkpoints(tmp_path, acts):
    out = tmp_path / "x.h5"
    with pytest.raises(SaetoolError, match="nothing to resume"):
        train_sae(config("topk"), [acts], out, resume=True, progress=False)
    with pytest.raises(Crash):
        train_sae(config("topk"), [acts], out, progress=False, on_step=crash_at(12))
    with pytest.raises(SaetoolError, match="made with different lr, batch_size"):
        train_sae(config("topk", lr=1e-3, batch_size=64), [acts], out, resume=True, progress=False)
    with pytest.raises(SaetoolError, match="made with different steps"):
        train_sae(config("topk", steps=50), [acts], out, resume=True, progress=False)
    assert (checkpoint_dir_for(out) / "step_000010").is_dir()  # a refused resume leaves the checkpoints alone


def test_a_checkpoint_from_before_the_auxk_window_setting_keeps_its_window(tmp_path, acts):
    """Checkpoints written before ``aux_dead_tokens`` existed trained AuxK on the
    reports' window (``dead_tokens``); a resumed run goes on with it."""
    cfg = config("topk", steps=400, checkpoint_every=100, dead_tokens=None, samples=SampleSettings(features=0))
    out = tmp_path / "old.h5"
    with pytest.raises(Crash):
        train_sae(cfg, [acts], out, progress=False, on_step=crash_at(150))
    fresh = train_sae(cfg, [acts], tmp_path / "fresh.h5", progress=False).training
    assert (fresh["dead_tokens"], fresh["aux_dead_tokens"]) == (12800, 4096)  # a quarter / a sixteenth (at least 4,096) of 51,200 tokens
    meta_path = checkpoint_dir_for(out) / "step_000100" / "state.json"
    meta = json.loads(meta_path.read_text())
    del meta["train_config"]["aux_dead_tokens"], meta["aux_dead_tokens"]
    meta["train_config"]["aux_coeff"] = 1 / 32  # the former default
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SaetoolError, match="made with different aux_coeff"):
        train_sae(cfg, [acts], out, resume=True, progress=False)
    old = dataclasses.replace(cfg, aux_coeff=1 / 32)
    with pytest.raises(Crash):  # interrupted again: the checkpoints it writes carry the window on
        train_sae(old, [acts], out, resume=True, progress=False, on_step=crash_at(250))
    resumed = train_sae(old, [acts], out, resume=True, progress=False).training
    assert (resumed["dead_tokens"], resumed["aux_dead_tokens"]) == (12800, 12800)


@pytest.mark.parametrize(("arch", "d_sae", "former", "now"), [("topk", 64, 1e-3, 1.5e-3), ("relu", 64, 1e-4, 4e-4), ("transcoder", 64, 1e-3, 1e-3), ("topk", 256, 1e-3, 1.5e-3)])
def test_a_checkpoint_from_before_the_encoder_rate_keeps_one_rate_and_the_former_default(tmp_path, acts, arch, d_sae, former, now):
    """Checkpoints written before ``encoder_lr_ratio`` stepped encoder and decoder at one
    rate, the TopK family's default reference then 1e-3 (relu's 1e-4), and short runs
    raised it only above 4x d_in (16x: x2); a resumed run goes on with both."""
    extra = {}
    if arch == "transcoder":  # reads one hook, reconstructs another
        x, _ = sparse_dictionary_data(6000, 16, 48, active=4, seed=2)
        acts = write_activations(tmp_path / "two.h5", {HOOK: x, "blocks.0.hook_mlp_out": 0.5 * x.flip(1)}, context_size=20)
        extra = {"hook": HOOK, "hook_out": "blocks.0.hook_mlp_out"}
    cfg = config(arch, lr=None, steps=60, checkpoint_every=20, d_sae=d_sae, samples=SampleSettings(features=0), **extra)
    scale = (16384 / d_sae) ** 0.5  # the width scaling
    short = 1 if arch == "relu" else 2  # 60 steps: the short-run factor, now at every width
    former_short = 2 if (arch != "relu" and d_sae == 256) else 1  # then only above 4x d_in (d_in 16)
    out = tmp_path / "old.h5"
    with pytest.raises(Crash):
        train_sae(cfg, [acts], out, progress=False, on_step=crash_at(30))
    fresh = train_sae(cfg, [acts], tmp_path / "fresh.h5", progress=False).training
    assert fresh["encoder_lr_ratio"] == pytest.approx(1 / 3 if arch == "topk" else 1.0) and fresh["lr"] == pytest.approx(now * scale * short)
    meta_path = checkpoint_dir_for(out) / "step_000020" / "state.json"
    meta = json.loads(meta_path.read_text())
    del meta["train_config"]["encoder_lr_ratio"], meta["encoder_lr_ratio"], meta["lr"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(Crash):  # interrupted again: the checkpoints it writes carry the rates on
        train_sae(cfg, [acts], out, resume=True, progress=False, on_step=crash_at(50))
    resumed = train_sae(cfg, [acts], out, resume=True, progress=False).training
    assert resumed["encoder_lr_ratio"] == 1.0 and resumed["lr"] == pytest.approx(former * scale * former_short)
    assert json.loads((checkpoint_dir_for(out) / "step_000040" / "state.json").read_text())["encoder_lr_ratio"] == 1.0


def test_a_checkpoint_keeps_its_rates_when_the_defaults_change(tmp_path, acts, monkeypatch):
    from saetool.train.architectures import TopKArchitecture

    cfg = config("topk", lr=None, steps=40, samples=SampleSettings(features=0))
    out = tmp_path / "c.h5"
    with pytest.raises(Crash):
        train_sae(cfg, [acts], out, progress=False, on_step=crash_at(25))
    monkeypatch.setattr(TopKArchitecture, "default_lr", 9e-3)
    monkeypatch.setattr(TopKArchitecture, "encoder_lr_ratio", 0.5)
    resumed = train_sae(cfg, [acts], out, resume=True, progress=False).training
    assert resumed["lr"] == pytest.approx(1.5e-3 * 16 * 2) and resumed["encoder_lr_ratio"] == pytest.approx(1 / 3)
    assert train_sae(cfg, [acts], tmp_path / "new.h5", progress=False).training["encoder_lr_ratio"] == 0.5  # the patch took


def test_checkpoints_are_safetensors_and_json(tmp_path, acts):
    out = tmp_path / "c.h5"
    train_sae(config("topk"), [acts], out, progress=False)
    tensors, meta = load_checkpoint(checkpoint_dir_for(out) / "final")
    assert meta["format"] == "saetool-train-checkpoint" and meta["step"] == 40
    assert {"sae.W_enc", "sae.W_dec", "optim.0.exp_avg", "rng.torch", "dead.since_fired", "samples.values"} <= set(tensors)
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in checkpoint_dir_for(out).rglob("*"))


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good"
    CheckpointDir(tmp_path).save("good", {"a": torch.zeros(2)}, {"step": 1})
    assert load_checkpoint(good)[1]["step"] == 1
    (good / "state.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(good)
    (good / "state.json").write_text(json.dumps({"format": "someone-else", "step": 3}))
    with pytest.raises(CheckpointError, match="not a saetool training checkpoint"):
        load_checkpoint(good)
    (good / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(good)


def test_a_checkpoint_folder_loads_as_its_sae(tmp_path, acts):
    from saetool.sae.io import load_sae

    out = tmp_path / "s.h5"
    result = train_sae(config("batchtopk", samples=None), [acts], out, progress=False)
    final = load_sae(checkpoint_dir_for(out) / "final")
    saved = load_sae(out)
    assert final.cfg.activation == saved.cfg.activation == "jumprelu"
    for name, tensor in saved.state_dict().items():
        assert torch.equal(final.state_dict()[name], tensor), name
    best = load_sae(checkpoint_dir_for(out) / "best")
    assert best.cfg.d_sae == 64 and result.training["best_step"] in (10, 20, 30, 40)


def test_a_run_checkpointed_with_another_batch_resumes_with_it_when_none_is_given(tmp_path, acts):
    """Without --batch-size the batch follows the run's tokens (here 128 rows); a run
    checkpointed with another (the former default of 4,096, or one given) resumes with
    its own and ends as the uninterrupted run."""
    given = config("topk", samples=SampleSettings(features=0), steps=None, num_tokens=40 * 256, batch_size=256)
    whole = train_sae(given, [acts], tmp_path / "whole.h5", progress=False)
    out = tmp_path / "resumed.h5"
    with pytest.raises(Crash):
        train_sae(given, [acts], out, progress=False, on_step=crash_at(27))
    auto = dataclasses.replace(given, batch_size=None)
    assert train_sae(auto, [acts], tmp_path / "fresh.h5", progress=False).training["batch_size"] == 128  # 10,240 tokens
    states = sorted(checkpoint_dir_for(out).glob("step_*/state.json"))
    saved = {p: p.read_text() for p in states}
    for path in states:  # a hand-edited checkpoint without its batch: one line, not a traceback
        meta = json.loads(path.read_text())
        del meta["train_config"]["batch_size"]
        path.write_text(json.dumps(meta))
    with pytest.raises(SaetoolError, match="batch_size"):
        train_sae(auto, [acts], out, resume=True, progress=False)
    for path, text in saved.items():
        path.write_text(text)
    resumed = train_sae(auto, [acts], out, resume=True, progress=False)
    assert resumed.training["batch_size"] == 256 and resumed.training["total_steps"] == 40
    for name, tensor in whole.sae.state_dict().items():
        assert torch.equal(tensor, resumed.sae.state_dict()[name]), name


def test_a_checkpoint_from_before_centring_resumes_uncentred(tmp_path, acts):
    """Checkpoints written before ``apply_b_dec_to_input`` trained SAEs that read the
    input uncentred; a resumed run goes on (and saves) as its checkpoint's SAE did,
    and a new checkpoint refuses a resume with the setting changed."""
    cfg = config("topk", samples=SampleSettings(features=0))
    out = tmp_path / "old.h5"
    with pytest.raises(Crash):
        train_sae(cfg, [acts], out, progress=False, on_step=crash_at(25))
    with pytest.raises(SaetoolError, match="made with different apply_b_dec_to_input"):
        train_sae(dataclasses.replace(cfg, apply_b_dec_to_input=False), [acts], out, resume=True, progress=False)
    states = sorted(checkpoint_dir_for(out).glob("step_*/state.json"))
    assert states
    for path in states:
        meta = json.loads(path.read_text())
        assert meta["sae_config"]["apply_b_dec_to_input"] is True and meta["train_config"]["apply_b_dec_to_input"] is True
        del meta["train_config"]["apply_b_dec_to_input"]
        meta["sae_config"]["apply_b_dec_to_input"] = False
        path.write_text(json.dumps(meta))
    with pytest.raises(Crash):  # interrupted again: the checkpoints it writes record the setting it trains with
        train_sae(cfg, [acts], out, resume=True, progress=False, on_step=crash_at(35))
    newest = json.loads(sorted(checkpoint_dir_for(out).glob("step_*/state.json"))[-1].read_text())
    assert newest["step"] > 20 and newest["train_config"]["apply_b_dec_to_input"] is False
    resumed = train_sae(dataclasses.replace(cfg, apply_b_dec_to_input=False), [acts], out, resume=True, progress=False)
    assert resumed.sae.cfg.apply_b_dec_to_input is False and resumed.training["apply_b_dec_to_input"] is False
    assert train_sae(cfg, [acts], tmp_path / "new.h5", progress=False).sae.cfg.apply_b_dec_to_input is True


def test_a_jumprelu_checkpoint_from_before_the_default_target_keeps_its_coefficient(tmp_path, acts):
    """JumpReLU without a coefficient or target steers to L0 32 now; a checkpoint written
    before that trained at the fixed default coefficient and resumes at it. (A new
    checkpoint resumes steering: test_resume_after_a_crash_equals_an_uninterrupted_run.)"""
    cfg = config("jumprelu", k=None, samples=SampleSettings(features=0))
    out = tmp_path / "old.h5"
    with pytest.raises(Crash):
        train_sae(cfg, [acts], out, progress=False, on_step=crash_at(25))
    states = sorted(checkpoint_dir_for(out).glob("step_*/state.json"))
    assert states
    for path in states:
        meta = json.loads(path.read_text())
        assert meta["train_config"]["target_l0"] == 32 and meta["log_sparsity_coeff"] is not None
        meta["train_config"]["target_l0"] = None  # what a checkpoint from before the default wrote
        meta["log_sparsity_coeff"] = None
        path.write_text(json.dumps(meta))
    resumed = train_sae(cfg, [acts], out, resume=True, progress=False)
    assert resumed.training["target_l0"] is None and resumed.training["sparsity_coeff"] == 1.0
    fresh = train_sae(cfg, [acts], tmp_path / "new.h5", progress=False)
    assert fresh.training["target_l0"] == 32 and fresh.training["sparsity_coeff"] != pytest.approx(1.0)
    given = train_sae(dataclasses.replace(cfg, sparsity_coeff=1.0), [acts], tmp_path / "fixed.h5", progress=False)
    assert given.training["target_l0"] is None and given.training["sparsity_coeff"] == 1.0


def test_a_resumed_jumprelu_run_keeps_the_default_target_its_checkpoint_chose(tmp_path, acts):
    """The default target follows the checklist's L0 range; resuming under another
    checklist keeps the checkpoint's target instead of refusing a target_l0 never given."""
    from saetool.train.config import Targets

    cfg = config("jumprelu", k=None, samples=SampleSettings(features=0))
    out = tmp_path / "sae.h5"
    with pytest.raises(Crash):
        train_sae(cfg, [acts], out, progress=False, on_step=crash_at(25))
    resumed = train_sae(dataclasses.replace(cfg, targets=Targets(l0_min=40, l0_max=60)), [acts], out, resume=True, progress=False)
    assert resumed.training["target_l0"] == 32 and resumed.training["steps"] == 40
    fresh = train_sae(dataclasses.replace(cfg, targets=Targets(l0_min=10, l0_max=20)), [acts], tmp_path / "other.h5", progress=False)
    assert fresh.training["target_l0"] == pytest.approx(14.1)
