"""Per-token activation norms and the massive-activation rule.

Some models put a few tokens (in SmolLM2 often the first after BOS) at norms
tens of times the median; they hold most of a sample's variance, so a
variance-normalised metric (FVU) measures them rather than the SAE. The rule,
used by ``train --max-norm-ratio`` and ``evaluate``: a token is *massive* when
its norm exceeds ``ratio`` times the median norm of the rows considered.
``extract`` stores every row's norm as ``norms/{hook}`` (float32); for files
made before that, :func:`file_norms` computes them from the activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from saetool.artifacts.activations import ActivationsFile

#: The default ``--max-norm-ratio`` of ``train`` and ``evaluate`` (chosen in docs/tutorial.md).
DEFAULT_MAX_NORM_RATIO = 10.0
#: Rows read at a time when a file has no stored norms.
CHUNK_ROWS = 65536


def row_norms(x: "torch.Tensor") -> "torch.Tensor":
    """The L2 norm of every row, computed in float32 at least."""
    return torch.linalg.vector_norm(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, dim=-1).float()


def file_norms(acts: "ActivationsFile", hook: str) -> "np.ndarray":
    """Every row's norm at ``hook``: the stored ``norms/{hook}``, else computed from the activations."""
    fh = acts.artifact.file
    name = f"norms/{hook}"
    if name in fh and fh[name].shape[0] >= acts.n_tokens:
        return np.asarray(fh[name][: acts.n_tokens], dtype=np.float32)
    parts = [row_norms(acts.read(hook, s, s + CHUNK_ROWS, dtype=torch.float32)).numpy() for s in range(0, acts.n_tokens, CHUNK_ROWS)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass
class NormFilter:
    """Tokens with a norm above ``cutoff = ratio * median`` are left out."""

    ratio: float
    median: float
    cutoff: float

    @classmethod
    def from_norms(cls, norms: "np.ndarray", ratio: float) -> "NormFilter":
        finite = norms[np.isfinite(norms)]
        median = float(np.median(finite)) if finite.size else 0.0
        return cls(float(ratio), median, float(ratio) * median)

    def keep(self, norms: "np.ndarray | torch.Tensor") -> Any:
        """Boolean mask of the ordinary rows (norm at most the cutoff)."""
        return norms <= self.cutoff

    def to_dict(self) -> dict[str, float]:
        return {"max_norm_ratio": self.ratio, "median_norm": self.median, "norm_cutoff": self.cutoff}
