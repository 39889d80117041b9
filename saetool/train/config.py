"""Settings of one SAE training run (what ``saetool train`` options map to)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from saetool.errors import SaetoolError
from saetool.train.schedules import LR_SCHEDULES

B_DEC_INITS = ("geometric-median", "mean", "zeros")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class Targets:
    """What the training checklist judges a finished SAE against (``None``: shown
    without a target). The default preset comes from measurement
    (docs/benchmarks.md, train quality); ``seed002`` is seed 002's list."""

    fvu: float | None = 0.35
    scaled_mse: float | None = None
    l0_min: float = 5.0
    l0_max: float = 200.0
    dead: float = 0.10

    @staticmethod
    def steering_l0(text: str) -> float | None:
        """``"64"`` -> ``64.0`` (a single number steers training to it); ``"50-100"`` -> ``None``."""
        parts = str(text).replace(" ", "").split("-")
        if len(parts) != 1:
            return None
        try:
            return float(parts[0])
        except ValueError:
            return None

    @classmethod
    def preset(cls, name: str) -> "Targets":
        """``default`` or ``seed002`` (reconstruction loss < 0.01 as per-element MSE
        on scaled inputs, L0 50-100, dead < 10%)."""
        if name == "default":
            return cls()
        if name == "seed002":
            return cls(fvu=None, scaled_mse=0.01, l0_min=50.0, l0_max=100.0, dead=0.10)
        raise SaetoolError(f"unknown --checklist {name!r}", hint="choose one of: " + ", ".join(CHECKLISTS))

    @classmethod
    def parse_l0(cls, text: str) -> tuple[float, float]:
        """``"50-100"`` -> ``(50.0, 100.0)``; a single number ``N`` -> ``N`` +-20%."""
        parts = str(text).replace(" ", "").split("-")
        try:
            if len(parts) == 1:
                n = float(parts[0])
                return 0.8 * n, 1.2 * n
            if len(parts) == 2:
                low, high = float(parts[0]), float(parts[1])
                if low <= high:
                    return low, high
        except ValueError:
            pass
        raise SaetoolError(f"--target-l0 must look like MIN-MAX, e.g. 50-100 (got {text!r})")


CHECKLISTS = ("default", "seed002")


@dataclass
class SampleSettings:
    """Collect top-activating tokens per feature during training (seed 004)."""

    every: int = 1000
    per_feature: int = 20
    context: int = 20
    threshold: float = 0.1
    features: int = 100  # how many features to store (most frequently active first); 0 = all

    def validate(self) -> None:
        for name in ("every", "per_feature", "context"):
            if getattr(self, name) < 1:
                raise SaetoolError(f"--sample-{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.features < 0:
            raise SaetoolError(f"--sample-features must be 0 (all) or more (got {self.features})")


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` means "the architecture's
    default" (learning rate, sparsity coefficient) or "derived" (the rest)."""

    arch: str = "topk"
    d_sae: int | None = None
    expansion_factor: float | None = None
    k: int | None = None
    target_l0: float | None = None  # steer the sparsity coefficient (or set k) to reach this L0
    hook: str | None = None
    hook_out: str | None = None
    lr: float | None = None
    lr_schedule: str = "wsd"
    decay_fraction: float = 0.2
    batch_size: int = 4096
    num_tokens: int | None = None
    steps: int | None = None
    sparsity_coeff: float | None = None
    warmup_steps: int | None = None
    sparsity_warmup_steps: int | None = None
    grad_clip: float = 1.0
    init_b_dec: str = "geometric-median"
    normalize_inputs: bool = True
    dead_tokens: int | None = None
    aux_k: int | None = None
    aux_coeff: float = 1 / 32
    max_norm_ratio: float | None = None  # leave out tokens whose norm is above this x the median
    val_fraction: float = 0.05
    val_tokens: int = 16384
    shuffle_buffer: int = 65536
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    samples: SampleSettings | None = None
    targets: Targets = field(default_factory=Targets)
    init_from: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Settings errors that need no data (one-line :class:`SaetoolError`)."""
        positive = {"batch_size": self.batch_size, "checkpoint_every": self.checkpoint_every, "log_every": self.log_every, "shuffle_buffer": self.shuffle_buffer}
        for name, value in positive.items():
            if value is None or value < 1:
                raise SaetoolError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        for name in ("d_sae", "k", "num_tokens", "steps", "aux_k", "dead_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SaetoolError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        for name in ("warmup_steps", "sparsity_warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SaetoolError(f"--{name.replace('_', '-')} must be 0 or more (got {value})")
        if self.target_l0 is not None and not (self.target_l0 > 0 and math.isfinite(self.target_l0)):
            raise SaetoolError(f"--target-l0 must be a positive number of features (got {self.target_l0})")
        if self.d_sae is not None and self.expansion_factor is not None:
            raise SaetoolError("give --d-sae or --expansion-factor, not both")
        if self.expansion_factor is not None and not self.expansion_factor > 0:
            raise SaetoolError(f"--expansion-factor must be positive (got {self.expansion_factor})")
        if self.lr is not None and not (self.lr >= 0 and math.isfinite(self.lr)):
            raise SaetoolError(f"--lr must be a non-negative number (got {self.lr})")
        if self.lr_schedule not in LR_SCHEDULES:
            raise SaetoolError(f"unknown --lr-schedule {self.lr_schedule!r}", hint="choose one of: " + ", ".join(LR_SCHEDULES))
        if not 0 <= self.decay_fraction <= 1:
            raise SaetoolError(f"--decay-fraction must be in [0, 1] (got {self.decay_fraction})")
        if self.sparsity_coeff is not None and not (self.sparsity_coeff >= 0 and math.isfinite(self.sparsity_coeff)):
            raise SaetoolError(f"--l1-coeff must be a non-negative number (got {self.sparsity_coeff})")
        if not self.grad_clip >= 0:
            raise SaetoolError(f"--grad-clip must be 0 (off) or positive (got {self.grad_clip})")
        if self.max_norm_ratio is not None and not (self.max_norm_ratio > 0 and math.isfinite(self.max_norm_ratio)):
            raise SaetoolError(f"--max-norm-ratio must be a positive number (got {self.max_norm_ratio})")
        if not 0 <= self.val_fraction < 1:
            raise SaetoolError(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")
        if self.val_tokens < 0:
            raise SaetoolError(f"--val-tokens must be 0 or more (got {self.val_tokens})")
        if self.init_b_dec not in B_DEC_INITS:
            raise SaetoolError(f"unknown --init-b-dec {self.init_b_dec!r}", hint="choose one of: " + ", ".join(B_DEC_INITS))
        if self.dtype not in DTYPES:
            raise SaetoolError(f"unknown --dtype {self.dtype!r}", hint="choose one of: " + ", ".join(DTYPES))
        if self.samples is not None:
            self.samples.validate()
        if self.steps is not None and self.num_tokens is not None:
            raise SaetoolError("give --steps or --num-tokens, not both")

    def d_sae_for(self, d_in: int) -> int:
        if self.d_sae is not None:
            return int(self.d_sae)
        return max(1, int(round(d_in * (self.expansion_factor or 8.0))))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if isinstance(kw.get("samples"), dict):
            kw["samples"] = SampleSettings(**kw["samples"])
        if isinstance(kw.get("targets"), dict):
            given = dict(kw["targets"])
            if "mse" in given:  # records written before the rename call the scaled MSE "mse"
                given.setdefault("scaled_mse", given.pop("mse"))
            names = {f.name for f in fields(Targets)}
            kw["targets"] = Targets(**{k: v for k, v in given.items() if k in names})
        return cls(**kw)
