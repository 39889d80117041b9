"""Statistics for steering results: Wilson intervals, Fisher's exact test, paired tests, multiple-comparison corrections.

Wilson intervals, Fisher's test and Benjamini-Hochberg are scipy's; Holm is a
few lines here. ``tests/test_sweep_stats.py`` checks them against independent formulas.
"""

from __future__ import annotations

import math
from typing import Sequence

from scipy.stats import binomtest, false_discovery_control, fisher_exact, t, ttest_ind, ttest_rel

#: The two-sided 95% normal quantile.
Z95 = 1.959963984540054


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a rate ``k/n`` (NaN, NaN when ``n == 0``), from
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` at the
    confidence level of the normal quantile ``z``.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0/n and n/n.
    """
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be between 0 and n={n}")

    ci = binomtest(k, n).proportion_ci(confidence_level=math.erf(z / math.sqrt(2)), method="wilson")
    return (float(ci.low), float(ci.high))


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int, alternative: str = "two-sided") -> float:
    """Fisher's exact test p-value for rates ``k1/n1`` vs ``k2/n2`` (``scipy.stats.fisher_exact``).

    The table is ``[[k1, n1-k1], [k2, n2-k2]]``; ``alternative="greater"``
    tests whether the first rate is higher. NaN when either group is empty.
    """
    if n1 <= 0 or n2 <= 0:
        return math.nan

    res = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative)
    return float(res.pvalue if hasattr(res, "pvalue") else res[1])


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, family-wise error); NaNs stay NaN and are not counted."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        adj = min(1.0, (m - rank) * pvalues[i])
        running = max(running, adj)
        out[i] = running
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up, false discovery rate;
    ``scipy.stats.false_discovery_control``); NaNs stay NaN and are not counted."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out = [math.nan] * len(pvalues)
    if idx:
        for i, q in zip(idx, false_discovery_control([pvalues[i] for i in idx], method="bh")):
            out[i] = float(q)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": lambda ps: [float(p) for p in ps]}


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}")
    return CORRECTIONS[method](pvalues)


def _finite(values: Sequence[float]) -> list[float]:
    """The values that are numbers (not None, not NaN or infinite), as floats."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_ci(values: Sequence[float], level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """Mean and a t-based confidence interval of the finite values (NaNs when there are none),
    the interval clipped to ``bounds``, the values a score can take (a loss is never negative)."""
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = sum(xs) / n
    if n == 1:
        return (mean, math.nan, math.nan)

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return (mean, max(bounds[0], mean - half), min(bounds[1], mean + half))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's two-sample t-test p-value (two-sided, unequal variances) on the finite values; NaN if either has fewer than 2."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2:
        return math.nan
    if len(set(xs)) == 1 and len(set(ys)) == 1:
        return 1.0 if xs[0] == ys[0] else 0.0

    return float(ttest_ind(xs, ys, equal_var=False).pvalue)


def welch_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's interval of ``mean(a) - mean(b)`` on the finite values (scipy's, Welch-Satterthwaite
    degrees of freedom); NaNs if either has fewer than 2 or both are constant."""
    xs, ys = _finite(a), _finite(b)
    if len(xs) < 2 or len(ys) < 2 or (len(set(xs)) == 1 and len(set(ys)) == 1):
        return (math.nan, math.nan)
    ci = ttest_ind(xs, ys, equal_var=False).confidence_interval(level)
    return (float(ci.low), float(ci.high))


def _pairs(a: Sequence[float], b: Sequence[float]) -> list[tuple[float, float]]:
    """The (a[i], b[i]) pairs where both are finite (the same prompt in two conditions)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]


def mcnemar_exact_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact McNemar test of paired 0/1 outcomes (the same prompts in two conditions): a
    two-sided binomial test of the discordant pairs (``scipy.stats.binomtest``); 1 when no
    pair differs, NaN without pairs."""
    pairs = _pairs(a, b)
    if not pairs:
        return math.nan
    up = sum(1 for x, y in pairs if y > x)
    down = sum(1 for x, y in pairs if y < x)
    return 1.0 if up + down == 0 else float(binomtest(up, up + down, 0.5).pvalue)


def paired_t_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Paired t-test p-value (two-sided, ``scipy.stats.ttest_rel``) on the pairs where both are
    finite; NaN below two pairs, 1 or 0 when every difference is the same constant."""
    pairs = _pairs(a, b)
    if len(pairs) < 2:
        return math.nan
    diffs = {y - x for x, y in pairs}
    if len(diffs) == 1:
        return 1.0 if diffs == {0.0} else 0.0
    return float(ttest_rel([y for _, y in pairs], [x for x, _ in pairs]).pvalue)


def paired_p(baseline: Sequence[float], other: Sequence[float], *, rate: bool) -> float:
    """The paired test of ``other`` against ``baseline`` on the same prompts: exact McNemar for
    a rate metric (0/1 per completion), the paired t-test for a mean one."""
    return mcnemar_exact_p(baseline, other) if rate else paired_t_p(baseline, other)
