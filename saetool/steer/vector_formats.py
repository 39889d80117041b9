"""Steering vectors out to other tools and back: llama.cpp control vectors, repeng, .npy, .pt.

llama.cpp's ``--control-vector FILE`` reads a GGUF whose ``general.architecture`` is
``controlvector``, with ``controlvector.model_hint`` (a string), ``controlvector.layer_count``
(uint32) and one float32 tensor ``direction.L`` of ``[n_embd]`` per layer ``L``; it adds
``direction.L`` (times ``--control-vector-scaled``'s scale) to the output of layer ``L``
(0-based; layer 0 is never steered). That output is TransformerLens'
``blocks.L.hook_resid_post``, and ``blocks.L.hook_resid_pre`` is the same point as
``blocks.{L-1}.hook_resid_post``, so vectors at either site export; others are refused.

repeng's ``ControlVector.export_gguf``/``import_gguf`` use the same container with the
Hugging Face ``model_type`` (``llama``, ``gpt2``...) as ``model_hint``, and its layer ``L``
is also the output of decoder layer ``L`` (``hidden_states[L + 1]``). ``--format repeng``
writes that hint; ``--format gguf`` writes the model id. Both carry ``saetool.*`` keys
(hook, model, method) the other tools ignore, so ``vector import`` restores them.

``npy`` is a 1-D float32 array (``np.save``), ``pt`` a tensor (``torch.save``, loadable
with ``weights_only=True``); ``vector import`` reads both, and any of these GGUFs.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import gguf
import numpy as np
import torch

from saetool.artifacts.files import write_atomic
from saetool.artifacts.torchfiles import save_torch_file
from saetool.errors import SaetoolError
from saetool.models.hooks import hook_name, layer_of_hook
from saetool.models.registry import model_specs
from saetool.steer.vectors import SteeringVector

# Deferred imports: transformers (about 2 s) only to read a cached model's config for repeng's hint, guarded by a
# fallback.

ARCH = "controlvector"
#: format name -> default file suffix
FORMATS = {"gguf": ".gguf", "repeng": ".gguf", "npy": ".npy", "pt": ".pt"}
_DIRECTION = re.compile(r"^direction\.(\d+)$")


def control_layer(hook: str) -> int:
    """The llama.cpp / repeng layer a vector at ``hook`` is added after; one line when there is none."""
    layer = layer_of_hook(hook)
    if layer is not None and hook == hook_name(layer, "hook_resid_post"):
        out = layer
    elif layer is not None and hook == hook_name(layer, "hook_resid_pre"):
        out = layer - 1
    else:
        raise SaetoolError(f"a vector at {hook} has no llama.cpp/repeng equivalent", hint="control vectors add to a layer's output: make the vector at blocks.L.hook_resid_post (or hook_resid_pre)")
    if out < 1:
        raise SaetoolError(f"a vector at {hook} would be llama.cpp's layer {out}, which llama.cpp never steers", hint="make the vector at a later layer (blocks.1.hook_resid_post or after)")
    return out


def _model_type(model: str | None) -> str:
    """The Hugging Face ``model_type`` repeng records (from the model's config when it is known)."""
    if not model:
        return "unknown"
    try:
        spec = model_specs().get(model)
        if spec is not None and getattr(spec, "family", None):
            return str(spec.family).lower()
    except Exception:  # an unknown model: fall back to its name
        pass
    try:
        from transformers import AutoConfig

        return str(AutoConfig.from_pretrained(model, local_files_only=True, trust_remote_code=False).model_type)
    except Exception:  # not cached or not a hub id
        return str(model).rsplit("/", 1)[-1].split("-")[0].lower()


def write_control_vector(path: Path, vectors: Sequence["SteeringVector"], *, hint: str) -> dict[int, int]:
    """Write a control-vector GGUF with one ``direction.L`` per vector; returns ``{layer: d}``."""
    directions: dict[int, np.ndarray] = {}
    for sv in vectors:
        layer = control_layer(sv.hook)
        if layer in directions:
            raise SaetoolError(f"two vectors for llama.cpp layer {layer} ({sv.hook})", hint="give one vector per layer")
        directions[layer] = sv.vector.detach().float().cpu().numpy().astype(np.float32)
    dims = {a.shape[0] for a in directions.values()}
    if len(dims) > 1:
        raise SaetoolError(f"the vectors have different widths ({', '.join(map(str, sorted(dims)))})", hint="one control vector is for one model: give vectors of the same model")
    first = vectors[0]
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        writer = gguf.GGUFWriter(str(staging / path.name), ARCH)
        writer.add_string(f"{ARCH}.model_hint", hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(directions))
        writer.add_string("saetool.model", first.model or "")
        writer.add_string("saetool.hooks", json.dumps({str(control_layer(sv.hook)): sv.hook for sv in vectors}))
        writer.add_string("saetool.method", first.method)
        for layer in sorted(directions):
            writer.add_tensor(f"direction.{layer}", directions[layer])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {layer: int(a.shape[0]) for layer, a in directions.items()}


def export_vectors(vectors: Sequence["SteeringVector"], out: str | Path, fmt: str, *, model_hint: str | None = None) -> str:
    """Write ``vectors`` (several only for the GGUF formats) to ``out`` in ``fmt``; returns a summary."""
    out = Path(out)
    if fmt not in FORMATS:
        raise SaetoolError(f"unknown vector format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS))
    if not vectors:
        raise SaetoolError("no vector to export")
    if fmt in ("gguf", "repeng"):
        if model_hint:
            hint = model_hint
        elif fmt == "gguf":
            hint = vectors[0].model or "unknown"
        else:
            hint = _model_type(vectors[0].model)
        layers = write_control_vector(out, vectors, hint=hint)
        return f"{fmt} control vector, layers {', '.join(map(str, sorted(layers)))} (d={next(iter(layers.values()))}), model_hint {hint!r}"
    if len(vectors) > 1:
        raise SaetoolError(f"--format {fmt} holds one vector, and {len(vectors)} were given", hint="export them one at a time, or use --format gguf for several layers")
    vec = vectors[0].vector.detach().float().cpu().contiguous()
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, vec.numpy(), allow_pickle=False)
        write_atomic(out, buf.getvalue())
    else:
        save_torch_file(vec.clone(), out)
    return f"{fmt} vector, d={vec.shape[0]}, from {vectors[0].hook}"


# -- reading them back ------------------------------------------------------------------------
def _field_text(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or not field.parts:
        return None
    return bytes(field.parts[-1]).decode("utf-8", errors="replace")


def read_control_vector(path: str | Path) -> tuple[dict[int, "torch.Tensor"], dict[str, str | None]]:
    """``({layer: direction}, {"model_hint", "model", "hooks", "method"})`` from a control-vector GGUF."""
    p = Path(path)
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as exc:  # not a GGUF, truncated
        raise SaetoolError(f"cannot read {p} as a GGUF file ({type(exc).__name__}: {exc})", hint="pass a control vector written by llama.cpp, repeng or saetool vector export") from None
    arch = _field_text(reader, "general.architecture")
    if arch != ARCH:
        raise SaetoolError(f"{p} is a GGUF of architecture {arch!r}, not a control vector", hint="pass a control vector (general.architecture = controlvector)")
    directions: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        m = _DIRECTION.match(tensor.name)
        if m:
            directions[int(m.group(1))] = torch.from_numpy(np.array(tensor.data, dtype=np.float32).reshape(-1))
    if not directions:
        raise SaetoolError(f"{p} holds no direction.N tensors")
    meta = {k: _field_text(reader, key) for k, key in (("model_hint", f"{ARCH}.model_hint"), ("model", "saetool.model"), ("hooks", "saetool.hooks"), ("method", "saetool.method"))}
    return directions, meta


def import_control_vector(path: str | Path, *, layer: int | None = None, model: str | None = None) -> "SteeringVector":
    """One direction of a control-vector GGUF as a steering vector at ``blocks.L.hook_resid_post``
    (the hook saetool exported it from, when the file records it)."""
    directions, meta = read_control_vector(path)
    if layer is None:
        if len(directions) > 1:
            raise SaetoolError(f"{path} holds {len(directions)} layers ({', '.join(map(str, sorted(directions)))})", hint="pick one with --layer L")
        layer = next(iter(directions))
    if layer not in directions:
        raise SaetoolError(f"{path} has no direction for layer {layer}", hint="its layers: " + ", ".join(map(str, sorted(directions))))
    try:
        hooks = json.loads(meta.get("hooks") or "{}")
    except ValueError:
        hooks = {}
    hook = hooks.get(str(layer)) or hook_name(layer, "hook_resid_post")
    details = {"source": str(Path(path).resolve()), "model_hint": meta.get("model_hint"), "control_layer": layer}
    return SteeringVector(vector=directions[layer], hook=hook, model=model or meta.get("model") or None, method=meta.get("method") or "import", details=details)
