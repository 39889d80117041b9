"""Training a crosscoder (``train --arch crosscoder --hooks ...``): per-hook normalisation in, folded out.

The source gives every hook's rows side by side (:class:`~saetool.train.source.ActivationSource`
with ``hooks``). Residual streams grow with depth, so by default each hook is
first scaled to the mean norm ``sqrt(width)`` (factors from the files' stored
row norms, the same on every run of the same files, so ``--resume`` sees them
again); the trainer then fits the architecture's objective
(:class:`~saetool.train.objectives.CrosscoderObjective`), and the factors are
folded into the saved weights so the artifact takes raw activations.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import torch

from saetool.artifacts.norms import file_norms
from saetool.errors import SaetoolError
from saetool.train.config import TrainConfig
from saetool.train.source import Batch

if TYPE_CHECKING:
    from saetool.sae.model import SAE
    from saetool.train.source import ActivationSource


def hook_scales(source: "ActivationSource") -> list[float]:
    """Per hook, ``sqrt(width) / mean row norm`` over every row of the files."""
    scales = []
    for hook, width in zip(source.hooks, source.widths):
        norms = np.concatenate([file_norms(f, hook) for f in source.files]).astype(np.float64)
        mean = float(norms.mean()) if norms.size else 0.0
        if not mean > 0 or not math.isfinite(mean):
            raise SaetoolError(f"the activations at {hook} are all zero (mean norm {mean})", hint="leave that hook out of --hooks")
        scales.append(math.sqrt(width) / mean)
    return scales


def crosscoder_config(config: TrainConfig, source: "ActivationSource") -> TrainConfig:
    """``config`` with the crosscoder's hooks, widths and per-hook factors in its options."""
    if config.samples is not None:
        raise SaetoolError("--collect-samples reads one hook and a crosscoder reads several", hint="drop --collect-samples")
    normalize = bool(config.options.get("normalize_hooks", True))
    scales = hook_scales(source) if normalize else [1.0] * len(source.hooks)
    return replace(config, options={**config.options, "hooks": list(source.hooks), "widths": list(source.widths), "hook_scales": scales})


def scale_vector(config: TrainConfig) -> "torch.Tensor | None":
    """``[d_in]``: each hook's factor over its block (``None``: all 1)."""
    scales = config.options.get("hook_scales") or []
    if all(s == 1.0 for s in scales):
        return None
    return torch.cat([torch.full((int(w),), float(s)) for w, s in zip(config.options["widths"], scales)])


def scaled(batches: Iterable["Batch"], vector: "torch.Tensor | None") -> Iterator["Batch"]:
    """The batches with each hook's block multiplied by its factor."""
    for b in batches:
        yield b if vector is None else Batch(b.x * vector, None, b.rows)


def fold_hook_scales(sae: "SAE") -> "SAE":
    """A crosscoder trained on scaled hooks, made to take and give raw activations (in place)."""
    opts: dict[str, Any] = sae.cfg.options
    vector = torch.cat([torch.full((int(w),), float(s)) for w, s in zip(opts["widths"], opts.get("hook_scales") or [1.0] * len(opts["widths"]))]).to(sae.W_enc)
    with torch.no_grad():
        sae.W_enc.mul_(vector[:, None])
        sae.W_dec.div_(vector[None, :])
        sae.b_dec.div_(vector)
    return sae
