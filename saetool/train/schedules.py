"""Learning-rate and sparsity-coefficient schedules (pure functions of the step).

``wsd`` (warmup-stable-decay, the default): linear warmup, the full rate, then a
linear decay to 0 over the last ``decay_fraction`` of the steps. ``cosine``:
warmup, then cosine decay to 0 over all remaining steps. ``constant``: warmup,
then the full rate to the end.
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("wsd", "cosine", "constant")
REFERENCE_WIDTH = 1 << 14  # d_sae at which an architecture's ``default_lr`` applies
LONG_RUN_STEPS = 256  # SAEs up to SHORT_RUN_WIDTH x d_in this long or longer get the reference rate; shorter ones more (see budget_lr_factor)
SHORT_RUN_WIDTH = 4  # d_sae / d_in: a wider SAE's run counts as long only at LONG_RUN_STEPS x sqrt((d_sae / d_in) / 4) steps (see budget_lr_factor) ...
SHORT_RUN_WIDTH_MAX = 16  # ... counting widths up to this one, the widest measured (wider SAEs: as 16x)
AUX_COEFF = 0.25  # the AuxK loss's default weight (see default_aux_dead_tokens; OpenAI's and sparsify's is 1/32)
DEAD_WINDOW_MAX = 1_000_000  # tokens: the longest default dead window (see default_dead_tokens)
DEAD_WINDOW_MIN = 4096  # tokens: the shortest default AuxK window (see default_aux_dead_tokens)
DEAD_WINDOW_SHARE = 16  # the default AuxK window is this fraction (1/N) of the run, within the bounds
TOPK_LR = 1.5e-3  # topk, batchtopk, matryoshka: the decoder's rate at d_sae 2**14 (see ENCODER_LR_RATIO)
FORMER_TOPK_LR = 1e-3  # its one rate for both before ENCODER_LR_RATIO (checkpoints from then resume with it)
RELU_LR = 4e-4  # relu at d_sae 2**14: measured on SmolLM2 and Gemma 3 (docs/benchmarks.md, "train quality: JumpReLU and ReLU")
FORMER_RELU_LR = 1e-4  # its rate before RELU_LR (checkpoints from before the encoder's own rate resume with it)
ENCODER_LR_RATIO = 1 / 3  # topk, batchtopk, matryoshka: encoder rate / decoder rate, measured on SmolLM2 (docs/benchmarks.md, "train quality")


def budget_lr_factor(steps: int | None, max_factor: float = 2.0, width: float = 1.0) -> float:
    """How much a run of ``steps`` steps raises the default learning rate of an SAE
    ``width`` = d_sae / d_in times wider than its input: ``sqrt(256 / steps x
    s)`` clamped to ``[1, max_factor]``, ``s = sqrt(width / 4)`` within ``[1, 2]``.
    Up to 4x d_in: at most 2 at 64 steps or fewer, 1.41 at 128, 1 from 256 on; a
    wider SAE's features each see fewer tokens, so its run counts as short for
    longer (8x: 1.68 at 128 steps, 1.19 at 256, 1 from 362; 16x: 2 up to 128,
    1.41 at 256, 1 from 512). Measured on TopK, SmolLM2 and Gemma 3 up to 16x,
    so wider SAEs count as 16x (docs/benchmarks.md, "train quality")."""
    if steps is None or steps < 1 or max_factor <= 1:
        return 1.0
    stretch = math.sqrt(min(SHORT_RUN_WIDTH_MAX, max(SHORT_RUN_WIDTH, width)) / SHORT_RUN_WIDTH)
    return min(max_factor, max(1.0, math.sqrt(LONG_RUN_STEPS / steps * stretch)))


def former_short_run_max_factor(d_sae: int, d_in: int, limit: float = 2.0) -> float:
    """The most a short run raised the rate of an SAE ``d_sae / d_in`` times wider
    than its input before every width got :func:`budget_lr_factor`'s factor:
    ``sqrt(d_sae / (4 d_in))`` clamped to ``[1, limit]`` (1 at 4x, 2 from 16x), a
    cap on the factor ``sqrt(256 / steps)`` of 4x and narrower SAEs. Only
    checkpoints from then, which did not store their rate, resume with it."""
    if limit <= 1 or d_in < 1:
        return 1.0
    return min(limit, max(1.0, math.sqrt(d_sae / (SHORT_RUN_WIDTH * d_in))))


def default_lr(reference: float, d_sae: int, steps: int | None = None, max_factor: float = 1.0, *, d_in: int | None = None) -> float:
    """The default learning rate: ``reference`` at ``d_sae = 2**14``, scaled by
    ``1 / sqrt(d_sae / 2**14)`` (wider SAEs take smaller steps), times
    :func:`budget_lr_factor` of the run's ``steps`` and width ``d_sae / d_in``
    (at most ``max_factor``; 1: none; ``d_in`` None: the factor of 4x d_in or narrower)."""
    width = d_sae / d_in if d_in else 1.0
    return reference / math.sqrt(max(1, d_sae) / REFERENCE_WIDTH) * budget_lr_factor(steps, max_factor, width)


def default_dead_tokens(total_tokens: int, batch: int) -> int:
    """Tokens without firing after which a feature counts as dead in training's
    reports (the checklist's "dead in training"): a quarter of the run, at most
    1M, never less than one batch."""
    return max(int(batch), min(DEAD_WINDOW_MAX, int(total_tokens) // 4))


def dead_tokens_from_steps(steps: int, batch_size: int, world_size: int = 1) -> int:
    """``--dead-steps``: a window of ``steps`` steps in tokens. A step reads
    ``batch_size`` tokens in each of the ``world_size`` processes (torchrun)."""
    return int(steps) * int(batch_size) * max(1, int(world_size))


def default_aux_dead_tokens(total_tokens: int, batch: int, dead_tokens: int) -> int:
    """Tokens without firing after which the AuxK loss starts training a feature:
    a sixteenth of the run, at least 4,096 tokens, at most 1M and at most
    ``dead_tokens``, never less than one batch. Measured on SmolLM2
    (docs/benchmarks.md, "train quality"): with a window of a quarter of the run,
    64 steps of 1,024 rows leave 9.7% of the features never firing on held-out
    text; with 4,096 tokens (and ``aux_coeff`` 0.25) 1.2%, at the same held-out
    FVU. A shorter window than the reports' keeps rare features that still fire
    from being reported dead."""
    window = min(DEAD_WINDOW_MAX, max(DEAD_WINDOW_MIN, int(total_tokens) // DEAD_WINDOW_SHARE))
    return max(int(batch), min(int(dead_tokens), window))


def lr_at(step: int, *, total: int, lr: float, warmup: int, schedule: str = "wsd", decay_fraction: float = 0.2) -> float:
    """The learning rate at ``step`` (counted from 0) of a ``total``-step run."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        span = max(1, total - warmup)
        progress = min(1.0, (step - warmup) / span)
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "wsd":
        decay = max(1, round(total * decay_fraction)) if decay_fraction > 0 else 0
        start = max(warmup, total - decay)
        if step < start:
            return lr
        return lr * max(0.0, (total - step) / max(1, total - start))
    raise ValueError(f"unknown schedule {schedule!r}")


def sparsity_at(step: int, *, coeff: float, warmup: int) -> float:
    """The sparsity coefficient, ramped linearly from 0 over ``warmup`` steps."""
    if warmup > 0 and step < warmup:
        return coeff * (step + 1) / warmup
    return coeff


class L0Controller:
    """Steers sparsity so that L0 (active features per token) reaches ``target``.

    Two levers, both driven by ``e = log(l0 / target)`` after each step:

    - the sparsity coefficient, integrally: ``log(coeff) += gain * e``, so that
      in the long run the loss itself asks for the target L0;
    - a direct multiplicative nudge, :meth:`nudge` ``= exp(nudge_gain * e)``
      (clipped), that the objective applies to its thresholds (JumpReLU): it
      acts at once, whatever the learning rate schedule, which a short run needs.

    Each move is clipped to ``±max_move`` in log space. The state is one number
    (:attr:`log_coeff`).
    """

    def __init__(self, target: float, coeff: float, *, gain: float = 0.05, nudge_gain: float = 0.1, max_move: float = 0.05) -> None:
        self.target = float(target)
        self.log_coeff = math.log(max(coeff, 1e-8))
        self.gain = float(gain)
        self.nudge_gain = float(nudge_gain)
        self.max_move = float(max_move)

    @property
    def coeff(self) -> float:
        return math.exp(self.log_coeff)

    def _error(self, l0: float) -> float:
        return math.log(max(l0, 1e-3) / self.target) if math.isfinite(l0) else 0.0

    def _clip(self, v: float) -> float:
        return max(-self.max_move, min(self.max_move, v))

    def update(self, l0: float) -> float:
        """Fold in one step's L0; returns the factor to apply to the thresholds (1: none)."""
        e = self._error(l0)
        self.log_coeff += self._clip(self.gain * e)
        return math.exp(self._clip(self.nudge_gain * e))
