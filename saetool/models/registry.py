"""Named models and resolving a ``--model`` argument to something loadable."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saetool.console import warn
from saetool.devices import resolve_device, torch_dtype
from saetool.errors import ModelError
from saetool.models.source import ModelSource, ModelSpec, check_accelerate, remote_code_trusted
from saetool.plugins import host

if TYPE_CHECKING:
    from saetool.models.base import HookedModel

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_BACKEND = "transformers"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

def model_specs() -> dict[str, ModelSpec]:
    return {name: reg.obj for name, reg in host().collect("models").items()}


def resolve_model(name: str, *, trust_remote_code: bool | None = None) -> ModelSource:
    """A named (embedded) model, a local folder, or a hub id, in that order.

    ``trust_remote_code`` (default: :func:`remote_code_trusted`, off unless
    ``--trust-remote-code``) lets the model run Python code it ships.
    """
    trusted = remote_code_trusted() if trust_remote_code is None else bool(trust_remote_code)
    specs = model_specs()
    if name in specs:
        spec = specs[name]
        return ModelSource(name=name, hf_id=spec.hf_id, path=spec.ensure_cached(), family=spec.family, spec=spec)
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise ModelError(f"{local} is not a Hugging Face model folder (no config.json)")
        return ModelSource(name=str(local), hf_id=_hf_id_of_folder(local), path=local, trust_remote_code=trusted)
    if _HUB_ID.match(name):
        return ModelSource(name=name, hf_id=name, trust_remote_code=trusted)
    raise ModelError(
        f"unknown model {name!r}",
        hint="use an embedded model (" + ", ".join(sorted(specs)) + "), a local folder, or a hub id such as gpt2",
    )


def tokenizer_or_none(model: str) -> Any:
    """``model``'s tokenizer, or ``None`` with a warning when it cannot be loaded
    (text is a convenience: callers write token ids anyway)."""
    try:
        return resolve_model(model).load_tokenizer()
    except Exception as exc:
        warn(f"could not load the tokenizer of {model!r} ({type(exc).__name__}: {' '.join(str(exc).split())[:100]}); samples are written without text")
        return None


def _hf_id_of_folder(folder: Path) -> str:
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return str(folder)
    return cfg.get("_name_or_path") or cfg.get("saetool_hf_id") or str(folder)


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    backend: str = DEFAULT_BACKEND,
    device: str = "cpu",
    dtype: str = "float32",
    device_map: "str | dict | None" = None,
) -> "HookedModel":
    """Resolve ``name`` and load it with the named backend (the Python API behind ``--model``).

    ``device_map`` (``"auto"``, ``"cpu"``, a dict) spreads the model over
    devices with accelerate; only backends whose ``load`` takes a
    ``device_map`` argument (the transformers backend) accept it.
    """
    backend_type = host().get("model_backends", backend)
    torch_dtype(dtype)
    if device_map is None:
        resolve_device(device)
        return backend_type.load(resolve_model(name), device=device, dtype=dtype)
    if "device_map" not in inspect.signature(backend_type.load).parameters:
        raise ModelError(f"the {backend} backend cannot load with --device-map", hint="use --backend transformers")
    check_accelerate()
    return backend_type.load(resolve_model(name), device=device, dtype=dtype, device_map=device_map)
