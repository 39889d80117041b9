"""PyTorch ``.pt`` files: the one rule every ``torch.load`` and ``torch.save`` follows.

A ``.pt`` file is a pickle; unpickling an arbitrary one can run code. saetool only ever
loads them with ``torch.load(weights_only=True)`` (tensors, plain containers and numbers),
and turns the refusal of anything else into a one-line error naming the file.
``torch.save`` loses the errno of a failed write ("unexpected pos 1152 vs 1108" on a
full disk), so saetool saves into memory and writes the bytes through
:func:`saetool.artifacts.files.write_atomic`, where a full disk is one line.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from saetool.artifacts.files import write_atomic
from saetool.errors import ArtifactError, SaetoolError


def save_torch_file(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, a failed write (a full disk) as one line naming ``path``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic(path, buf.getvalue())


def load_torch_file(path: str | Path, *, what: str = "file", hint: str = "save plain tensors with torch.save, or as .safetensors") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a pickle holding more than
    tensors (it could run code) or an unreadable file is a one-line error."""
    p = Path(path)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a global: a class, a function, code
        raise SaetoolError(f"refused to load {what} {p}: a pickle holding more than tensors (it could run code)", hint=hint) from None
    except FileNotFoundError:
        raise SaetoolError(f"{what} {p} does not exist", hint="check the path") from None
    except Exception as exc:  # a truncated zip, not a torch file at all
        raise ArtifactError(f"cannot read {what} {p} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", hint=hint) from None


def load_tensor_dict(path: str | Path, *, what: str = "file") -> "dict[str, torch.Tensor]":
    """A ``.pt`` file that must hold a flat ``{name: tensor}`` dict (a state dict); anything else is refused."""
    obj = load_torch_file(path, what=what, hint="save the state dict itself: torch.save(model.state_dict(), path)")
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        kind = type(obj).__name__ if not isinstance(obj, dict) else "a dict of " + ", ".join(sorted({type(v).__name__ for v in obj.values()}) or ["nothing"])
        raise SaetoolError(f"refused {what} {path}: it holds {kind}, not a flat dict of tensors", hint="save the state dict itself: torch.save(model.state_dict(), path)")
    return obj
