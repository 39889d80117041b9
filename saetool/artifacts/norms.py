"""Per-token activation norms and the massive-activation rule.

Some models put a few tokens (in SmolLM2 often the first after BOS, in Gemma 3
270M some apostrophes late in a window) far from every other token; they hold
most of a sample's variance, so a variance-normalised metric (FVU) measures
them rather than the SAE. The rule, used by ``train --max-norm-ratio``,
``evaluate`` and the benchmarks: a token is *massive* when its distance from
the median row (the coordinate-wise median of the rows considered) exceeds
``ratio`` times the median of those distances. Distances, not norms: Gemma 3's
residual stream has a mean as large as its spread (one dimension near 6,200),
so its outliers sit at 9.5x the median norm but 40x the median distance.
``extract`` stores every row's norm as ``norms/{hook}`` (float32); for files
made before that, :func:`file_norms` computes them from the activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

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


#: Rows the median row and the median distance are computed from, at most (in evenly spaced blocks).
SAMPLE_ROWS = 65536
SAMPLE_BLOCKS = 16
#: ... and at most this many bytes of float32 rows (a crosscoder's rows are every hook side by side).
SAMPLE_BYTES = 1 << 28
#: The cutoff that keeps every row (finite, so the records stay plain JSON).
NO_CUTOFF = float(torch.finfo(torch.float32).max)


def sample_budget(width: int) -> int:
    """How many rows of ``width`` values the rule samples: ``SAMPLE_ROWS``, fewer for wide rows."""
    return max(SAMPLE_BLOCKS, min(SAMPLE_ROWS, SAMPLE_BYTES // (4 * max(1, int(width)))))


def sample_rows(read: Callable[[int, int], "torch.Tensor"], n_rows: int, max_rows: int = SAMPLE_ROWS) -> "torch.Tensor":
    """Rows ``0:n_rows`` through ``read(start, stop)``: all of them, or about ``max_rows`` in evenly spaced blocks."""
    if n_rows <= max_rows:
        return read(0, n_rows)
    blocks = max(1, min(SAMPLE_BLOCKS, max_rows))
    size = max(1, max_rows // blocks)
    starts = sorted({round(i * (n_rows - size) / max(1, blocks - 1)) for i in range(blocks)})
    return torch.cat([read(s, s + size) for s in starts])


@dataclass
class NormFilter:
    """Rows farther than ``cutoff = ratio * median`` from ``centre`` (the median row) are left out;
    ``median`` is the median distance of the rows the rule was made from."""

    ratio: float
    centre: "torch.Tensor"
    median: float
    cutoff: float

    @classmethod
    def from_rows(cls, x: "torch.Tensor", ratio: float) -> "NormFilter":
        """The rule over rows ``x`` ``[n, d]`` (non-finite rows ignored). With no spread (a
        median distance of 0: most rows identical, or no rows) every row is kept."""
        x = x.detach().float()
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            x = x[finite]
        if not x.shape[0]:
            return cls(float(ratio), torch.zeros(x.shape[-1]), 0.0, NO_CUTOFF)
        centre = x.median(dim=0).values
        median = float(row_norms(x - centre).median())
        return cls(float(ratio), centre, median, float(ratio) * median if median > 0 else NO_CUTOFF)

    def distances(self, x: "torch.Tensor") -> "torch.Tensor":
        """Each row's distance from the median row (float32, on ``x``'s device)."""
        return row_norms(x.float() - self.centre.to(x.device))

    def keep(self, x: "torch.Tensor") -> "torch.Tensor":
        """Boolean mask of the ordinary rows of ``x`` (distance at most the cutoff)."""
        return self.distances(x) <= self.cutoff

    def to_dict(self) -> dict[str, float]:
        return {"max_norm_ratio": self.ratio, "median_distance": self.median, "distance_cutoff": self.cutoff}
