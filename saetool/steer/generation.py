"""Batched (optionally steered) generation over a list of prompts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from saetool.errors import SaetoolError
from saetool.models.hooks import hook_name
from saetool.steer.interventions import check_finite
from saetool.steer.prompts import batches, encode, left_pad, pad_id_of

if TYPE_CHECKING:
    import torch

    from saetool.models.base import HookedModel
    from saetool.sae.model import SAE
    from saetool.steer.interventions import Intervention


@dataclass
class GenerationSettings:
    """How completions are generated: greedy by default, or sampled with a seed."""

    max_new_tokens: int = 32
    batch_size: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise SaetoolError(f"max_new_tokens must be at least 1 (got {self.max_new_tokens})")
        if self.batch_size < 1:
            raise SaetoolError(f"batch_size must be at least 1 (got {self.batch_size})")
        if self.do_sample and self.temperature <= 0:
            raise SaetoolError(f"temperature must be positive when sampling (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise SaetoolError(f"top_p must be in (0, 1] (got {self.top_p})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Steering:
    """A resolved edit: which intervention, where, how strong, with what."""

    intervention: "Intervention"
    hook: str
    alpha: float
    vector: "torch.Tensor | None" = None  # already scaled (see interventions.scaled_vector)
    sae: "SAE | None" = None
    feature: int | None = None
    positions: str = "all"

    def make_hook(self, prompt_len: int):
        return self.intervention.make_hook(
            alpha=self.alpha,
            vector=self.vector,
            sae=self.sae,
            feature=self.feature,
            positions=self.positions,
            prompt_len=prompt_len,
            hook_name=self.hook,
        )


def _guard(hook: str, alpha: float | None) -> Callable:
    def fn(x):
        check_finite(x, hook + " (downstream of the steering edit)", alpha)
        return None

    return fn


def generate_completions(
    model: "HookedModel",
    texts: Sequence[str],
    *,
    chat: bool,
    settings: GenerationSettings,
    steering: Steering | None = None,
    seed: int | None = None,
    advance: Callable[[int], None] | None = None,
    strip: bool = True,
) -> list[str]:
    """Completions (new text only) for already formatted prompts ``texts``, in order.

    ``strip=False`` keeps the completion's leading space (and trailing
    whitespace), so ``prompt + completion`` is the text the model saw.

    Prompts are batched by length (left-padded); sampling is seeded per batch
    from ``seed`` (default ``settings.seed``), so a rerun gives the same text.
    With ``steering`` its hook is applied at every step, and a guard at the last
    layer turns NaN/inf activations into :class:`NonFiniteActivations`.
    """
    tok = model.tokenizer
    rows = encode(tok, texts, chat=chat)
    pad = pad_id_of(tok)
    base_seed = settings.seed if seed is None else seed
    out: list[str] = [""] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    if rows and model.max_positions is not None:  # before the first batch, not an IndexError midway
        longest = len(rows[order[-1]])
        room = max(model.max_positions - longest, 0)
        model.check_positions(
            longest + settings.max_new_tokens,
            f"--max-new-tokens {settings.max_new_tokens} after the longest prompt ({longest} tokens)",
            f"generate at most {room} tokens, or shorten the prompts" if room else "shorten the prompts",
        )
    last_hook = hook_name(model.n_layers - 1, "hook_resid_post")
    for b, chunk in enumerate(batches(order, settings.batch_size)):
        ids, mask = left_pad([rows[i] for i in chunk], pad)
        edits = None
        if steering is not None:
            edits = {steering.hook: steering.make_hook(ids.shape[1])}
            if steering.hook != last_hook:
                edits[last_hook] = _guard(last_hook, steering.alpha)
        new = model.generate(
            ids.to(model.device),
            mask.to(model.device),
            edit_hooks=edits,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=(base_seed + b) if settings.do_sample else None,
        )
        for row, i in enumerate(chunk):
            text = tok.decode(new[row].tolist(), skip_special_tokens=True)
            out[i] = text.strip() if strip else text
        if advance is not None:
            advance(len(chunk))
    return out
