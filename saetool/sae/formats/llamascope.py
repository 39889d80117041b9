"""OpenMOSS's Llama Scope SAEs (``fnlp/Llama3_1-8B-Base-LX{R,A,M,TC}-{8,32}x``), read only.

One folder per SAE, e.g. ``Llama3_1-8B-Base-L15R-8x/``, holding ``hyperparams.json``
and ``checkpoints/final.safetensors`` (the layout of OpenMOSS' Language-Model-SAEs):

- ``hyperparams.json``: ``d_model``, ``d_sae``, ``hook_point_in``/``hook_point_out``
  (TransformerLens names), ``act_fn`` (``jumprelu`` or ``topk``, with
  ``jump_relu_threshold`` / ``top_k``), ``norm_activation`` (``dataset-wise``) with
  ``dataset_average_activation_norm: {in, out}``, ``sparsity_include_decoder_norm``,
  ``apply_decoder_bias_to_pre_encoder``, ``use_decoder_bias``;
- ``final.safetensors``: ``encoder.weight [d_sae, d_model]``, ``encoder.bias``,
  ``decoder.weight [d_model, d_sae]``, ``decoder.bias``.

The SAE scales its input by ``s_in = sqrt(d_model) / norm_in`` (dataset-wise), computes
``pre = x' @ encoder.weight.T + encoder.bias`` (after subtracting ``decoder.bias`` when
``apply_decoder_bias_to_pre_encoder``), keeps ``pre`` where ``pre * n > threshold``
(``n`` the decoder column norms when ``sparsity_include_decoder_norm``, else 1), or the
top ``top_k`` of ``relu(pre) * n``, and decodes ``(f @ decoder.weight.T + decoder.bias) / s_out``.
All of it folds exactly into a saetool SAE: ``W_enc = s_in * encoder.weight.T``, the
decoder bias subtracted through ``b_enc``, ``W_dec = decoder.weight.T / s_out``,
``b_dec = decoder.bias / s_out``, a per-feature ``threshold / n`` for JumpReLU, and for
TopK the decoder norms moved from the decoder into the encoder (the activations are then
``f * n``, the reconstruction unchanged). Token-wise normalisation is per input and refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file

from saetool.devices import dtype_name
from saetool.errors import ArtifactError, SaetoolError
from saetool.sae.config import SAEConfig
from saetool.sae.format_api import SAEReader
from saetool.sae.formats import read_json_object
from saetool.sae.model import build_sae

if TYPE_CHECKING:
    from saetool.sae.model import SAE

HYPERPARAMS_FILENAME = "hyperparams.json"
WEIGHTS_PATH = "checkpoints/final.safetensors"
MODEL = "meta-llama/Llama-3.1-8B"


def _folder(path: Path) -> Path:
    """The SAE folder a path names: itself, its ``checkpoints/`` or a file in either."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    return p.parent if p.name == "checkpoints" else p


def _norm_factor(hp: dict, key: str, d: int, folder: Path) -> float:
    mode = hp.get("norm_activation", "dataset-wise")
    if mode in ("none", "inference", None):
        return 1.0
    if mode != "dataset-wise":
        raise SaetoolError(f"{folder} is a Llama Scope SAE with norm_activation={mode!r}, a per-input normalisation saetool SAEs cannot represent", hint="saetool reads dataset-wise normalised Llama Scope SAEs")
    norms = hp.get("dataset_average_activation_norm")
    value = norms.get(key) if isinstance(norms, dict) else norms
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ArtifactError(f"{folder / HYPERPARAMS_FILENAME}: dataset_average_activation_norm.{key} is {value!r}, expected a positive number")
    return d**0.5 / float(value)


def load_llama_scope(path: str | Path, device: str = "cpu") -> "SAE":
    """A saetool SAE (jumprelu or topk; a transcoder when the hooks differ) from a Llama Scope folder."""
    folder = _folder(Path(path))
    hp = read_json_object(folder / HYPERPARAMS_FILENAME, what="Llama Scope hyperparams")
    try:
        raw = load_file(str(folder / WEIGHTS_PATH))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"cannot read Llama Scope weights {folder / WEIGHTS_PATH} ({exc})") from None
    missing = [k for k in ("encoder.weight", "encoder.bias", "decoder.weight") if k not in raw]
    if missing:
        raise ArtifactError(f"Llama Scope weights in {folder} lack {', '.join(missing)}", hint="the folder is corrupt or not a Llama Scope SAE")
    enc, dec = raw["encoder.weight"], raw["decoder.weight"]
    if enc.ndim != 2 or dec.ndim != 2 or dec.shape[1] != enc.shape[0] or not enc.is_floating_point():
        raise ArtifactError(f"Llama Scope folder {folder}: encoder.weight {list(enc.shape)} and decoder.weight {list(dec.shape)} do not fit together")
    d_sae, d_in, d_out = int(enc.shape[0]), int(enc.shape[1]), int(dec.shape[0])
    if hp.get("d_sae", d_sae) != d_sae or hp.get("d_model", d_in) != d_in:
        raise ArtifactError(f"Llama Scope folder {folder}: hyperparams say d_model={hp.get('d_model')}, d_sae={hp.get('d_sae')} but the weights are {d_in} x {d_sae}")
    act = str(hp.get("act_fn", "jumprelu")).lower()
    if act not in ("jumprelu", "topk", "relu"):
        raise SaetoolError(f"{folder} is a Llama Scope SAE with act_fn {act!r}", hint="saetool reads jumprelu, topk and relu Llama Scope SAEs")
    hook = hp.get("hook_point_in") or hp.get("hook_point")
    if not isinstance(hook, str) or not hook:
        raise ArtifactError(f"{folder / HYPERPARAMS_FILENAME} names no hook_point_in")
    hook_out = hp.get("hook_point_out") or hook

    f32 = {k: v.to(torch.float32) for k, v in raw.items()}
    s_in, s_out = _norm_factor(hp, "in", d_in, folder), _norm_factor(hp, "out", d_out, folder)
    b_d = f32.get("decoder.bias", torch.zeros(d_out)) if hp.get("use_decoder_bias", True) else torch.zeros(d_out)
    w_enc = f32["encoder.weight"].T * s_in
    b_enc = f32["encoder.bias"].clone()
    if hp.get("apply_decoder_bias_to_pre_encoder", False):
        b_enc = b_enc - b_d @ f32["encoder.weight"].T  # (x*s - b_d) @ W == x @ (s W) - b_d @ W
    w_dec = f32["decoder.weight"].T / s_out
    b_dec = b_d / s_out
    norms = f32["decoder.weight"].norm(dim=0) if hp.get("sparsity_include_decoder_norm", False) else torch.ones(d_sae)
    tensors = {"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": b_dec}
    k = None
    if act == "jumprelu":
        threshold = hp.get("jump_relu_threshold", 0.0)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ArtifactError(f"{folder / HYPERPARAMS_FILENAME}: jump_relu_threshold is {threshold!r}, expected a number")
        if bool((norms <= 0).any()):
            raise ArtifactError(f"Llama Scope folder {folder}: a decoder column is all zeros, so its threshold is undefined")
        tensors["threshold"] = (float(threshold) / norms).clamp(min=0)
    elif act == "topk":
        k = hp.get("top_k")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= d_sae:
            raise ArtifactError(f"{folder / HYPERPARAMS_FILENAME}: top_k is {k!r}, expected an integer from 1 to d_sae={d_sae}")
        tensors["W_enc"], tensors["b_enc"] = w_enc * norms, b_enc * norms  # rank relu(pre) * n exactly
        tensors["W_dec"] = w_dec / norms.clamp(min=torch.finfo(torch.float32).tiny).unsqueeze(1)
    dtype = enc.dtype if enc.dtype != torch.float64 else torch.float32
    cfg = SAEConfig(
        arch=act,
        d_in=d_in,
        d_sae=d_sae,
        hook=hook,
        activation=act,
        hook_out=hook_out,
        d_out=d_out,
        k=k,
        model=MODEL if "Llama3_1-8B-Base" in folder.as_posix() else None,
        apply_b_dec_to_input=False,
        dtype=dtype_name(dtype),
        options={"source_format": "llama-scope", "folder": folder.name},
    )
    return build_sae(cfg, tensors, device, source=f"Llama Scope folder {folder}")


class LlamaScopeReader(SAEReader):
    """A Llama Scope SAE folder (registered in saetool.builtins.sae_formats)."""

    name = "llama-scope"
    description = "Llama Scope folder (hyperparams.json + checkpoints/final.safetensors)"

    def can_read(self, path: Path) -> bool:
        folder = _folder(Path(path))
        return (folder / HYPERPARAMS_FILENAME).is_file() and (folder / WEIGHTS_PATH).is_file()

    def read(self, path: Path, device: str) -> "SAE":
        return load_llama_scope(path, device)
