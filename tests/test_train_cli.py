"""`saetool train` end to end: dictionary recovery, pipes, resume, and bad input."""

from __future__ import annotations

import json
import re
import shutil

import h5py
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.train import TrainConfig, train_sae
from saetool.train.synthetic import sparse_dictionary_data, write_activations

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def dictionary_file(tmp_path_factory):
    """Activations made from a known dictionary: 64 unit directions in 32 dimensions
    (more features than dimensions), sparse non-negative codes."""
    x, dictionary = sparse_dictionary_data(60000, 32, 64, active=4, seed=1)
    path = write_activations(tmp_path_factory.mktemp("dict") / "acts.h5", {HOOK: x}, context_size=32)
    return path, dictionary


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    x, _ = sparse_dictionary_data(3000, 16, 32, active=3, seed=2)
    return write_activations(tmp_path_factory.mktemp("small") / "small.h5", {HOOK: x}, context_size=20)


def leftovers(out) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name))


def test_topk_recovers_the_true_dictionary_from_a_pipe(tmp_path, dictionary_file):
    path, dictionary = dictionary_file
    manifest = json.dumps({"path": str(path), "kind": "activations"}) + "\n"
    out = tmp_path / "sae.h5"
    proc = run_cli(
        # 96 latents for the 64 true directions: a few spare ones, not so many that the
        # spares (dead once AuxK has moved them off the dictionary) fail "dead < 10%"
        "train", "--arch", "topk", "--d-sae", "96", "--k", "4", "--batch-size", "256", "--lr", "3e-3", "--steps", "1200",
        "--checkpoint-every", "400", "--target-l0", "3-5", "--target-mse", "0.5", "-o", str(out), input=manifest,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["kind"] == "sae" and record["path"] == str(out.resolve()) and record["d_sae"] == 96
    assert record["checklist_passed"] is True
    assert "validation checklist" in proc.stderr and "pass" in proc.stderr
    said = re.search(r"\((\d+) training tokens in 1 file\(s\); ([\d.]+) passes over them: more distinct tokens", " ".join(proc.stderr.split()))
    assert said and float(said.group(2)) == pytest.approx(1200 * 256 / int(said.group(1)), abs=0.05)

    from saetool.sae.io import read_sae_artifact

    with read_sae_artifact(out) as art:
        sae = art.sae()
        history = art.history
        training = art.training
    decoder = sae.W_dec.detach() / sae.W_dec.detach().norm(dim=1, keepdim=True)
    best_cosine = (dictionary @ decoder.T).max(dim=1).values
    assert float(best_cosine.mean()) >= 0.9, best_cosine
    assert training["steps"] == 1200 and training["k"] == 4 and [c["passed"] for c in training["checklist"] if c["passed"] is not None] == [True, True, True, True]
    csv = (tmp_path / "sae.h5.history.csv").read_text().splitlines()
    assert csv[0].split(",")[:8] == ["step", "tokens", "loss", "scaled_mse", "explained_variance", "l0", "dead_fraction_train", "lr"]
    assert len(csv) - 1 == len(history) and history["scaled_mse"].iloc[-1] < history["scaled_mse"].iloc[0]
    assert sorted(p.name for p in (tmp_path / "sae.h5.checkpoints").iterdir()) == ["best", "final", "step_000400", "step_000800"]


def test_resume_from_the_cli_finishes_with_the_same_weights(tmp_path, small_file):
    args = ["train", str(small_file), "--d-sae", "32", "--k", "3", "--batch-size", "64", "--steps", "30", "--checkpoint-every", "10", "--collect-samples", "--sample-every", "4"]
    first = run_cli(*args, "-o", str(tmp_path / "a.h5"))
    assert first.returncode == 0, first.stderr
    # what a crash after step 20 leaves behind: step checkpoints only, no output
    shutil.copytree(tmp_path / "a.h5.checkpoints", tmp_path / "b.h5.checkpoints")
    for name in ("final", "best", "step_000020"):
        shutil.rmtree(tmp_path / "b.h5.checkpoints" / name)
    resumed = run_cli(*args, "-o", str(tmp_path / "b.h5"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and "step 10 of 30" in resumed.stderr
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        for group in ("weights", "samples"):
            for name in fa[group]:
                assert fa[group][name][()].tobytes() == fb[group][name][()].tobytes(), name


@pytest.mark.parametrize(
    ("make", "extra", "needles"),
    [
        ("nan", [], ["NaN/inf activations", "2 row(s): 5, 1234"]),
        ("empty", [], ["holds no activations"]),
        ("ok", ["--k", "40"], ["--k must be between 1 and d_sae=32"]),
        ("ok", ["--hook", "blocks.7.hook_mlp_out"], ["has no activations for hook 'blocks.7.hook_mlp_out'"]),
        ("ok", ["--arch", "nope"], ["unknown sae architecture 'nope'"]),
        ("ok", ["--device", "cuda:9"], ["cuda"]),
    ],
)
def test_bad_input_is_a_one_line_error_and_leaves_nothing(tmp_path, make, extra, needles):
    x = torch.randn(2000, 16)
    if make == "nan":
        x[5, 3] = float("nan")
        x[1234, 0] = float("-inf")
    if make == "empty":
        x = x[:0]
    path = write_activations(tmp_path / "acts.h5", {HOOK: x})
    out = tmp_path / "sae.h5"
    proc = run_cli("train", str(path), "--d-sae", "32", "--k", "4", "--batch-size", "64", "--steps", "20", "--checkpoint-every", "5", *extra, "-o", str(out))
    assert_clean_error(proc, *needles)
    assert leftovers(out) == []
    assert proc.stdout == ""


def test_resume_with_other_activations_and_corrupt_checkpoints(tmp_path, small_file):
    out = tmp_path / "sae.h5"
    base = ["--d-sae", "32", "--k", "3", "--batch-size", "64", "--steps", "20", "--checkpoint-every", "10", "-o", str(out)]
    train_sae(TrainConfig(arch="topk", d_sae=32, k=3, batch_size=64, steps=20, checkpoint_every=10), [small_file], out, progress=False)
    out.unlink()
    shutil.rmtree(tmp_path / "sae.h5.checkpoints" / "final")
    narrow = write_activations(tmp_path / "narrow.h5", {HOOK: torch.randn(2000, 12)})
    assert_clean_error(run_cli("train", str(narrow), *base, "--resume"), "checkpoint's SAE expects d_in=16 but the activations have d=12")

    state = tmp_path / "sae.h5.checkpoints" / "step_000010" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    assert_clean_error(run_cli("train", str(small_file), *base, "--resume"), "is corrupt")
    (state.parent / "state.json").write_text(json.dumps({"format": "other-tool", "step": 10}))
    assert_clean_error(run_cli("train", str(small_file), *base, "--resume"), "not a saetool training checkpoint")
    assert not out.exists()
    assert (tmp_path / "sae.h5.checkpoints" / "step_000010").exists()  # a refused resume deletes nothing


def test_init_from_checks_d_in_before_any_work(tmp_path, small_file):
    pretrained = tmp_path / "pre.h5"
    train_sae(TrainConfig(arch="topk", d_sae=32, k=3, batch_size=64, steps=10), [small_file], pretrained, progress=False)
    narrow = write_activations(tmp_path / "narrow.h5", {HOOK: torch.randn(500, 12)})
    out = tmp_path / "sae.h5"
    proc = run_cli("train", str(narrow), "--init-from", str(pretrained), "--k", "3", "--steps", "5", "-o", str(out))
    assert_clean_error(proc, "expects d_in=16", "d=12")
    assert leftovers(out) == []
    other_hook = write_activations(tmp_path / "other.h5", {"blocks.5.hook_resid_post": torch.randn(500, 16)})
    assert_clean_error(run_cli("train", str(other_hook), "--init-from", str(pretrained), "-o", str(out)), "reads blocks.0.hook_resid_post")
    # a matching file continues from the pretrained weights
    ok = run_cli("train", str(small_file), "--init-from", str(pretrained), "--k", "3", "--batch-size", "64", "--steps", "10", "--lr", "0", "-o", str(out))
    assert ok.returncode == 0, ok.stderr
    from saetool.sae.io import load_sae

    a, b = load_sae(pretrained), load_sae(out)
    assert torch.allclose(a.W_dec, b.W_dec, atol=1e-5) and torch.allclose(a.W_enc, b.W_enc, rtol=1e-4, atol=1e-5)


def test_init_from_keeps_the_pretrained_function_centred_or_not(tmp_path, small_file):
    """``--init-from`` continues the pretrained SAE's function whether the run subtracts
    ``b_dec`` from the input or not (``b_enc`` absorbs the difference)."""
    from saetool.sae.io import load_sae

    x = torch.randn(64, 16) * 3 + 5
    for pretrained_centred in (True, False):
        pretrained = tmp_path / f"pre-{pretrained_centred}.h5"
        train_sae(TrainConfig(arch="topk", d_sae=32, k=3, batch_size=64, steps=10, apply_b_dec_to_input=pretrained_centred), [small_file], pretrained, progress=False)
        out = tmp_path / f"sae-{pretrained_centred}.h5"
        flag = "--no-apply-b-dec-to-input" if pretrained_centred else "--apply-b-dec-to-input"
        ok = run_cli("train", str(small_file), "--init-from", str(pretrained), "--k", "3", "--batch-size", "64", "--steps", "5", "--lr", "0", flag, "-o", str(out))
        assert ok.returncode == 0, ok.stderr
        a, b = load_sae(pretrained), load_sae(out)
        assert (a.cfg.apply_b_dec_to_input, b.cfg.apply_b_dec_to_input) == (pretrained_centred, not pretrained_centred)
        with torch.no_grad():
            assert torch.allclose(a.encode(x), b.encode(x), rtol=1e-4, atol=1e-4)


def test_a_run_that_repeats_its_tokens_says_how_often():
    from saetool.train.api import passes_note

    assert passes_note(65536, 7940) == "; 8.3 passes over them: more distinct tokens (a longer extract) train further than more passes"
    assert passes_note(8000, 7940) == "" and passes_note(100, 0) == ""
