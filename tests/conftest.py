"""Shared pytest fixtures.

Model fixtures (``saetool_cache``, ``smollm2``, ``tiny_gpt2_dir``) load real
models with no network. Tests on SmolLM2 (``smollm2``, ``smollm2_acts``,
``smollm2_sae``) are marked ``slow`` automatically; their fast counterparts
(``tiny_gpt2``, ``tiny_acts``, ``tiny_sae``) run the same code on a tiny random
GPT-2 in about a second. They use saetool's own model cache (``SAETOOL_CACHE_DIR``
if set, else the platform cache that ``saetool models install`` fills), so a
model converted by the quick start is not converted again (about 30 s the first
time, well under a second after that). Tests only read the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# huggingface_hub reads these when it is first imported: set them before any test
# module can import transformers, so nothing ever reaches for the hub.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

# Several pytest-xdist workers share the cores: one compute thread each (and in the CLI runs
# they start), or OpenMP's spinning threads oversubscribe them (measured: 22% slower on 2 cores).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Fixtures that load or run a real model (SmolLM2, Gemma 3). A test that uses one, directly or
#: through another fixture, is marked ``slow`` at collection (see ``pytest_collection_modifyitems``),
#: so ``pytest -m "not slow"`` leaves it out without anyone remembering to mark it.
REAL_MODEL_FIXTURES = frozenset({"smollm2", "smollm2_acts", "smollm2_sae"})


def pytest_collection_modifyitems(config, items):
    """Mark every test that depends on a real-model fixture ``slow`` (the fast tier skips it)."""
    for item in items:
        if REAL_MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def saetool_cache():
    """A persistent saetool cache for the test session, and Hugging Face offline mode."""
    names = ("SAETOOL_CACHE_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    from saetool.paths import cache_dir

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["SAETOOL_CACHE_DIR"] = str(cache)
    for name in names[1:]:
        os.environ[name] = "1"
    try:
        yield cache
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def smollm2(saetool_cache):
    """SmolLM2-135M-Instruct loaded with the transformers backend (float32, CPU)."""
    from saetool.models.registry import load_model

    return load_model("smollm2-135m", backend="transformers")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(saetool_cache, tmp_path_factory):
    """A local Hugging Face folder: a 2-layer, d_model 64 GPT-2 with random weights.

    The real GPT-2 tokenizer is not available offline, so the folder carries
    SmolLM2's tokenizer (from the converted cache) and the vocabulary is sized
    to match it.
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from saetool.models.embedded import SMOLLM2

    tokenizer = AutoTokenizer.from_pretrained(str(SMOLLM2.ensure_cached()))
    config = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=4,
        n_positions=256,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_dir):
    """The tiny random GPT-2 of :func:`tiny_gpt2_dir`, loaded once (transformers backend)."""
    from saetool.models.registry import load_model

    return load_model(str(tiny_gpt2_dir), backend="transformers")


def _extract(model, hook: str, folder: Path) -> Path:
    """2048 tokens of BBC News through ``model`` at ``hook``, context 64."""
    from saetool.extract.api import ExtractConfig, extract_activations

    config = ExtractConfig(hooks=[hook], num_tokens=2048, context_size=64, batch_size=8)
    return extract_activations(config, folder / "acts.h5", progress=False, model=model)


def _train(acts: Path, d_sae: int, k: int, folder: Path) -> Path:
    """A TopK SAE trained for 200 steps of 256 tokens on ``acts``, at one rate 2e-3 for
    encoder and decoder and reading its input uncentred (the SAE the tests that use it
    were sized on: some of its features are dead, which test_interpret's dead-feature
    paths need, and with the encoder at a third or centred, bench's absorption
    main-latent F1 of this 512-latent SAE falls under its random floor, 0.09 vs 0.13, a
    margin of noise at this size: on the quick start's SAE the encoder's own rate gives
    0.18 against 0.17)."""
    from saetool.train.api import train_sae
    from saetool.train.config import TrainConfig

    config = TrainConfig(arch="topk", d_sae=d_sae, k=k, batch_size=256, steps=200, lr=2e-3, encoder_lr_ratio=1.0, apply_b_dec_to_input=False, checkpoint_every=1000, log_every=10, val_fraction=0.1, seed=0)
    return train_sae(config, [acts], folder / "sae.h5", progress=False).path


@pytest.fixture(scope="session")
def tiny_acts(tiny_gpt2, tmp_path_factory):
    """An activations artifact like :func:`smollm2_acts` from the tiny GPT-2 (d_model 64):
    2048 tokens of BBC News, ``blocks.1.hook_resid_post``, context 64 (about a second)."""
    return _extract(tiny_gpt2, "blocks.1.hook_resid_post", tmp_path_factory.mktemp("tiny_acts"))


@pytest.fixture(scope="session")
def tiny_sae(tiny_acts, tmp_path_factory):
    """A TopK SAE (d_sae 256, k 8) trained for 200 steps on :func:`tiny_acts` (about a second)."""
    return _train(tiny_acts, 256, 8, tmp_path_factory.mktemp("tiny_sae"))


@pytest.fixture(scope="session")
def smollm2_acts(smollm2, tmp_path_factory):
    """A real activations artifact: 2048 tokens of BBC News through SmolLM2,
    ``blocks.3.hook_resid_post``, context 64 (about 10 s on 2 CPU cores)."""
    return _extract(smollm2, "blocks.3.hook_resid_post", tmp_path_factory.mktemp("smollm2_acts"))


@pytest.fixture(scope="session")
def smollm2_sae(smollm2_acts, tmp_path_factory):
    """A small TopK SAE (d_sae 512, k 16) trained for 200 steps on :func:`smollm2_acts`."""
    return _train(smollm2_acts, 512, 16, tmp_path_factory.mktemp("smollm2_sae"))
