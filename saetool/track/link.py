"""How alike two features of adjacent layers are, and which pairs are linked.

Two measures, each a ``[d_sae(L), d_sae(L+1)]`` matrix:

- **decoder cosine**: the cosine of the two features' decoder rows (the
  directions they write), meaningful when both SAEs reconstruct the same space
  (the residual stream of adjacent layers);
- **activation correlation**: Pearson's r of the two features' activations over
  the same tokens (both layers' activations of one ``activations`` artifact),
  accumulated chunk by chunk in float64, so only the ``[d_L, d_L+1]`` sums are
  kept, never the codes of the corpus.

A pair is linked when both features are live and every measure given reaches
its threshold, and when its score (the smaller of the measures) is at least
``min_ratio`` times the best score of each of its two features (so a feature's
weak second match is not read as a split or merge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from saetool.errors import SaetoolError
from saetool.sae.features import unit_rows
from saetool.track.tracker import Link

if TYPE_CHECKING:
    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.model import SAE


def decoder_cosine(a: "SAE", b: "SAE") -> np.ndarray:
    """Cosines of the decoder rows of ``a`` against those of ``b``, ``[d_a, d_b]``."""
    wa, wb = a.W_dec.detach().double(), b.W_dec.detach().double()
    if wa.shape[1] != wb.shape[1]:
        raise SaetoolError(
            f"decoder cosine needs SAEs that write the same space (d_out {wa.shape[1]} vs {wb.shape[1]})",
            hint="pass SAEs of one model's residual stream",
        )
    return (unit_rows(wa) @ unit_rows(wb).T).numpy()


@dataclass
class CodeStats:
    """Per-feature counts and moments of one layer's codes, and their cross sums with the next layer."""

    n: int
    fires: list[np.ndarray]  # per layer: tokens each feature is active on
    sums: list[np.ndarray]
    squares: list[np.ndarray]
    cross: list[np.ndarray]  # per adjacent pair: sum f_L f_{L+1}^T

    def correlation(self, step: int) -> np.ndarray:
        """Pearson's r of layer ``step``'s features against ``step + 1``'s (0 where a feature never varies)."""
        n = float(self.n)
        ma, mb = self.sums[step] / n, self.sums[step + 1] / n
        va = np.maximum(self.squares[step] / n - ma**2, 0.0)
        vb = np.maximum(self.squares[step + 1] / n - mb**2, 0.0)
        cov = self.cross[step] / n - np.outer(ma, mb)
        den = np.sqrt(np.outer(va, vb))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0)
        return np.clip(r, -1.0, 1.0)


def code_chunks(acts: "ActivationsFile", saes: Sequence["SAE"], num_tokens: int, chunk_rows: int) -> Iterator[list[torch.Tensor]]:
    """Every SAE's codes on the same rows of ``acts``, ``chunk_rows`` at a time."""
    n = min(acts.n_tokens, num_tokens)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        with torch.inference_mode():
            yield [s.encode(acts.read_finite(s.cfg.hook, start, stop, dtype=s.dtype).to(s.device)).float().cpu() for s in saes]


def code_stats(chunks: Iterator[Sequence[torch.Tensor]], widths: Sequence[int]) -> CodeStats:
    """Accumulate :class:`CodeStats` over chunks of codes (one tensor per layer, same rows)."""
    fires = [np.zeros(w, np.int64) for w in widths]
    sums = [np.zeros(w) for w in widths]
    squares = [np.zeros(w) for w in widths]
    cross = [np.zeros((a, b)) for a, b in zip(widths, widths[1:])]
    n = 0
    for codes in chunks:
        n += int(codes[0].shape[0])
        for i, f in enumerate(codes):
            fires[i] += (f > 0).sum(0).numpy()
            sums[i] += f.sum(0).double().numpy()
            squares[i] += (f * f).sum(0).double().numpy()
        for i in range(len(codes) - 1):
            cross[i] += (codes[i].T @ codes[i + 1]).double().numpy()
    if n == 0:
        raise SaetoolError("no activation rows to correlate", hint="pass an activations file with tokens, or --num-tokens > 0")
    return CodeStats(n, fires, sums, squares, cross)


def choose_links(
    step: int,
    cosine: np.ndarray,
    correlation: np.ndarray | None,
    live_a: np.ndarray,
    live_b: np.ndarray,
    *,
    min_cosine: float,
    min_correlation: float,
    min_ratio: float,
) -> list[Link]:
    """The links between live features of two layers (see the module docstring)."""
    score = cosine if correlation is None else np.minimum(cosine, correlation)
    ok = (cosine >= min_cosine) & live_a[:, None] & live_b[None, :]
    if correlation is not None:
        ok &= correlation >= min_correlation
    masked = np.where(ok, score, -np.inf)
    if min_ratio > 0 and ok.any():
        best_a = masked.max(axis=1, keepdims=True)
        best_b = masked.max(axis=0, keepdims=True)
        ok &= (score >= min_ratio * best_a) & (score >= min_ratio * best_b)
    rows, cols = np.nonzero(ok)
    corr = correlation if correlation is not None else np.full_like(cosine, np.nan)
    return [Link(step, int(i), int(j), float(cosine[i, j]), float(corr[i, j])) for i, j in zip(rows, cols)]
