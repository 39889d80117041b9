"""Is a finished run too short to have converged? One warning line, with the fix.

Judged on the per-step training curves (FVU = 1 - explained variance, L0 and the dead share)
at 60-70% and 70-80% of the run: before the last fifth, where a decaying
learning rate flattens (or, for warmup-stable-decay, steepens) every curve
whatever its state. A run is flagged when, over that tenth of its steps,

- the FVU still fell by more than :data:`FVU_DROP` of its value, or
- L0 still moved by more than :data:`L0_MOVE` (architectures whose L0 is
  learned: ReLU, JumpReLU), or
- the share of dead features (silent for the trainer's ``dead_tokens``
  window, the checklist's "dead in training") still moved by more than
  :data:`DEAD_MOVE` of all features (e.g. a short JumpReLU run whose
  thresholds are still switching features off). The share lags by that
  window (a quarter of the run by default) and is 0 until one window has
  passed, so it is judged only when the window is at most
  :data:`MAX_DEAD_WINDOW` of the run; or
- the final L0 is more than :data:`TARGET_TOLERANCE` away from ``--target-l0``, or
- the SAE still explains less than :data:`MIN_EV` of the training variance at
  the end (a curve that has not started to fall: e.g. a transcoder after 60 steps).

The thresholds come from short SmolLM2 runs (docs/tutorial.md): runs that
still gained markedly with 4x the tokens are flagged, runs that did not are not.

The default batch size follows the same rule (:func:`default_batch_size`): a
run of fewer than :data:`TARGET_STEPS` x :data:`DEFAULT_BATCH` tokens gets the
largest power of two from :data:`MIN_BATCH` rows that still gives it
:data:`TARGET_STEPS` steps.

The fix it names is more tokens and, when the run took fewer than
:data:`TARGET_STEPS` steps of more than :data:`MIN_BATCH` rows (per process),
a smaller batch (:func:`smaller_batch`): at a fixed number of tokens more,
smaller steps train further, at more CPU time per token (docs/benchmarks.md,
"train quality: rows per step"). The target of 256 steps is a trade against
that time (the default learning rate's short-run factor ends there at 4x
d_in), not a point past which smaller batches stop helping.
"""

from __future__ import annotations

from typing import Sequence

FVU_DROP = 0.05
L0_MOVE = 0.10
DEAD_MOVE = 0.05
MAX_DEAD_WINDOW = 0.5  # the dead share is judged from 60% of the run: its window must have passed by then
TARGET_TOLERANCE = 0.20
MIN_EV = 0.10
MIN_STEPS = 20  # fewer: too few steps to judge a trend; always flagged
TARGET_STEPS = 256  # a smaller batch is suggested until a run has this many steps ...
MIN_BATCH = 128  # ... down to this many rows per step (the train-quality grids' smallest)
DEFAULT_BATCH = 4096  # rows per step of a run long enough for TARGET_STEPS of them (1,048,576 tokens and more)
LONGER = "train longer: more --num-tokens (or --steps)"


def _window_mean(values: Sequence[float], lo: float, hi: float) -> float:
    n = len(values)
    a, b = int(n * lo), max(int(n * lo) + 1, int(n * hi))
    part = values[a:b]
    return sum(part) / len(part)


def _batch_for(tokens: int) -> int:
    """The largest power of two from :data:`MIN_BATCH` that reads ``tokens`` in at
    least :data:`TARGET_STEPS` steps (:data:`MIN_BATCH` where none does)."""
    size = MIN_BATCH
    while size * 2 * TARGET_STEPS <= tokens:
        size *= 2
    return size


def default_batch_size(tokens: int | None) -> int:
    """Rows per step when ``--batch-size`` is not given, for a run of ``tokens``
    tokens per process (``None``: unknown, a run of ``--steps``): :data:`DEFAULT_BATCH`,
    or for a run too short to give it :data:`TARGET_STEPS` steps, :func:`_batch_for`'s
    smaller batch, so that a small extract trains for hundreds of steps, not a few."""
    if tokens is None:
        return DEFAULT_BATCH
    return min(DEFAULT_BATCH, _batch_for(int(tokens)))


def smaller_batch(batch_size: int, steps: int) -> int | None:
    """Rows per step for a run of ``steps`` steps of ``batch_size`` rows: the largest
    power of two that gives the same tokens at least :data:`TARGET_STEPS` steps, or
    :data:`MIN_BATCH` where none does; ``None`` unless it is at most half the batch
    (at least twice the steps)."""
    if steps >= TARGET_STEPS or batch_size <= MIN_BATCH:
        return None
    size = _batch_for(batch_size * steps)
    return size if 2 * size <= batch_size else None


def steps_of(tokens: int, batch_size: int) -> int:
    """Steps that read ``tokens`` in batches of ``batch_size`` (the trainer rounds up)."""
    return -(-tokens // batch_size)


def fix_for(batch_size: int, steps: int, *, steps_given: bool = False) -> str:
    """The warning's fix: more tokens, and a smaller batch where :func:`smaller_batch`
    finds one (with its ``--steps`` when the run was given ``steps_given``)."""
    size = smaller_batch(batch_size, steps)
    if size is None:
        return LONGER
    more = steps_of(batch_size * steps, size)
    return f"{LONGER}, or more steps over these tokens: --batch-size {size}" + (f" --steps {more}" if steps_given else f" ({more} steps)")


def convergence_warning(fvu: Sequence[float], l0: Sequence[float], *, learned_l0: bool, target_l0: float | None = None,
                        dead: Sequence[float] = (), dead_window: float = 0.25, fix: str = LONGER) -> str | None:
    """The warning text for per-step curves ``fvu``, ``l0`` and (optionally) ``dead``, or ``None`` when the run looks converged.

    ``dead_window``: the dead share's window as a fraction of the run; ``fix``: what to do (:func:`fix_for`)."""
    n = len(fvu)
    if n == 0:
        return None
    reasons = []
    if n < MIN_STEPS:
        reasons.append(f"only {n} steps")
    else:
        before, after = _window_mean(fvu, 0.6, 0.7), _window_mean(fvu, 0.7, 0.8)
        if before > 0 and (before - after) / before > FVU_DROP:
            reasons.append(f"the training FVU still fell {100 * (before - after) / before:.0f}% between 60-70% and 70-80% of the steps ({before:.3g} -> {after:.3g})")
        if learned_l0:
            l_before, l_after = _window_mean(l0, 0.6, 0.7), _window_mean(l0, 0.7, 0.8)
            if l_before > 0 and abs(l_after - l_before) / l_before > L0_MOVE:
                reasons.append(f"L0 still moved {100 * abs(l_after - l_before) / l_before:.0f}% ({l_before:.0f} -> {l_after:.0f})")
        if len(dead) == n and dead_window <= MAX_DEAD_WINDOW:
            d_before, d_after = _window_mean(dead, 0.6, 0.7), _window_mean(dead, 0.7, 0.8)
            if abs(d_after - d_before) > DEAD_MOVE:
                reasons.append(f"the dead features still went from {100 * d_before:.0f}% to {100 * d_after:.0f}%")
    final_fvu = _window_mean(fvu, 0.9, 1.0)
    if 1 - final_fvu < MIN_EV:
        reasons.append(f"it explains only {1 - final_fvu:.2f} of the training variance")
    if target_l0 is not None and l0:
        final = _window_mean(l0, 0.95, 1.0)
        if abs(final / target_l0 - 1) > TARGET_TOLERANCE:
            reasons.append(f"L0 ended at {final:.0f}, not within {100 * TARGET_TOLERANCE:.0f}% of the target L0 {target_l0:g}")
    if not reasons:
        return None
    return "this run looks too short to converge (" + "; ".join(reasons) + "); " + fix
