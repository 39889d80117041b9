"""`extract --storage-dtype`: the compute dtype and the stored dtype are separate settings."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

from saetool.artifacts.activations import ActivationsFile
from saetool.errors import ConfigError
from saetool.extract import ExtractConfig, extract_activations

HOOK = "blocks.1.hook_resid_post"


def test_float32_model_stores_bfloat16_rounded_values(tiny_gpt2, tmp_path):
    base = dict(hooks=[HOOK], num_tokens=256, context_size=32, batch_size=4)
    full = extract_activations(ExtractConfig(**base), tmp_path / "f32.h5", progress=False, model=tiny_gpt2)
    half = extract_activations(ExtractConfig(**base, storage_dtype="bfloat16"), tmp_path / "bf16.h5", progress=False, model=tiny_gpt2)
    with ActivationsFile(full) as a, ActivationsFile(half) as b:
        x, y = a.read(HOOK), b.read(HOOK)
        assert x.dtype == torch.float32 and y.dtype == torch.bfloat16
        assert torch.equal(y, x.to(torch.bfloat16))  # computed in float32, rounded once when stored
        assert b.config["dtype"] == "float32" and b.config["storage_dtype"] == "bfloat16"
        assert a.config["storage_dtype"] == "float32"
        assert torch.equal(torch.from_numpy(a.artifact.file["norms/" + HOOK][:]), torch.from_numpy(b.artifact.file["norms/" + HOOK][:]))
    with h5py.File(full) as f, h5py.File(half) as h:
        assert h[f"activations/{HOOK}"].dtype.itemsize * 2 == f[f"activations/{HOOK}"].dtype.itemsize
        assert json.loads(h.attrs["config"])["storage_dtype"] == h.attrs["storage_dtype"] == "bfloat16"


def test_unknown_storage_dtype_is_refused():
    with pytest.raises(ConfigError, match="storage_dtype"):
        ExtractConfig(storage_dtype="int8").validate()
