"""Settings of one SAE training run (what ``saetool train`` options map to)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from saetool.errors import ConfigError, SaetoolError
from saetool.train.schedules import AUX_COEFF, LR_SCHEDULES

B_DEC_INITS = ("geometric-median", "mean", "zeros")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class Targets:
    """What the training checklist judges a finished SAE against (``None``: shown
    without a target). The default preset comes from measurement
    (docs/benchmarks.md, train quality); ``seed002`` is seed 002's list."""

    fvu: float | None = 0.35
    """held-out FVU (1 - explained variance) below this"""
    scaled_mse: float | None = None
    """held-out per-element MSE on the trainer's scaled inputs below this, seed 002's reconstruction loss"""
    l0_min: float = 5.0
    """Fewest active features per token on the held-out rows."""
    l0_max: float = 200.0
    """Most active features per token on the held-out rows."""
    dead: float = 0.10
    """fraction of features dead in training below this"""

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
    """Collect samples every N steps (and at the last step)."""
    per_feature: int = 20
    """Samples kept per feature."""
    context: int = 20
    """Tokens of context stored around each sample."""
    threshold: float = 0.1
    """Only activations above this are kept."""
    features: int = 100
    """Store samples of this many features, most active first (0: all)."""

    def validate(self) -> None:
        for name in ("every", "per_feature", "context"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`samples.{name}` must be at least 1 (got {getattr(self, name)})")
        if self.features < 0:
            raise ConfigError(f"`samples.features` must be 0 (all) or more (got {self.features})")


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` means "the architecture's
    default" (learning rate, sparsity coefficient) or "derived" (the rest)."""

    arch: str = "topk"
    """Architecture: relu, topk, batchtopk, jumprelu, matryoshka, transcoder, crosscoder (with --hooks; or a plugin's)."""
    d_sae: int | None = None
    """Number of features (default: 8 x d_in)."""
    expansion_factor: float | None = None
    """Features per input dimension (instead of `d_sae`)."""
    k: int | None = None
    """Active features per token for topk/batchtopk/matryoshka/transcoder (default 32)."""
    target_l0: float | None = None
    """Steer the sparsity coefficient (or set k) to reach this L0 (default for jumprelu trained from scratch without `sparsity_coeff`: 32, or the geometric middle of the checklist's L0 range when that excludes 32)."""
    hook: str | None = None
    """Hook to read (default: the file's first hook)."""
    hook_out: str | None = None
    """Hook to reconstruct (a transcoder), e.g. blocks.3.hook_mlp_out."""
    lr: float | None = None
    """Adam learning rate of the decoder (default: 1.5e-3 x sqrt(16384 / d_sae) for topk, batchtopk and matryoshka, e.g. 4e-3 at 2,304 features, 1e-3 x sqrt(16384 / d_sae) for transcoder; their short runs x sqrt(256 / steps), at most x2, where a run of an SAE wider than 4x d_in counts as long only from 256 x sqrt(d_sae / (4 d_in)) steps (512 at 16x and wider), e.g. on SmolLM2's 576 dimensions 8e-3 at 2,304 features and 64 steps, 2.8e-3 at 9,216 features and 256 steps; relu 4e-4, jumprelu 3e-4, crosscoder 1e-4 at 16384, at every budget)."""
    encoder_lr_ratio: float | None = None
    """The encoder's learning rate as a fraction of `lr` (default: 1/3 for topk, batchtopk and matryoshka, which leaves fewer features dead: docs/benchmarks.md; 1 for the others)."""
    lr_schedule: str = "wsd"
    """wsd (warmup, constant, linear decay to 0 over the last `decay_fraction`), cosine (warmup, cosine decay to 0) or constant."""
    decay_fraction: float = 0.2
    """Share of the steps over which the wsd schedule decays the learning rate to 0."""
    batch_size: int | None = None
    """Tokens per step (per process under torchrun). Default: 4,096, or for a run of fewer than 256 x 4,096 tokens the largest power of two from 128 that still gives it 256 steps (e.g. 256 for 65,536 tokens: smaller steps train further on few tokens, docs/benchmarks.md); 4,096 for a run given in `steps`. A run resumed from a checkpoint keeps the checkpoint's."""
    num_tokens: int | None = None
    """Training tokens (default: one pass over the training rows)."""
    steps: int | None = None
    """Training steps (instead of `num_tokens`)."""
    sparsity_coeff: float | None = None
    """Sparsity coefficient: L1 (relu) or L0 (jumprelu) penalty weight, fixed (default: relu 5; jumprelu starts at 1 and is steered to `target_l0`'s default unless this or `target_l0` is given)."""
    warmup_steps: int | None = None
    """Linear LR warmup steps (default: 5% of steps, at most 1000)."""
    sparsity_warmup_steps: int | None = None
    """Steps to ramp the sparsity coefficient up from 0 (default: 5% of steps for relu/jumprelu)."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0: off)."""
    init_b_dec: str = "geometric-median"
    """Initial decoder bias: geometric-median, mean or zeros."""
    normalize_inputs: bool = True
    """Scale the inputs by a constant estimated from the data before training."""
    apply_b_dec_to_input: bool = True
    """Subtract the decoder bias (initialised at the data's centre) from the input before encoding, so features start centred on the data: without it a large mean (Gemma 3's residual stream) leaves the features pointing away from it dead (docs/benchmarks.md). Transcoders never do."""
    dead_tokens: int | None = None
    """Tokens without firing after which a feature counts as dead (default: min(1M, a quarter of training))."""
    aux_dead_tokens: int | None = None
    """Tokens without firing after which the AuxK loss trains a feature (default: a sixteenth of training, 4,096 to 1M, at most `dead_tokens`, at least one batch)."""
    aux_k: int | None = None
    """Dead features used by the AuxK loss (default: d_in/2)."""
    aux_coeff: float = AUX_COEFF
    """Weight of the AuxK loss that revives dead features (TopK family; OpenAI's and sparsify's 1/32 leaves more dead in short runs: docs/benchmarks.md)."""
    max_norm_ratio: float | None = None
    """Leave out massive-activation tokens: farther from the median row than this x the median distance (counted on stderr and in the artifact; see docs/tutorial.md). Default: keep every token."""
    val_fraction: float = 0.05
    """Fraction of sequences held out for validation."""
    val_tokens: int = 16384
    """At most this many held-out tokens are evaluated."""
    shuffle_buffer: int = 65536
    """Rows held in the shuffle buffer (bounds memory)."""
    checkpoint_every: int = 1000
    """Write a checkpoint (and validate) every N steps."""
    log_every: int = 50
    """Record a history row every N steps."""
    seed: int = 0
    """Seed for initialisation and shuffling."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or mps."""
    dtype: str = "float32"
    """Training dtype: float32, bfloat16 or float16."""
    samples: SampleSettings | None = None
    """Keep the top-activating tokens of each feature (``None``: off)."""
    targets: Targets = field(default_factory=Targets)
    """What the checklist judges the finished SAE against."""
    init_from: str | None = None
    """Start from a pretrained SAE (an sae artifact, an SAE folder or a pretrained RELEASE/SAE_ID)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Architecture options (stored in the SAE's config)."""

    def validate(self) -> None:
        """Settings errors that need no data (one-line :class:`SaetoolError`)."""
        positive = {"checkpoint_every": self.checkpoint_every, "log_every": self.log_every, "shuffle_buffer": self.shuffle_buffer}
        for name, value in positive.items():
            if value is None or value < 1:
                raise ConfigError(f"`{name}` must be at least 1 (got {value})")
        for name in ("batch_size", "d_sae", "k", "num_tokens", "steps", "aux_k", "dead_tokens", "aux_dead_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"`{name}` must be at least 1 (got {value})")
        for name in ("warmup_steps", "sparsity_warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"`{name}` must be 0 or more (got {value})")
        if self.target_l0 is not None and not (self.target_l0 > 0 and math.isfinite(self.target_l0)):
            raise ConfigError(f"`target_l0` must be a positive number of features (got {self.target_l0})")
        if self.d_sae is not None and self.expansion_factor is not None:
            raise ConfigError("give `d_sae` or `expansion_factor`, not both")
        if self.expansion_factor is not None and not self.expansion_factor > 0:
            raise ConfigError(f"`expansion_factor` must be positive (got {self.expansion_factor})")
        if self.lr is not None and not (self.lr >= 0 and math.isfinite(self.lr)):
            raise ConfigError(f"`lr` must be a non-negative number (got {self.lr})")
        if self.encoder_lr_ratio is not None and not (self.encoder_lr_ratio >= 0 and math.isfinite(self.encoder_lr_ratio)):
            raise ConfigError(f"`encoder_lr_ratio` must be a non-negative number (got {self.encoder_lr_ratio})")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown `lr_schedule` {self.lr_schedule!r}", hint="choose one of: " + ", ".join(LR_SCHEDULES))
        if not 0 <= self.decay_fraction <= 1:
            raise ConfigError(f"`decay_fraction` must be in [0, 1] (got {self.decay_fraction})")
        if self.sparsity_coeff is not None and not (self.sparsity_coeff >= 0 and math.isfinite(self.sparsity_coeff)):
            raise ConfigError(f"`sparsity_coeff` must be a non-negative number (got {self.sparsity_coeff})")
        if not self.grad_clip >= 0:
            raise ConfigError(f"`grad_clip` must be 0 (off) or positive (got {self.grad_clip})")
        if self.max_norm_ratio is not None and not (self.max_norm_ratio > 0 and math.isfinite(self.max_norm_ratio)):
            raise ConfigError(f"`max_norm_ratio` must be a positive number (got {self.max_norm_ratio})")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must be in [0, 1) (got {self.val_fraction})")
        if self.val_tokens < 0:
            raise ConfigError(f"`val_tokens` must be 0 or more (got {self.val_tokens})")
        if self.init_b_dec not in B_DEC_INITS:
            raise ConfigError(f"unknown `init_b_dec` {self.init_b_dec!r}", hint="choose one of: " + ", ".join(B_DEC_INITS))
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown `dtype` {self.dtype!r}", hint="choose one of: " + ", ".join(DTYPES))
        if self.samples is not None:
            self.samples.validate()
        if self.steps is not None and self.num_tokens is not None:
            raise ConfigError("give `steps` or `num_tokens`, not both")

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
