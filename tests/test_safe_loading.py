"""No pickle of user files: a malicious pickle is refused everywhere saetool takes a
file or folder, with a one-line error, and its payload never runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, assert_clean_error, run_cli

HOOK = "blocks.1.hook_resid_post"


class Payload:
    """Unpickling this opens (creates) ``marker``: code running from a data file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def evil_pickle(path: Path, marker: Path) -> Path:
    """A torch checkpoint (zip + pickle) with a tensor and the payload."""
    torch.save({"W_dec": torch.zeros(4, 4), "hook": Payload(marker)}, path)
    return path


def test_the_payload_is_live(tmp_path):
    """Control: loading the file the unsafe way runs the payload (so the tests below can fail)."""
    marker = tmp_path / "ran"
    path = evil_pickle(tmp_path / "x.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()
    np.save(tmp_path / "x.npy", np.array([Payload(tmp_path / "ran2")], dtype=object), allow_pickle=True)
    np.load(tmp_path / "x.npy", allow_pickle=True)
    assert (tmp_path / "ran2").exists()


@pytest.fixture(scope="module")
def sae_files(tmp_path_factory) -> Path:
    """A real SAE artifact, its SAELens export, and the activations it was trained on."""
    from saetool.train import TrainConfig, train_sae
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    d = tmp_path_factory.mktemp("sae")
    x, _ = sparse_dictionary_data(1000, 64, 32, active=3, seed=1)
    write_activations(d / "acts.h5", {HOOK: x}, context_size=20)
    train_sae(TrainConfig(arch="topk", d_sae=32, k=3, batch_size=64, steps=10, checkpoint_every=5), [d / "acts.h5"], d / "sae.h5", progress=False)
    assert run_cli("export", str(d / "sae.h5"), "-o", str(d / "saelens")).returncode == 0
    return d


def _sae_folder_with_pt(d: Path, files: Path, marker: Path) -> list[str]:
    (d / "sae").mkdir()
    shutil.copy(files / "saelens" / "cfg.json", d / "sae" / "cfg.json")
    evil_pickle(d / "sae" / "sae_weights.pt", marker)
    return ["export", str(d / "sae"), "-o", str(d / "out")]


def _saelens_weights_are_a_pickle(d: Path, files: Path, marker: Path) -> list[str]:
    shutil.copytree(files / "saelens", d / "sae")
    evil_pickle(d / "sae" / "sae_weights.safetensors", marker)
    return ["vector", "from-sae", str(d / "sae"), "--feature", "0", "-o", str(d / "v.h5")]


def _sparsify_weights_are_a_pickle(d: Path, files: Path, marker: Path) -> list[str]:
    run = d / "sparsify-run"
    (run / "layers.1").mkdir(parents=True)
    (run / "layers.1" / "cfg.json").write_text(json.dumps({"activation": "topk", "k": 3, "num_latents": 32, "d_in": 64}))
    evil_pickle(run / "layers.1" / "sae.safetensors", marker)
    evil_pickle(run / "state.pt", marker)  # a sparsify run's trainer state is a pickle: never read
    return ["train", str(files / "acts.h5"), "--init-from", str(run), "-o", str(d / "out.h5")]


def _checkpoint_is_a_pickle(d: Path, files: Path, marker: Path) -> list[str]:
    shutil.copytree(files / "sae.h5.checkpoints", d / "out.h5.checkpoints")
    shutil.rmtree(d / "out.h5.checkpoints" / "final")
    for step in (d / "out.h5.checkpoints").glob("step_*"):
        evil_pickle(step / "state.safetensors", marker)
    return ["train", str(files / "acts.h5"), "--d-sae", "32", "--k", "3", "--batch-size", "64", "--steps", "10", "--checkpoint-every", "5", "-o", str(d / "out.h5"), "--resume"]


def _checkpoint_as_init(d: Path, files: Path, marker: Path) -> list[str]:
    shutil.copytree(files / "sae.h5.checkpoints" / "best", d / "best")
    evil_pickle(d / "best" / "state.safetensors", marker)
    return ["train", str(files / "acts.h5"), "--init-from", str(d / "best"), "-o", str(d / "out.h5")]


def _dictionary_learning_ae_pt(d: Path, files: Path, marker: Path) -> list[str]:
    (d / "trainer_0").mkdir()
    (d / "trainer_0" / "config.json").write_text(json.dumps({"trainer": {"dict_class": "AutoEncoder", "layer": 1}}))
    evil_pickle(d / "trainer_0" / "ae.pt", marker)
    return ["export", str(d / "trainer_0"), "-o", str(d / "out")]


def _vector_pt(d: Path, files: Path, marker: Path) -> list[str]:
    return ["vector", "import", str(evil_pickle(d / "v.pt", marker)), "--layer", "1", "-o", str(d / "v.h5")]


def _vector_pth_steer(d: Path, files: Path, marker: Path) -> list[str]:
    (d / "p.txt").write_text("Hello.\n")
    return ["steer", str(evil_pickle(d / "v.pth", marker)), "--layer", "1", "--prompts", str(d / "p.txt"), "-o", str(d / "s.h5")]


def _vector_npy(d: Path, files: Path, marker: Path) -> list[str]:
    np.save(d / "v.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return ["vector", "import", str(d / "v.npy"), "--layer", "1", "-o", str(d / "v.h5")]


def _model_bin(d: Path, files: Path, marker: Path, tiny: Path) -> list[str]:
    (d / "model").mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, d / "model" / name)
    evil_pickle(d / "model" / "pytorch_model.bin", marker)
    return ["extract", "--model", str(d / "model"), "--corpus", "kjv", "-n", "16", "-o", str(d / "a.h5")]


def _sweep_yaml(d: Path, files: Path, marker: Path) -> list[str]:
    (d / "s.yaml").write_text(f"name: !!python/object/apply:builtins.open [{str(marker)!r}, w]\n")
    return ["sweep", str(d / "s.yaml"), "--dry-run"]


CASES = {
    "sae-folder-with-pt": (_sae_folder_with_pt, "not an SAE saetool can read"),
    "saelens-weights-pickle": (_saelens_weights_are_a_pickle, "cannot read SAELens weights"),
    "sparsify-weights-pickle": (_sparsify_weights_are_a_pickle, "cannot read sparsify weights"),
    "checkpoint-pickle-resume": (_checkpoint_is_a_pickle, "is corrupt"),
    "checkpoint-pickle-init-from": (_checkpoint_as_init, "corrupt"),
    "dictionary-learning-ae-pt": (_dictionary_learning_ae_pt, "refused to load dictionary_learning weights"),
    "vector-pt": (_vector_pt, "refused to load"),
    "vector-pth-steer": (_vector_pth_steer, "refused to load"),
    "vector-npy": (_vector_npy, "object arrays cannot be loaded"),
    "model-pytorch-bin": (_model_bin, "refused to load the weights"),
    "sweep-yaml-tag": (_sweep_yaml, "could not determine a constructor"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malicious_pickle_is_refused_and_never_runs(case, tmp_path, sae_files, tiny_gpt2_dir):
    make, needle = CASES[case]
    marker = tmp_path / "PAYLOAD_RAN"
    args = make(tmp_path, sae_files, marker, tiny_gpt2_dir) if make is _model_bin else make(tmp_path, sae_files, marker)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli(*args)
    assert_clean_error(proc, needle)
    assert not marker.exists(), "the pickle's payload ran"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


UNSAFE = [
    (r"torch\.load\((?![^)]*weights_only=True)", "torch.load without weights_only=True"),
    (r"\bpickle\.loads?\(|\bcPickle\b|\bdill\b|\bjoblib\.load\b", "unpickling"),
    (r"allow_pickle\s*=\s*True", "np.load with allow_pickle=True"),
    (r"yaml\.(?:unsafe_)?load\((?![^)]*Loader=yaml\.SafeLoader)", "yaml.load (use yaml.safe_load)"),
    (r"(?<![\w.])(?:eval|exec)\(", "eval/exec"),
    (r"read_pickle\(|trust_remote_code\s*=\s*True", "pandas.read_pickle / trust_remote_code"),
]


def test_the_source_never_unpickles():
    """Every torch.load passes weights_only=True; nothing else unpickles or evaluates text."""
    found = []
    for path in sorted((REPO / "saetool").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, what in UNSAFE:
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert found == []
    assert "weights_only=True" in (REPO / "saetool" / "artifacts" / "torchfiles.py").read_text()
