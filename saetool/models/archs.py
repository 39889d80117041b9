"""Where TransformerLens hook sites live inside plain Hugging Face models.

Each :class:`ArchSpec` names, for one family of decoder layers, the submodules
the transformers backend hooks to reproduce TransformerLens' activations:

* ``hook_resid_pre``  - input of decoder layer ``L``;
* ``hook_resid_post`` - output of decoder layer ``L``;
* ``hook_resid_mid``  - ``resid_pre + attn_out``, where ``attn_out`` is the
  output of the ``attn_out`` module (what attention adds to the residual);
* ``hook_mlp_out``    - output of the ``mlp_out`` module (what the MLP adds);
* ``attn.hook_z``     - input of the ``o_proj`` module, split into heads.

This module imports nothing heavy; paths are dotted attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saetool.errors import ModelError


@dataclass(frozen=True)
class ArchSpec:
    """Module paths for one family of decoder layers (relative to a layer, except ``layers``)."""

    #: candidate dotted paths from the top-level model to the ``ModuleList`` of decoder layers
    layers: tuple[str, ...]
    #: module whose output (first element if a tuple) is attention's contribution to the residual
    attn_out: str
    #: module whose output is the MLP's contribution to the residual (TransformerLens' mlp_out)
    mlp_out: str
    #: the attention output projection; its input is ``hook_z`` flattened over heads
    o_proj: str


_LLAMA_LIKE = ArchSpec(
    layers=("model.layers", "model.language_model.layers", "language_model.model.layers"),
    attn_out="self_attn",
    mlp_out="mlp",
    o_proj="self_attn.o_proj",
)

#: Gemma 2/3 use "sandwich" norms: attention and MLP outputs are normalized
#: before they are added to the residual, as TransformerLens' ln1_post/ln2_post.
_GEMMA_SANDWICH = ArchSpec(
    layers=("model.layers", "model.language_model.layers", "language_model.model.layers"),
    attn_out="post_attention_layernorm",
    mlp_out="post_feedforward_layernorm",
    o_proj="self_attn.o_proj",
)

_GPT2 = ArchSpec(
    layers=("transformer.h",),
    attn_out="attn",
    mlp_out="mlp",
    o_proj="attn.c_proj",
)

ARCHS: dict[str, ArchSpec] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _GEMMA_SANDWICH,
    "gemma3": _GEMMA_SANDWICH,
    "gemma3_text": _GEMMA_SANDWICH,
    "gpt2": _GPT2,
}


def supported_model_types() -> list[str]:
    return sorted(ARCHS)


def arch_for(model_type: str | None) -> ArchSpec:
    """The module map for a transformers ``model_type``, or a one-line :class:`ModelError`."""
    spec = ARCHS.get(model_type or "")
    if spec is None:
        raise ModelError(
            f"the transformers backend does not support model_type {model_type!r}",
            hint="supported: " + ", ".join(supported_model_types()) + "; try --backend transformer-lens",
        )
    return spec


def get_path(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (``model.layers``); numeric parts index."""
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def find_layers(model: Any, spec: ArchSpec) -> Any:
    for path in spec.layers:
        try:
            return get_path(model, path)
        except (AttributeError, IndexError):
            continue
    raise ModelError(
        f"cannot find the decoder layers of {type(model).__name__}",
        hint="looked for " + ", ".join(spec.layers),
    )


@dataclass(frozen=True)
class Dims:
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int


def dims_of(config: Any) -> Dims:
    """Layer count and widths from a (possibly multimodal) transformers config."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = _first(cfg, "num_hidden_layers", "n_layer")
    d_model = _first(cfg, "hidden_size", "n_embd")
    n_heads = _first(cfg, "num_attention_heads", "n_head")
    d_head = getattr(cfg, "head_dim", None) or d_model // n_heads
    return Dims(int(n_layers), int(d_model), int(n_heads), int(d_head))


def _first(cfg: Any, *names: str) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    raise ModelError(f"model config has none of {', '.join(names)}", hint="is this a decoder-only language model?")
