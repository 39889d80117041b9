"""The ``stability`` eval: do SAEs trained with other seeds or widths find the same features?

Between two SAEs on one hook, every latent's decoder row is matched with its
nearest (highest cosine) row in the other SAE:

- ``mmcs``: the mean over this SAE's latents of that maximum cosine (mean max
  cosine similarity), averaged over the other trained SAEs of the run;
- ``matched_fraction``: the fraction of its latents whose best match is at
  least ``match_threshold`` (0.9), averaged the same way;
- ``split_fraction`` (feature splitting, after Bricken et al. 2023): against
  each wider SAE, every wide latent is a child of its nearest latent here when
  their cosine is at least ``split_threshold``; a latent with two or more
  children has split. The fraction of latents that split, averaged over the
  wider SAEs; ``details.pairs`` lists the biggest splits.

A random floor is compared with every trained SAE: its numbers are the chance
level of the trained SAEs'. A run with one trained SAE has nothing to compare
it with (the numbers are null and a note says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from saetool.bench.base import BenchContext, BenchEval, EvalResult, MetricCard, SAEEntry
from saetool.errors import SaetoolError
from saetool.sae.features import unit_rows


@dataclass
class StabilityOptions:
    match_threshold: float = 0.9
    split_threshold: float = 0.7
    examples: int = 5
    block: int = 4096

    def validate(self) -> None:
        for name in ("match_threshold", "split_threshold"):
            if not -1 <= getattr(self, name) <= 1:
                raise SaetoolError(f"--option stability.{name} must be a cosine in [-1, 1] (got {getattr(self, name)})")
        if self.block < 1 or self.examples < 0:
            raise SaetoolError("--option stability.block must be positive and stability.examples 0 or more")


def nearest(a: torch.Tensor, b: torch.Tensor, block: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """For each unit row of ``a``: the largest cosine with a row of ``b`` and that row's index
    (``block`` rows of ``a`` at a time: memory ``block x len(b)``)."""
    best, idx = [], []
    for start in range(0, a.shape[0], block):
        cos = a[start : start + block] @ b.T
        v, i = cos.max(dim=1)
        best.append(v)
        idx.append(i)
    return torch.cat(best), torch.cat(idx)


def compare(a: torch.Tensor, b: torch.Tensor, opts: StabilityOptions) -> dict[str, Any]:
    """Matching of SAE a's unit decoder rows against b's: MMCS, matched fraction and (when b is
    wider) the split latents of a, largest first."""
    best, _ = nearest(a, b, opts.block)
    out: dict[str, Any] = {"mmcs": float(best.mean()), "matched_fraction": float((best >= opts.match_threshold).double().mean())}
    if b.shape[0] > a.shape[0]:
        child_cos, parent = nearest(b, a, opts.block)
        keep = child_cos >= opts.split_threshold
        children = torch.bincount(parent[keep], minlength=a.shape[0])
        out["split_fraction"] = float((children >= 2).double().mean())
        top = torch.argsort(children, descending=True, stable=True)[: opts.examples]
        out["splits"] = [
            {"latent": int(i), "children": [int(j) for j in torch.nonzero(keep & (parent == i)).flatten()]}
            for i in top.tolist() if children[i] >= 2
        ]
    return out


CARDS = (
    MetricCard("mmcs", "Mean over latents of the best decoder cosine with each other trained SAE (mean max cosine similarity)", True,
               "the random floor's value (its rows against the trained SAEs) is the chance level", caveat="needs two trained SAEs on one hook; dead latents count too"),
    MetricCard("matched_fraction", "Fraction of latents with a match of cosine >= 0.9 in each other trained SAE", True,
               "the random floor's value (about 0)", caveat="needs two trained SAEs on one hook"),
    MetricCard("split_fraction", "Fraction of latents that split into two or more latents of a wider SAE (cosine >= 0.7)", None,
               "the random floor's value (about 0)", caveat="only against a wider SAE; splitting is expected, not a fault"),
)


class StabilityEval(BenchEval):
    name = "stability"
    description = "Decoder matches between the SAEs of the run (seeds, widths) and feature splitting"
    options = StabilityOptions
    cards = CARDS
    headline = "mmcs"

    def run(self, entry: SAEEntry, ctx: BenchContext) -> EvalResult:
        opts: StabilityOptions = ctx.options(self)
        mine = unit_rows(entry.sae.W_dec.detach().float())
        partners = [e for e in ctx.entries if not e.is_random and e is not entry and e.sae.W_dec.shape[1] == entry.sae.W_dec.shape[1]]
        if not partners:
            return EvalResult({c.name: None for c in CARDS}, notes=["no other trained SAE on this hook to compare with (give SAEs of other seeds or widths)"])
        pairs = []
        for other in partners:
            stats = compare(mine, ctx.once(f"stability:{other.name}", lambda o=other: unit_rows(o.sae.W_dec.detach().float())), opts)
            pairs.append({"other": other.name, "other_d_sae": other.sae.cfg.d_sae, **stats})
        splits = [p["split_fraction"] for p in pairs if "split_fraction" in p]
        metrics = {
            "mmcs": sum(p["mmcs"] for p in pairs) / len(pairs),
            "matched_fraction": sum(p["matched_fraction"] for p in pairs) / len(pairs),
            "split_fraction": sum(splits) / len(splits) if splits else None,
        }
        return EvalResult(metrics, details={"pairs": pairs, "match_threshold": opts.match_threshold, "split_threshold": opts.split_threshold})
