"""What defines an SAE, independent of how it was trained."""

from __future__ import annotations

import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from saetool.errors import SaetoolError

#: How an inference SAE turns pre-activations into feature activations.
ACTIVATIONS = ("relu", "topk", "jumprelu")

#: The dtypes an SAE's weights may have.
DTYPES = ("float32", "float16", "bfloat16", "float64")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class SAEConfig:
    """Shape, hook and activation of an SAE.

    ``activation`` is the inference rule: ``relu``; ``topk`` (keep the ``k``
    largest, ReLU'd); ``jumprelu`` (keep ``pre`` where ``pre > threshold``, a
    per-feature threshold; BatchTopK and Matryoshka SAEs use this at inference
    with their learned threshold). ``hook_out`` differs from ``hook`` for a
    transcoder, which reads one hook and reconstructs another. ``skip``: the
    output also has a linear skip term ``x @ W_skip`` (``W_skip [d_in, d_out]``;
    Gemma Scope 2's affine transcoders, SAELens skip transcoders).
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
    skip: bool = False

    def __post_init__(self) -> None:
        if self.d_out is None:
            self.d_out = self.d_in
        if self.hook_out is None:
            self.hook_out = self.hook
        problem = self.problem()
        if problem is not None:
            raise SaetoolError(f"SAE config field {problem}", hint="the config is corrupt or hand-edited")

    def problem(self) -> str | None:
        """What is wrong with the fields (``"d_in is -3, expected a positive integer"``), or None."""
        for name in ("d_in", "d_sae", "d_out"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                return f"{name} is {value!r}, expected a positive integer"
        for name in ("arch", "hook", "hook_out"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                return f"{name} is {value!r}, expected a non-empty name"
        if self.activation not in ACTIVATIONS:
            return f"activation is {self.activation!r}, expected one of {', '.join(ACTIVATIONS)}"
        if self.k is not None and (not _is_int(self.k) or not 1 <= self.k <= self.d_sae):
            return f"k is {self.k!r}, expected an integer from 1 to d_sae ({self.d_sae})"
        if self.activation == "topk" and self.k is None:
            return "k is missing, required for a topk SAE"
        if str(self.dtype).removeprefix("torch.") not in DTYPES:
            return f"dtype is {self.dtype!r}, expected one of {', '.join(DTYPES)}"
        if self.model is not None and not isinstance(self.model, str):
            return f"model is {self.model!r}, expected a name"
        if not isinstance(self.apply_b_dec_to_input, bool):
            return f"apply_b_dec_to_input is {self.apply_b_dec_to_input!r}, expected true or false"
        if not isinstance(self.skip, bool):
            return f"skip is {self.skip!r}, expected true or false"
        if not isinstance(self.options, dict):
            return f"options is {self.options!r}, expected an object"
        return None

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every weight an SAE with this config has (SAELens names and layout)."""
        shapes = {"W_enc": (self.d_in, self.d_sae), "b_enc": (self.d_sae,), "W_dec": (self.d_sae, int(self.d_out or self.d_in)), "b_dec": (int(self.d_out or self.d_in),)}
        if self.activation == "jumprelu":
            shapes["threshold"] = (self.d_sae,)
        if self.skip:
            shapes["W_skip"] = (self.d_in, int(self.d_out or self.d_in))
        return shapes

    @property
    def is_transcoder(self) -> bool:
        return self.hook_out != self.hook

    @property
    def subtracts_b_dec(self) -> bool:
        """Whether the encoder reads ``x - b_dec`` (``apply_b_dec_to_input``; never a transcoder)."""
        return bool(self.apply_b_dec_to_input) and not self.is_transcoder

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``skip`` only when set, so SAEs without one keep their former config."""
        data = asdict(self)
        if not self.skip:
            del data["skip"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | None = None) -> "SAEConfig":
        """The config from a dict (unknown keys ignored); a missing or malformed field is a
        one-line :class:`SaetoolError` naming ``source`` (the file) and the field."""
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        where = f"{source}: " if source else ""
        if not isinstance(data, dict):
            raise SaetoolError(f"{where}the SAE config is {type(data).__name__}, not an object", hint="the config is corrupt or hand-edited")
        missing = [name for name in required if name not in data]
        if missing:
            raise SaetoolError(f"{where}SAE config field {missing[0]} is missing", hint="the config is corrupt or hand-edited")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except SaetoolError as exc:
            raise SaetoolError(where + exc.message, hint=exc.hint) from None
