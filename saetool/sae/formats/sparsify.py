"""EleutherAI sparsify folders (read, and write for topk SAEs), without installing sparsify.

On-disk layout (``sparsify/sparse_coder.py`` ``SparseCoder.save_to_disk`` and
``sparsify/trainer.py`` ``Trainer._checkpoint`` in github.com/EleutherAI/sparsify):
a training run writes ``{save_dir}/{run_name}/`` holding ``config.json`` (the
run's TrainConfig, with ``model`` when run from the CLI), ``state.pt``,
``optimizer_*.pt``, ``lr_scheduler_*.pt`` and one folder per hookpoint, named
after the module (``layers.6``, ``layers.6.mlp``, ``embed_tokens``), each with

- ``cfg.json``: the ``SparseCoderConfig`` fields (``activation`` ``"topk"`` or
  ``"groupmax"``, ``expansion_factor``, ``normalize_decoder``, ``num_latents``,
  ``k``, ``multi_topk``, ``skip_connection``, ``transcode``, ...) plus ``d_in``;
- ``sae.safetensors``: ``encoder.weight [num_latents, d_in]``,
  ``encoder.bias [num_latents]``, ``W_dec [num_latents, d_in]``,
  ``b_dec [d_in]`` and, with ``skip_connection``, ``W_skip [d_in, d_in]``.

Semantics (``SparseCoder.encode``/``decode`` and ``fused_encoder``):
``x - b_dec`` unless ``transcode``; ``pre = relu(x @ encoder.weight.T +
encoder.bias)``; keep the top ``k`` of ``pre``; ``y = acts @ W_dec + b_dec``.
ReLU-then-top-k gives the same dense activations as saetool's top-k-then-ReLU
(when fewer than ``k`` are positive both keep zeros), so the SAE maps onto a
saetool ``topk`` SAE with ``W_enc = encoder.weight.T``, ``b_enc = encoder.bias``,
``W_dec = W_dec``, ``b_dec = b_dec``, ``apply_b_dec_to_input = not transcode``.
A transcoder (``transcode: true``) reads the hookpoint module's input and
predicts its output. ``groupmax`` activations, non-zero skip connections and
the experimental ``signed``/``embed_skip``/``gram_lookup`` options have no
saetool equivalent and are refused.

Hookpoint names become TransformerLens hook names where the mapping is clear:
``layers.N`` -> ``blocks.N.hook_resid_post`` (a transcoder: from
``blocks.N.hook_resid_pre``), ``layers.N.mlp`` -> ``blocks.N.hook_mlp_out``
(transcoder input ``blocks.N.ln2.hook_normalized``), ``layers.N.self_attn`` ->
``blocks.N.hook_attn_out``, ``embed_tokens`` -> ``hook_embed``; any prefix such
as ``model.`` or ``gpt_neox.`` and the GPT-2 style ``h.N`` are accepted. Other
names are kept as they are; the original is in ``cfg.options["hookpoint"]``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from saetool.devices import dtype_name
from saetool.errors import ArtifactError, SaetoolError
from saetool.models.hooks import hook_name, layer_of_hook
from saetool.sae.config import SAEConfig
from saetool.sae.crosscoder import refuse_crosscoder
from saetool.sae.format_api import ExportSettings, SAEExporter, SAEReader, format_folder
from saetool.sae.io import load_sae
from saetool.sae.model import build_sae

if TYPE_CHECKING:
    from saetool.sae.model import SAE

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae.safetensors"
RUN_CONFIG_FILENAME = "config.json"

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)((?:\.[A-Za-z_][\w]*)*)$")
_EMBED_NAMES = ("embed_tokens", "wte", "embed_in", "embeddings", "word_embeddings")


def hookpoint_to_hooks(hookpoint: str, *, transcode: bool = False) -> tuple[str, str | None]:
    """``(hook, hook_out)`` for a sparsify hookpoint name (``hook_out`` is ``None``
    for an autoencoder)."""
    m = _LAYER_RE.search(hookpoint)
    if m:
        layer, rest = int(m.group(1)), m.group(2)
        if rest == "":
            return (hook_name(layer, "hook_resid_pre"), hook_name(layer, "hook_resid_post")) if transcode else (hook_name(layer, "hook_resid_post"), None)
        if rest in (".mlp", ".feed_forward", ".ffn"):
            return (hook_name(layer, "ln2.hook_normalized"), hook_name(layer, "hook_mlp_out")) if transcode else (hook_name(layer, "hook_mlp_out"), None)
        if rest in (".self_attn", ".attn", ".attention"):
            return (hook_name(layer, "ln1.hook_normalized"), hook_name(layer, "hook_attn_out")) if transcode else (hook_name(layer, "hook_attn_out"), None)
    if hookpoint.rsplit(".", 1)[-1] in _EMBED_NAMES and not transcode:
        return "hook_embed", None
    return (f"{hookpoint}.in", f"{hookpoint}.out") if transcode else (hookpoint, None)


def _run_model(folder: Path) -> str | None:
    run_cfg = folder.parent / RUN_CONFIG_FILENAME
    if not run_cfg.is_file():
        return None
    try:
        data = json.loads(run_cfg.read_text())
    except (OSError, ValueError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return str(model) if model else None


def load_sparsify(path: str | Path, device: str = "cpu") -> "SAE":
    """A saetool ``topk`` SAE from a sparsify hookpoint folder (``cfg.json`` + ``sae.safetensors``)."""
    folder = Path(path)
    try:
        cfg = json.loads((folder / CFG_FILENAME).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read sparsify config {folder / CFG_FILENAME} ({exc})") from None
    if not isinstance(cfg, dict):
        raise ArtifactError(f"sparsify config {folder / CFG_FILENAME} is not a JSON object")
    activation = cfg.get("activation", "topk")
    if activation != "topk":
        raise SaetoolError(f"{folder} is a sparsify SAE with activation {activation!r}", hint="saetool reads sparsify SAEs with activation 'topk' only")
    for flag in ("signed", "embed_skip", "gram_lookup"):
        if cfg.get(flag):
            raise SaetoolError(f"{folder} is a sparsify SAE with {flag}=true, which saetool SAEs cannot represent")
    try:
        weights = load_file(str(folder / WEIGHTS_FILENAME))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactError(f"cannot read sparsify weights {folder / WEIGHTS_FILENAME} ({exc})") from None
    missing = [k for k in ("encoder.weight", "encoder.bias", "W_dec", "b_dec") if k not in weights]
    if missing:
        raise ArtifactError(f"sparsify weights in {folder} lack {', '.join(missing)}", hint="save it with its decoder (SparseCoder.save_to_disk)")
    if "W_skip" in weights and bool(weights["W_skip"].abs().max() > 0):
        raise SaetoolError(f"{folder} is a sparsify SAE with a skip connection (W_skip), which saetool SAEs cannot represent")

    enc = weights["encoder.weight"]
    if enc.ndim != 2 or not enc.is_floating_point():
        raise ArtifactError(f"sparsify folder {folder}: encoder.weight has shape {list(enc.shape)} and dtype {enc.dtype}, expected a 2-D float matrix", hint="the folder is corrupt or hand-edited")
    d_sae, d_in = int(enc.shape[0]), int(enc.shape[1])
    if "d_in" in cfg and cfg["d_in"] != d_in:
        raise ArtifactError(f"sparsify folder {folder}: cfg.json says d_in={json.dumps(cfg['d_in'])[:40]} but encoder.weight has {d_in} columns")
    k = cfg.get("k", 32)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= d_sae:
        raise ArtifactError(f"sparsify folder {folder}: k={json.dumps(k)[:40]} is not an integer between 1 and num_latents={d_sae}")
    transcode = bool(cfg.get("transcode", False))
    hook, hook_out = hookpoint_to_hooks(folder.name, transcode=transcode)
    dtype = enc.dtype if enc.dtype != torch.float64 else torch.float32
    sae_cfg = SAEConfig(
        arch="topk",
        d_in=d_in,
        d_sae=d_sae,
        hook=hook,
        activation="topk",
        hook_out=hook_out,
        d_out=int(weights["W_dec"].shape[-1]) if weights["W_dec"].ndim == 2 else d_in,  # build_sae refuses a wrong shape
        k=k,
        model=_run_model(folder),
        apply_b_dec_to_input=not transcode,
        dtype=dtype_name(dtype),
        options={"source_format": "sparsify", "hookpoint": folder.name},
    )
    tensors = {
        "W_enc": enc.T,
        "b_enc": weights["encoder.bias"],
        "W_dec": weights["W_dec"],
        "b_dec": weights["b_dec"],
    }
    return build_sae(sae_cfg, tensors, device, source=f"sparsify folder {folder}")


class SparsifyReader(SAEReader):
    """A sparsify hookpoint folder (registered in saetool.builtins.sae_formats)."""

    name = "sparsify"
    description = "sparsify hookpoint folder (cfg.json + sae.safetensors)"

    def can_read(self, path: Path) -> bool:
        folder = format_folder(path, (CFG_FILENAME, WEIGHTS_FILENAME))
        return (folder / CFG_FILENAME).is_file() and (folder / WEIGHTS_FILENAME).is_file()

    def read(self, path: Path, device: str) -> "SAE":
        return load_sparsify(format_folder(path, (CFG_FILENAME, WEIGHTS_FILENAME)), device)


# -- export ---------------------------------------------------------------------------------
#: TransformerLens site -> sparsify hookpoint suffix, for autoencoders and (input site) for transcoders
_EXPORT_SITES = {
    (False, "hook_resid_post"): "", (False, "hook_mlp_out"): ".mlp", (False, "hook_attn_out"): ".self_attn",
    (True, "hook_resid_pre"): "", (True, "ln2.hook_normalized"): ".mlp", (True, "ln1.hook_normalized"): ".self_attn",
}


def sparsify_hookpoint(sae: "SAE") -> str:
    """The sparsify hookpoint folder name for ``sae``'s hook(s) (the inverse of :func:`hookpoint_to_hooks`)."""
    cfg = sae.cfg
    if cfg.options.get("hookpoint") and hookpoint_to_hooks(str(cfg.options["hookpoint"]), transcode=cfg.is_transcoder) == (cfg.hook, cfg.hook_out if cfg.is_transcoder else None):
        return str(cfg.options["hookpoint"])
    layer = layer_of_hook(cfg.hook)
    site = cfg.hook.split(".", 2)[-1] if layer is not None else None
    suffix = _EXPORT_SITES.get((cfg.is_transcoder, site or ""))
    name = None if suffix is None or layer is None else f"layers.{layer}{suffix}"
    if name is None or hookpoint_to_hooks(name, transcode=cfg.is_transcoder) != (cfg.hook, cfg.hook_out if cfg.is_transcoder else None):
        raise SaetoolError(f"sparsify has no hookpoint for an SAE reading {cfg.hook}" + (f" and writing {cfg.hook_out}" if cfg.is_transcoder else ""), hint="sparsify hookpoints are layers.N (resid_post), layers.N.mlp, layers.N.self_attn")
    return name


def export_sparsify(sae: "SAE", work: Path, *, model_name: str | None = None) -> str:
    """Write ``sae`` (a topk SAE or transcoder) as a sparsify run folder ``work``:
    ``config.json`` (``model``) and ``HOOKPOINT/{cfg.json, sae.safetensors}``; returns the hookpoint."""
    cfg = sae.cfg
    if cfg.skip:
        raise SaetoolError("saetool does not write sparsify skip connections (W_skip)", hint="export it with --format saelens (a skip transcoder)")
    if cfg.activation != "topk":
        raise SaetoolError(f"sparsify SAEs are topk; this one is {cfg.activation}", hint="export it with --format saelens or dictionary-learning")
    hookpoint = sparsify_hookpoint(sae)
    p = {k: v.detach().cpu().to(torch.float32) for k, v in sae.state_dict().items()}
    b_enc = p["b_enc"]
    if not cfg.is_transcoder and not cfg.apply_b_dec_to_input:
        b_enc = b_enc + p["b_dec"] @ p["W_enc"]  # sparsify always subtracts b_dec from an autoencoder's input
    tensors = {
        "encoder.weight": p["W_enc"].T.contiguous(),
        "encoder.bias": b_enc,
        "W_dec": p["W_dec"].contiguous(),
        "b_dec": p["b_dec"],
    }
    tensors = {k: v.to(sae.dtype).contiguous() for k, v in tensors.items()}
    coder_cfg = {
        "activation": "topk", "expansion_factor": max(1, cfg.d_sae // cfg.d_in), "normalize_decoder": True, "num_latents": cfg.d_sae,
        "k": int(cfg.k or 0), "multi_topk": False, "skip_connection": False, "transcode": cfg.is_transcoder, "d_in": cfg.d_in,
    }
    (work / hookpoint).mkdir(parents=True)
    save_file(tensors, str(work / hookpoint / WEIGHTS_FILENAME))
    (work / hookpoint / CFG_FILENAME).write_text(json.dumps(coder_cfg, indent=2) + "\n")
    (work / RUN_CONFIG_FILENAME).write_text(json.dumps({"model": model_name or cfg.model, "hookpoints": [hookpoint], "saetool": True}, indent=2) + "\n")
    return hookpoint


class SparsifyExporter(SAEExporter):
    name = "sparsify"
    description = "a sparsify run folder (config.json + HOOKPOINT/cfg.json + sae.safetensors) for topk SAEs and transcoders"

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        model = load_sae(sae, settings.device)
        refuse_crosscoder(model, self.name)
        hookpoint = export_sparsify(model, out, model_name=settings.model_name)
        c = model.cfg
        return f"sparsify topk {'transcoder' if c.is_transcoder else 'SAE'} at hookpoint {hookpoint}, d_in={c.d_in}, num_latents={c.d_sae}, k={c.k}"
