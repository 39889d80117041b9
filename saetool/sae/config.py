"""What defines an SAE, independent of how it was trained."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: How an inference SAE turns pre-activations into feature activations.
ACTIVATIONS = ("relu", "topk", "jumprelu")


@dataclass
class SAEConfig:
    """Shape, hook and activation of an SAE.

    ``activation`` is the inference rule: ``relu``; ``topk`` (keep the ``k``
    largest, ReLU'd); ``jumprelu`` (keep ``pre`` where ``pre > threshold``, a
    per-feature threshold; BatchTopK and Matryoshka SAEs use this at inference
    with their learned threshold). ``hook_out`` differs from ``hook`` for a
    transcoder, which reads one hook and reconstructs another.
    """

    arch: str
    d_in: int
    d_sae: int
    hook: str
    activation: str = "relu"
    hook_out: str | None = None
    d_out: int | None = None
    k: int | None = None
    model: str | None = None
    apply_b_dec_to_input: bool = False
    dtype: str = "float32"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.d_out is None:
            self.d_out = self.d_in
        if self.hook_out is None:
            self.hook_out = self.hook

    @property
    def is_transcoder(self) -> bool:
        return self.hook_out != self.hook

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SAEConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
