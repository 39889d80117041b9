"""Google DeepMind's Gemma Scope (Gemma 2) and Gemma Scope 2 (Gemma 3) SAEs and transcoders (read only).

Gemma Scope (``google/gemma-scope-{2b,9b,27b}-pt-{res,mlp,att}[-canonical]``,
``google/gemma-scope-2b-pt-transcoders``): one folder per SAE, e.g.
``layer_20/width_16k/average_l0_71/``, holding ``params.npz`` with ``W_enc [d_in,
d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc``, ``b_dec`` and a per-feature JumpReLU
``threshold``. Nothing in the folder names the model or the hook: they come from the
repo name (``...-pt-res`` -> ``blocks.L.hook_resid_post``, ``-mlp`` ->
``hook_mlp_out``, ``-att`` -> ``attn.hook_z``, ``-transcoders`` ->
``ln2.hook_normalized`` to ``hook_mlp_out``), found in any part of the path (the
Hugging Face cache keeps it as ``models--google--gemma-scope-2b-pt-res``), and the
layer from ``layer_L``. Embedding SAEs (``embedding/...``) read ``hook_embed``; they
were trained on Gemma's embeddings before the ``sqrt(d_model)`` scaling, which
TransformerLens' ``hook_embed`` includes, so that factor is folded into the weights
(``W_enc / s``; ``W_dec * s``, ``b_dec * s``), as SAELens does for the encoder and decoder.

Gemma Scope 2 (``google/gemma-scope-2-{270m,1b,4b,12b,27b}-{pt,it}``): folders like
``resid_post/layer_12_width_16k_l0_small/`` or ``transcoder_all/layer_5_width_16k_l0_big_affine/``
holding ``config.json`` (``hf_hook_point_in``/``hf_hook_point_out``, ``model_name``,
``architecture: "jump_relu"``, ``affine_connection``, ``width``, ``l0``) and
``params.safetensors`` with ``w_enc``, ``w_dec``, ``b_enc``, ``b_dec``, ``threshold``
and, for the affine transcoders, ``affine_skip_connection [d_in, d_out]``.

Both compute ``pre = x @ W_enc + b_enc`` (no ``b_dec`` subtracted), ``f = relu(pre) *
(pre > threshold)``, ``y = f @ W_dec + b_dec`` (``+ x @ affine_skip_connection`` for
the affine transcoders, kept as the saetool SAE's ``W_skip``): a saetool ``jumprelu``
SAE, exact for the non-negative thresholds they ship (negative ones are read as 0).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file

from saetool.console import warn
from saetool.devices import dtype_name
from saetool.errors import ArtifactError, SaetoolError
from saetool.models.hooks import hook_name
from saetool.sae.config import SAEConfig
from saetool.sae.format_api import SAEReader, format_folder
from saetool.sae.formats import hub_repo_of, read_json_object
from saetool.sae.model import build_sae

if TYPE_CHECKING:
    from saetool.sae.model import SAE

NPZ_FILENAME = "params.npz"
V2_WEIGHTS_FILENAME = "params.safetensors"
V2_CFG_FILENAME = "config.json"

_LAYER = re.compile(r"(?:^|[/_])layer_(\d+)(?:[/_]|$)")
#: Gemma Scope repo names (any case) -> model size and variant
_REPO = re.compile(r"gemma-scope-(2-)?(\d+(?:\.\d+)?[mb])-(pt|it)(?:-(res|mlp|att|transcoders))?", re.I)
#: Gemma Scope 2 ``hf_hook_point`` -> (layer, TransformerLens site)
_HF_HOOK = re.compile(r"layers\.(\d+)(?:\.([\w.]+?))?\.(output|input)$")
_HF_SITES = {
    ("", "output"): "hook_resid_post",
    ("self_attn.o_proj", "input"): "attn.hook_z",
    ("post_feedforward_layernorm", "output"): "hook_mlp_out",
    ("pre_feedforward_layernorm", "output"): "ln2.hook_normalized",
    ("mlp", "output"): "hook_mlp_out",
}


def _repo_info(path: Path) -> tuple[str | None, str | None, str | None, bool]:
    """(model id, kind res|mlp|att|transcoders, repo name, version 2) from the path's parts."""
    text = "/".join([hub_repo_of(path) or "", *Path(path).absolute().parts])
    m = _REPO.search(text)
    if not m:
        return None, None, None, False
    v2, size, variant, kind = bool(m.group(1)), m.group(2).lower(), m.group(3).lower(), (m.group(4) or "").lower() or None
    if v2:
        model = f"google/gemma-3-{size}" + ("" if size == "270m" and variant == "pt" else f"-{variant}")
    else:
        model = f"google/gemma-2-{size}" + ("-it" if variant == "it" else "")
    return model, kind, m.group(0), v2


def _layer(folder: Path) -> int | None:
    m = _LAYER.search(folder.as_posix())
    return int(m.group(1)) if m else None


def _jumprelu(folder: Path, w: "dict[str, torch.Tensor]", *, hook: str, hook_out: str | None, model: str | None, fmt: str, device: str, options: dict) -> "SAE":
    """The saetool jumprelu SAE for Gemma Scope weights named W_enc, W_dec, b_enc, b_dec, threshold."""
    missing = [k for k in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold") if k not in w]
    if missing:
        raise ArtifactError(f"{fmt} weights in {folder} lack {', '.join(missing)}", hint="the folder is corrupt or not a Gemma Scope SAE")
    enc, dec = w["W_enc"], w["W_dec"]
    if enc.ndim != 2 or dec.ndim != 2 or not enc.is_floating_point():
        raise ArtifactError(f"{fmt} folder {folder}: W_enc has shape {list(enc.shape)} and W_dec {list(dec.shape)}, expected two float matrices")
    dtype = enc.dtype if enc.dtype != torch.float64 else torch.float32
    cfg = SAEConfig(
        arch="jumprelu",
        d_in=int(enc.shape[0]),
        d_sae=int(enc.shape[1]),
        hook=hook,
        activation="jumprelu",
        hook_out=hook_out,
        d_out=int(dec.shape[1]),
        model=model,
        apply_b_dec_to_input=False,
        dtype=dtype_name(dtype),
        options={"source_format": fmt, **options},
        skip="W_skip" in w,
    )
    tensors = {k: w[k].to(torch.float32) for k in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "W_skip") if k in w}
    tensors["threshold"] = tensors["threshold"].clamp(min=0)  # relu(pre) * (pre > t) == pre * (pre > t) for t >= 0
    return build_sae(cfg, tensors, device, source=f"{fmt} folder {folder}")


# -- Gemma Scope (Gemma 2): params.npz ------------------------------------------------------
def load_gemma_scope(folder: str | Path, device: str = "cpu") -> "SAE":
    """A saetool jumprelu SAE from a Gemma Scope folder (``params.npz``)."""
    folder = Path(folder)
    try:
        with np.load(folder / NPZ_FILENAME, allow_pickle=False) as data:
            raw = {k: torch.from_numpy(np.asarray(data[k])) for k in data.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read Gemma Scope weights {folder / NPZ_FILENAME} ({exc})") from None
    w = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in raw.items()}
    scale = w.pop("scaling_factor", None)
    if scale is not None and not bool(torch.all(scale == 1)):
        w["W_dec"] = w["W_dec"] * scale.reshape(-1, 1)  # decode(f * s) == f @ (s[:, None] * W_dec)
    model, kind, repo, _ = _repo_info(folder)
    layer = _layer(folder)
    hook_out = None
    if "embedding" in folder.as_posix().split("/") or "embedding" in folder.name:
        hook = "hook_embed"
        if all(k in w for k in ("W_enc", "W_dec", "b_dec")):  # trained before the sqrt(d_model) scaling hook_embed includes
            s = float(w["W_enc"].shape[0]) ** 0.5
            w["W_enc"], w["W_dec"], w["b_dec"] = w["W_enc"].float() / s, w["W_dec"].float() * s, w["b_dec"].float() * s
    elif layer is None:
        raise SaetoolError(f"{folder} is a Gemma Scope SAE, but no layer_N in its path says which layer it reads", hint="read it from its Hugging Face folder (or the cache), e.g. RELEASE/layer_20/width_16k/average_l0_71")
    elif kind == "mlp":
        hook = hook_name(layer, "hook_mlp_out")
    elif kind == "att":
        hook = hook_name(layer, "attn.hook_z")
    elif kind == "transcoders":
        hook, hook_out = hook_name(layer, "ln2.hook_normalized"), hook_name(layer, "hook_mlp_out")
    elif kind == "res":
        hook = hook_name(layer, "hook_resid_post")
    else:
        warn(f"{folder}: no gemma-scope-...-res/-mlp/-att repo name in the path; assuming it reads blocks.{layer}.hook_resid_post")
        hook = hook_name(layer, "hook_resid_post")
    return _jumprelu(folder, w, hook=hook, hook_out=hook_out, model=model, fmt="Gemma Scope", device=device, options={"repo": repo} if repo else {})


# -- Gemma Scope 2 (Gemma 3): config.json + params.safetensors ------------------------------
def hf_hook_to_tl(point: str) -> str:
    """A Gemma Scope 2 ``hf_hook_point`` (``model.layers.12.output``) as a TransformerLens hook name; unknown ones are kept."""
    m = _HF_HOOK.search(point or "")
    if m:
        site = _HF_SITES.get((m.group(2) or "", m.group(3)))
        if site:
            return hook_name(int(m.group(1)), site)
    return point


def load_gemma_scope_2(folder: str | Path, device: str = "cpu") -> "SAE":
    """A saetool jumprelu SAE (or transcoder) from a Gemma Scope 2 folder."""
    folder = Path(folder)
    cfg = read_json_object(folder / V2_CFG_FILENAME, what="Gemma Scope 2 config") if (folder / V2_CFG_FILENAME).is_file() else {}
    arch = cfg.get("architecture", "jump_relu")
    if arch != "jump_relu":
        raise SaetoolError(f"{folder} is a Gemma Scope 2 SAE with architecture {arch!r}", hint="saetool reads Gemma Scope 2 jump_relu SAEs and transcoders")
    try:
        raw = load_file(str(folder / V2_WEIGHTS_FILENAME))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"cannot read Gemma Scope 2 weights {folder / V2_WEIGHTS_FILENAME} ({exc})") from None
    w = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in raw.items()}
    skip = w.pop("affine_skip_connection", None)
    if skip is not None and bool(skip.abs().max() > 0):
        w["W_skip"] = skip  # y += x @ affine_skip_connection, [d_in, d_out] as saetool keeps W_skip
    model_repo, _, repo, _ = _repo_info(folder)
    model = cfg.get("model_name") or model_repo
    if model:  # the configs say e.g. "gemma-v3-1b-pt" for google/gemma-3-1b-pt
        model = str(model).replace("gemma-v3-", "gemma-3-")
        model = model if "/" in model else f"google/{model}"
    layer = _layer(folder)
    parent = folder.parent.name
    if cfg.get("hf_hook_point_in"):
        hook = hf_hook_to_tl(str(cfg["hf_hook_point_in"]))
        out = cfg.get("hf_hook_point_out")
        hook_out = hf_hook_to_tl(str(out)) if out and out != cfg["hf_hook_point_in"] else None
    elif layer is None:
        raise SaetoolError(f"{folder} has no config.json and no layer_N in its path", hint="read it from its Hugging Face folder (or the cache), e.g. RELEASE/resid_post/layer_12_width_16k_l0_small")
    elif parent.startswith("transcoder"):
        hook, hook_out = hook_name(layer, "ln2.hook_normalized"), hook_name(layer, "hook_mlp_out")
    elif parent.startswith("attn_out"):
        hook, hook_out = hook_name(layer, "attn.hook_z"), None
    elif parent.startswith("mlp_out"):
        hook, hook_out = hook_name(layer, "hook_mlp_out"), None
    else:
        hook, hook_out = hook_name(layer, "hook_resid_post"), None
    options = {k: v for k, v in {"repo": repo, "l0": cfg.get("l0"), "hf_hook_point_in": cfg.get("hf_hook_point_in")}.items() if v is not None}
    return _jumprelu(folder, w, hook=hook, hook_out=hook_out, model=model, fmt="Gemma Scope 2", device=device, options=options)


# -- the readers (registered in saetool.builtins.sae_formats) ------------------------------
class GemmaScopeReader(SAEReader):
    name = "gemma-scope"
    description = "Gemma Scope folder (params.npz)"

    def can_read(self, path: Path) -> bool:
        return (format_folder(path, (NPZ_FILENAME,)) / NPZ_FILENAME).is_file()

    def read(self, path: Path, device: str) -> "SAE":
        return load_gemma_scope(format_folder(path, (NPZ_FILENAME,)), device)


class GemmaScope2Reader(SAEReader):
    name = "gemma-scope-2"
    description = "Gemma Scope 2 folder (params.safetensors [+ config.json])"

    def can_read(self, path: Path) -> bool:
        return (format_folder(path, (V2_WEIGHTS_FILENAME, V2_CFG_FILENAME)) / V2_WEIGHTS_FILENAME).is_file()

    def read(self, path: Path, device: str) -> "SAE":
        return load_gemma_scope_2(format_folder(path, (V2_WEIGHTS_FILENAME, V2_CFG_FILENAME)), device)
