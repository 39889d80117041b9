"""``saetool.devices``: the one parser of dtype and device names."""

from __future__ import annotations

import pytest
import torch

from saetool.devices import MODEL_DTYPES, dtype_name, resolve_device, torch_dtype
from saetool.errors import SaetoolError


@pytest.mark.parametrize("name", MODEL_DTYPES)
def test_dtype_names_round_trip(name):
    dtype = torch_dtype(name)
    assert dtype is getattr(torch, name)
    assert dtype_name(dtype) == name
    assert torch_dtype(f"torch.{name}") is dtype


def test_dtype_outside_the_choices_is_a_one_line_error():
    with pytest.raises(SaetoolError, match="unknown dtype 'float64'") as info:
        torch_dtype("float64")
    assert info.value.hint == "choose float32, float16 or bfloat16"
    assert torch_dtype("float64", ("float32", "float64")) is torch.float64
    with pytest.raises(SaetoolError, match="unknown dtype 'int8'"):
        torch_dtype("int8", ("float32", "float64"))


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SaetoolError, match="unknown --device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(SaetoolError, match="unsupported --device 'meta'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(SaetoolError, match="CUDA is not available"):
            resolve_device("cuda:0")
