"""What a model backend provides: a model that runs with named hooks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from saetool.errors import ModelError

if TYPE_CHECKING:
    import torch

    from saetool.models.source import ModelSource

#: A hook function receives the activation at a hook point, shaped
#: ``[batch, pos, d]`` (``[batch, pos, n_heads, d_head]`` for ``attn.hook_z``),
#: and returns a replacement tensor or ``None`` to leave it unchanged.
HookFn = Callable[["torch.Tensor"], "torch.Tensor | None"]


class HookedModel(ABC):
    """A loaded language model that runs with TransformerLens-named hooks.

    Attributes every backend sets: ``backend_name``, ``model_id``, ``tokenizer``
    (a Hugging Face tokenizer), ``n_layers``, ``d_model``, ``device``, ``dtype``
    and ``supported_sites`` (a subset of :data:`saetool.models.hooks.SITES`).
    """

    backend_name: str
    model_id: str
    n_layers: int
    d_model: int
    supported_sites: tuple[str, ...]
    #: The most positions one sequence may have (prompt plus generated tokens), from
    #: the model's config; None when the config names no limit.
    max_positions: int | None = None

    def check_positions(self, n: int, what: str, hint: str) -> None:
        """One-line :class:`ModelError` when a sequence of ``n`` positions (``what``,
        e.g. "--context-size 4096") does not fit the model, before any work."""
        if self.max_positions is not None and n > self.max_positions:
            raise ModelError(f"{what} needs {n} positions but the model takes at most {self.max_positions}", hint=hint)

    @property
    @abstractmethod
    def tokenizer(self): ...

    @property
    @abstractmethod
    def device(self) -> "torch.device": ...

    @property
    @abstractmethod
    def dtype(self) -> "torch.dtype": ...

    @abstractmethod
    def hook_dim(self, hook: str) -> int:
        """Width of one token's activation at ``hook`` (flattened for ``attn.hook_z``)."""

    @abstractmethod
    def run_with_cache(
        self,
        input_ids: "torch.Tensor",
        hooks: Sequence[str],
        attention_mask: "torch.Tensor | None" = None,
        edit_hooks: Mapping[str, HookFn] | None = None,
    ) -> dict[str, "torch.Tensor"]:
        """Run a forward pass and return ``{hook: activations}``.

        Activations are ``[batch, pos, d]`` (``attn.hook_z`` flattened to
        ``n_heads * d_head``), detached, on the model's device. The pass stops
        after the last layer any requested hook needs. ``edit_hooks`` are
        applied first (for patching experiments).
        """

    @abstractmethod
    def logits(
        self,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor | None" = None,
        edit_hooks: Mapping[str, HookFn] | None = None,
    ) -> "torch.Tensor":
        """Full forward pass with optional edit hooks; returns ``[batch, pos, vocab]`` logits."""

    @abstractmethod
    def generate(
        self,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor | None" = None,
        *,
        edit_hooks: Mapping[str, HookFn] | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> "torch.Tensor":
        """Generate continuations with ``edit_hooks`` applied at every step.

        ``input_ids`` are left-padded prompts; returns only the new tokens,
        ``[batch, max_new_tokens]``, padded with the pad/eos id after EOS.
        """


class ModelBackendType(ABC):
    """A registered backend: turns a resolved model source into a :class:`HookedModel`."""

    name: str
    description: str

    @abstractmethod
    def load(self, source: "ModelSource", *, device: str = "cpu", dtype: str = "float32") -> HookedModel:
        """Load ``source`` on ``device`` in ``dtype`` (float32, float16 or bfloat16)."""


def max_positions_of(config: Any) -> int | None:
    """The position limit a Hugging Face or TransformerLens config declares, if any."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
