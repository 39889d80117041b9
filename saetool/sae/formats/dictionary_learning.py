"""saprmarks/dictionary_learning SAEs: ``ae.pt`` + ``config.json`` (read and write).

Layout (``dictionary_learning/training.py``): a trainer's folder holds ``ae.pt``, the
dictionary's ``state_dict()`` saved with ``torch.save``, and ``config.json`` with
``{"trainer": {...}, "buffer": {...}}``; the trainer part names ``dict_class``,
``activation_dim``, ``dict_size``, ``k``, ``layer``, ``lm_name`` and ``submodule_name``.

``ae.pt`` is a pickle: it is loaded with ``torch.load(weights_only=True)``
(:mod:`saetool.artifacts.torchfiles`) and must be a flat dict of tensors; anything else
(a training backup with the optimizer, a pickled module) is refused with one line.

Classes and their saetool equivalents (``D`` activation_dim, ``F`` dict_size):

=========================  ==========================================================  ==========
dict_class                 state dict                                                  saetool
=========================  ==========================================================  ==========
AutoEncoder                encoder.weight [F,D], encoder.bias, decoder.weight [D,F],   relu, x - bias
                           bias [D]
AutoEncoderNew             encoder.weight, encoder.bias, decoder.weight, decoder.bias  relu
AutoEncoderTopK            encoder.weight, encoder.bias, decoder.weight, b_dec, k,     topk (k)
                           threshold
BatchTopKSAE               as AutoEncoderTopK; inference keeps relu(pre) > threshold   jumprelu
MatryoshkaBatchTopKSAE     W_enc [D,F], b_enc, W_dec [F,D], b_dec, k, threshold,       jumprelu
                           group_sizes
JumpReluAutoEncoder        W_enc, b_enc, W_dec, b_dec, threshold (no b_dec on input)   jumprelu
=========================  ==========================================================  ==========

Gated autoencoders have no saetool equivalent and are refused. The hook is
``blocks.{layer}.hook_resid_post`` unless ``submodule_name`` names an MLP or attention
output. Export writes ``AutoEncoder``, ``AutoEncoderTopK`` or ``JumpReluAutoEncoder``
(folding ``b_dec`` into the encoder bias where the two libraries subtract it differently:
exact); transcoders are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from saetool.artifacts.torchfiles import load_tensor_dict, save_torch_file
from saetool.console import warn
from saetool.devices import dtype_name
from saetool.errors import ArtifactError, SaetoolError
from saetool.models.hooks import hook_name, layer_of_hook
from saetool.sae.config import SAEConfig
from saetool.sae.crosscoder import refuse_crosscoder
from saetool.sae.format_api import ExportSettings, SAEExporter, SAEReader, format_folder
from saetool.sae.formats import read_json_object
from saetool.sae.io import load_sae
from saetool.sae.model import build_sae

if TYPE_CHECKING:
    from saetool.sae.model import SAE

WEIGHTS_FILENAME = "ae.pt"
CFG_FILENAME = "config.json"

#: dict_class -> (saetool activation, subtracts b_dec from the input)
CLASSES = {
    "AutoEncoder": ("relu", True),
    "AutoEncoderNew": ("relu", False),
    "AutoEncoderTopK": ("topk", True),
    "BatchTopKSAE": ("jumprelu", True),
    "MatryoshkaBatchTopKSAE": ("jumprelu", True),
    "JumpReluAutoEncoder": ("jumprelu", False),
}


def _guess_class(w: dict[str, "torch.Tensor"]) -> str | None:
    """The dict_class a state dict's keys imply, for an ``ae.pt`` without ``config.json``."""
    keys = set(w)
    if {"W_enc", "W_dec", "threshold"} <= keys:
        return "MatryoshkaBatchTopKSAE" if "group_sizes" in keys else "JumpReluAutoEncoder"
    if {"encoder.weight", "decoder.weight", "b_dec"} <= keys:
        return "AutoEncoderTopK" if "k" in keys else None
    if {"encoder.weight", "decoder.weight", "bias"} <= keys:
        return "AutoEncoder"
    if {"encoder.weight", "decoder.weight", "decoder.bias"} <= keys:
        return "AutoEncoderNew"
    return None


def _hook(trainer: dict[str, Any]) -> str:
    layer = trainer.get("layer")
    sub = str(trainer.get("submodule_name") or "").lower()
    if isinstance(layer, bool) or not isinstance(layer, int):
        return str(trainer.get("submodule_name") or "unknown")
    if "mlp" in sub:
        return hook_name(layer, "hook_mlp_out")
    if "attn" in sub or "attention" in sub:
        return hook_name(layer, "hook_attn_out")
    return hook_name(layer, "hook_resid_post")


def load_dictionary_learning(folder: str | Path, device: str = "cpu") -> "SAE":
    """A saetool SAE from a dictionary_learning folder (``ae.pt`` [+ ``config.json``])."""
    folder = Path(folder)
    config = read_json_object(folder / CFG_FILENAME, what="dictionary_learning config") if (folder / CFG_FILENAME).is_file() else {}
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    w = load_tensor_dict(folder / WEIGHTS_FILENAME, what="dictionary_learning weights")
    cls = trainer.get("dict_class") or _guess_class(w)
    if cls not in CLASSES:
        hint = "saetool reads " + ", ".join(CLASSES)
        raise SaetoolError(f"{folder} is a dictionary_learning {cls or 'dictionary of unknown class'}, which saetool cannot read", hint=hint)
    activation, sub_b_dec = CLASSES[cls]
    try:
        if "W_enc" in w:
            t = {"W_enc": w["W_enc"], "b_enc": w["b_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
        else:
            t = {"W_enc": w["encoder.weight"].T, "b_enc": w["encoder.bias"], "W_dec": w["decoder.weight"].T}
            t["b_dec"] = w["bias"] if cls == "AutoEncoder" else w["decoder.bias"] if cls == "AutoEncoderNew" else w["b_dec"]
    except KeyError as exc:
        raise ArtifactError(f"dictionary_learning {cls} weights in {folder / WEIGHTS_FILENAME} lack {exc.args[0]}", hint="the file is corrupt or of another dict_class") from None
    enc = t["W_enc"]
    if enc.ndim != 2 or not enc.is_floating_point():
        raise ArtifactError(f"dictionary_learning folder {folder}: the encoder has shape {list(enc.shape)} and dtype {enc.dtype}, expected a 2-D float matrix")
    d_in, d_sae = int(enc.shape[0]), int(enc.shape[1])
    k = None
    if activation == "topk":
        k = int(w["k"]) if "k" in w else trainer.get("k")
    if activation == "jumprelu":
        if "threshold" not in w:
            raise ArtifactError(f"dictionary_learning {cls} weights in {folder / WEIGHTS_FILENAME} lack threshold")
        thr = w["threshold"].to(torch.float32).clamp(min=0)  # relu(pre) * (relu(pre) > t) == pre * (pre > t) for t >= 0
        t["threshold"] = thr.expand(d_sae).clone() if thr.numel() == 1 else thr
    dtype = enc.dtype if enc.dtype != torch.float64 else torch.float32
    lm = trainer.get("lm_name")
    cfg = SAEConfig(
        arch=activation,
        d_in=d_in,
        d_sae=d_sae,
        hook=_hook(trainer),
        activation=activation,
        d_out=int(t["W_dec"].shape[-1]) if t["W_dec"].ndim == 2 else d_in,
        k=k,
        model=str(lm) if lm else None,
        apply_b_dec_to_input=sub_b_dec,
        dtype=dtype_name(dtype),
        options={"source_format": "dictionary_learning", "dict_class": cls},
    )
    return build_sae(cfg, t, device, source=f"dictionary_learning folder {folder}")


# -- export -------------------------------------------------------------------------------
def dictionary_learning_state(sae: "SAE") -> tuple[str, dict[str, "torch.Tensor"]]:
    """(dict_class, state dict) of the dictionary_learning class that computes what ``sae`` does."""
    cfg = sae.cfg
    if cfg.skip:
        raise SaetoolError("dictionary_learning has no SAE with a skip connection (W_skip)", hint="export it with --format saelens (a skip transcoder)")
    if cfg.is_transcoder:
        raise SaetoolError("dictionary_learning has no transcoder class", hint="export a transcoder with --format saelens (relu/jumprelu) or keep the saetool artifact")
    p = {k: v.detach().cpu().to(torch.float32) for k, v in sae.state_dict().items()}
    b_enc = p["b_enc"]
    if cfg.activation in ("relu", "topk") and not cfg.apply_b_dec_to_input:
        b_enc = b_enc + p["b_dec"] @ p["W_enc"]  # (x - b_dec) @ W + b' == x @ W + b
    if cfg.activation == "jumprelu" and cfg.apply_b_dec_to_input:
        b_enc = b_enc - p["b_dec"] @ p["W_enc"]  # JumpReluAutoEncoder does not subtract b_dec
    dtype = sae.dtype
    cast = {k: v.to(dtype).contiguous() for k, v in p.items()}
    b_enc = b_enc.to(dtype)
    if cfg.activation == "relu":
        return "AutoEncoder", {"bias": cast["b_dec"], "encoder.weight": cast["W_enc"].T.contiguous(), "encoder.bias": b_enc, "decoder.weight": cast["W_dec"].T.contiguous()}
    if cfg.activation == "topk":
        return "AutoEncoderTopK", {
            "k": torch.tensor(int(cfg.k or 0), dtype=torch.int),
            "threshold": torch.tensor(-1.0),
            "decoder.weight": cast["W_dec"].T.contiguous(),
            "encoder.weight": cast["W_enc"].T.contiguous(),
            "encoder.bias": b_enc,
            "b_dec": cast["b_dec"],
        }
    if bool((p["threshold"] < 0).any()):
        warn("some jumprelu thresholds are negative; dictionary_learning applies ReLU after the jump, so those features will not pass negative pre-activations")
    return "JumpReluAutoEncoder", {"W_enc": cast["W_enc"], "b_enc": b_enc, "W_dec": cast["W_dec"], "b_dec": cast["b_dec"], "threshold": cast["threshold"]}


def export_dictionary_learning(sae: "SAE", work: Path, *, model_name: str | None = None) -> str:
    """Write ``ae.pt`` and ``config.json`` into the new folder ``work``; returns the dict_class."""
    cls, state = dictionary_learning_state(sae)
    cfg = sae.cfg
    layer = layer_of_hook(cfg.hook)
    trainer = {
        "dict_class": cls,
        "trainer_class": "saetool",
        "activation_dim": cfg.d_in,
        "dict_size": cfg.d_sae,
        "layer": layer,
        "lm_name": model_name or cfg.model,
        "submodule_name": cfg.hook,
    }
    if cfg.k is not None:
        trainer["k"] = int(cfg.k)
    work.mkdir()
    save_torch_file(state, work / WEIGHTS_FILENAME)
    (work / CFG_FILENAME).write_text(json.dumps({"trainer": trainer, "buffer": {}}, indent=2) + "\n")
    return cls


class DictionaryLearningReader(SAEReader):
    """A dictionary_learning trainer folder (registered in saetool.builtins.sae_formats)."""

    name = "dictionary-learning"
    description = "dictionary_learning folder (ae.pt [+ config.json], weights-only)"

    def can_read(self, path: Path) -> bool:
        return (format_folder(path, (WEIGHTS_FILENAME, CFG_FILENAME)) / WEIGHTS_FILENAME).is_file()

    def read(self, path: Path, device: str) -> "SAE":
        return load_dictionary_learning(format_folder(path, (WEIGHTS_FILENAME, CFG_FILENAME)), device)


class DictionaryLearningExporter(SAEExporter):
    name = "dictionary-learning"
    description = "a dictionary_learning folder (ae.pt + config.json) that its AutoEncoder/AutoEncoderTopK/JumpReluAutoEncoder.from_pretrained loads"

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        model = load_sae(sae, settings.device)
        refuse_crosscoder(model, self.name)
        cls = export_dictionary_learning(model, out, model_name=settings.model_name)
        c = model.cfg
        return f"dictionary_learning {cls}, d_in={c.d_in}, d_sae={c.d_sae}, hook {c.hook}"
