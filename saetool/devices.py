"""Torch dtypes and devices from their names (``--dtype``, ``--device``): one parser each.

Importing this module does not import torch (``saetool --help`` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from saetool.errors import SaetoolError

if TYPE_CHECKING:
    import torch

# Deferred imports: `saetool models` and the model registry import this module; torch loads when a dtype or device is resolved.

#: The dtypes a model runs and stores activations in.
MODEL_DTYPES = ("float32", "float16", "bfloat16")


def dtype_name(dtype: "torch.dtype | str") -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def torch_dtype(name: "str | torch.dtype", choices: Sequence[str] = MODEL_DTYPES) -> "torch.dtype":
    """``"bfloat16"`` (or ``"torch.bfloat16"``) -> ``torch.bfloat16``; a name not in ``choices`` is a one-line error."""
    import torch

    short = dtype_name(name)
    if short not in choices:
        raise SaetoolError(f"unknown dtype {str(name)!r}", hint="choose " + ", ".join(choices[:-1]) + " or " + choices[-1])
    return getattr(torch, short)


def resolve_device(name: str) -> "torch.device":
    """A torch device, or a one-line error when it is unknown or not available here."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise SaetoolError(f"unknown --device {name!r}", hint="use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SaetoolError(f"--device {name} asked for, but CUDA is not available", hint="use --device cpu")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SaetoolError(f"--device {name} asked for, but MPS is not available", hint="use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise SaetoolError(f"unsupported --device {name!r}", hint="use cpu, cuda, cuda:N or mps")
    return device
