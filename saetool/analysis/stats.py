"""Statistics for the analysis stages: streaming moments and Cohen's d, the
smoothed log-odds ratio with a Dirichlet prior, the 2x2 chi-square test and
the Benjamini-Hochberg adjustment. Vectorised over features / tokens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Deferred imports: scipy.stats (about 1 s) only for the chi-squared p-values and FDR control that `saetool tokens`
# reports; `select` uses the rest without it.


@dataclass
class Moments:
    """Count, mean and sum of squared deviations per column, merged chunk by
    chunk (Chan et al.'s parallel update, float64), so a pass over a large file
    needs one chunk in memory and loses no precision to ``E[x²] - E[x]²``."""

    n: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, width: int) -> "Moments":
        return cls(0, np.zeros(width), np.zeros(width))

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        nb = x.shape[0]
        if nb == 0:
            return
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * nb / n)
        self.n = n

    @property
    def var(self) -> np.ndarray:
        """Sample variance (ddof 1); NaN with fewer than two rows."""
        if self.n < 2:
            return np.full_like(self.mean, np.nan)
        return self.m2 / (self.n - 1)


def cohens_d(a: Moments, b: Moments) -> np.ndarray:
    """Cohen's d of set a against set b: ``(mean_a - mean_b) / s_pooled`` with
    ``s_pooled² = ((n_a-1) s_a² + (n_b-1) s_b²) / (n_a + n_b - 2)``.

    Zero pooled variance: 0 where the means are equal (a feature that never
    varies, e.g. never fires), ±inf where they differ (perfect separation).
    """
    dof = a.n + b.n - 2
    if a.n < 1 or b.n < 1 or dof < 1:
        raise ValueError(f"Cohen's d needs at least one sample per set and three in all (got {a.n} and {b.n})")
    return standardised(a.mean - b.mean, np.sqrt((a.m2 + b.m2) / dof))


def standardised(diff: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``diff / scale`` per feature; where the scale is 0: 0 for no difference, ±inf for one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = diff / scale
    zero = scale == 0
    d[zero & (diff == 0)] = 0.0
    d[zero & (diff != 0)] = np.sign(diff[zero & (diff != 0)]) * np.inf
    return d


def permutation_max_abs_d(a: np.ndarray, b: np.ndarray, *, permutations: int = 200, seed: int = 0, columns: np.ndarray | None = None,
                          strata: np.ndarray | None = None) -> np.ndarray:
    """The largest finite |Cohen's d| over ``columns`` (default all) of the rows ``a`` and
    ``b`` [samples, features] with the set labels shuffled, once per permutation: the null
    distribution of the best |d| a selection can reach by chance among that many features.
    ``strata`` (one value per row of ``a`` then ``b``): the labels are shuffled only among rows
    of the same value (e.g. the same sequence length), so what the strata explain stays in the null."""
    x = np.concatenate([a, b]).astype(np.float32, copy=False)  # float32 samples, float64 sums: half the memory
    if columns is not None:
        x = x[:, columns]
    n, na = x.shape[0], a.shape[0]
    nb = n - na
    if na < 1 or nb < 1 or n < 3 or x.shape[1] == 0:
        raise ValueError(f"a permutation test needs samples in both sets and three in all (got {na} and {nb})")
    total, total_sq = x.sum(0, dtype=np.float64), np.einsum("ij,ij->j", x, x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    groups = None
    if strata is not None:
        strata = np.asarray(strata)
        if strata.shape != (n,):
            raise ValueError(f"strata: one value per row ({n}), got shape {strata.shape}")
        groups = [np.flatnonzero(strata == v) for v in np.unique(strata)]
    is_a = np.arange(n) < na
    out = np.empty(permutations)
    for i in range(permutations):
        if groups is None:
            pick = x[rng.permutation(n)[:na]]
        else:
            labels = is_a.copy()
            for g in groups:
                labels[g] = rng.permutation(is_a[g])
            pick = x[labels]
        sa, qa = pick.sum(0, dtype=np.float64), np.einsum("ij,ij->j", pick, pick, dtype=np.float64)
        sb, qb = total - sa, total_sq - qa
        m2 = np.clip(qa - sa * sa / na, 0, None) + np.clip(qb - sb * sb / nb, 0, None)
        pooled = np.sqrt(m2 / (n - 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(sa / na - sb / nb) / pooled
        d = d[np.isfinite(d)]
        out[i] = d.max() if d.size else 0.0
    return out


def paired_d(diff: np.ndarray) -> np.ndarray:
    """Cohen's d_z of paired samples: the mean of the per-pair differences ``diff``
    [pairs, features] over their standard deviation (ddof 1). Zero deviation: 0 where the
    mean is 0, ±inf where it is not (every pair differs by the same amount)."""
    diff = np.asarray(diff, dtype=np.float64)
    n = diff.shape[0]
    if n < 2:
        raise ValueError(f"a paired d needs at least two pairs (got {n})")
    return standardised(diff.mean(axis=0), diff.std(axis=0, ddof=1))


def sign_flip_max_abs_d(diff: np.ndarray, *, permutations: int = 200, seed: int = 0) -> np.ndarray:
    """The largest finite |d_z| (:func:`paired_d`) over the features of ``diff`` [pairs,
    features] with each pair's sign flipped at random (which member of the pair is in set a),
    once per permutation: the paired null of the best |d_z| a selection reaches by chance.
    A flip leaves each feature's sum of squares as it is, so only the sums are redrawn."""
    x = np.asarray(diff, dtype=np.float64)  # float64: var = sum of squares - n mean^2 cancels where |differences| hardly vary
    n = x.shape[0]
    if n < 2 or x.shape[1] == 0:
        raise ValueError(f"a sign-flip test needs at least two pairs and one feature (got {x.shape})")
    total_sq = np.einsum("ij,ij->j", x, x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty(permutations)
    for i in range(permutations):
        signs = rng.choice(np.array([-1.0, 1.0]), size=n)
        mean = (signs @ x) / n
        var = np.clip(total_sq - n * mean * mean, 0, None) / (n - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(mean) / np.sqrt(var)
        d = d[np.isfinite(d)]
        out[i] = d.max() if d.size else 0.0
    return out


def log_odds_dirichlet(count_a: np.ndarray, count_b: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed log-odds ratio of each token in a vs b and its z-score
    (Monroe, Colaresi & Quinn 2008, "Fightin' Words", eq. 16-22).

    ``prior`` holds the Dirichlet pseudo-count ``alpha_w`` of every token;
    ``alpha_0 = sum(prior)``. ``delta_w = log((y_a+α_w)/(n_a+α_0-y_a-α_w)) -
    log((y_b+α_w)/(n_b+α_0-y_b-α_w))``, ``var ≈ 1/(y_a+α_w) + 1/(y_b+α_w)``.
    Positive: more typical of a. The vocabulary is the tokens passed in.
    """
    ya = np.asarray(count_a, dtype=np.float64)
    yb = np.asarray(count_b, dtype=np.float64)
    aw = np.asarray(prior, dtype=np.float64)
    a0 = aw.sum()
    na, nb = ya.sum(), yb.sum()
    delta = np.log(ya + aw) - np.log(na + a0 - ya - aw) - np.log(yb + aw) + np.log(nb + a0 - yb - aw)
    var = 1.0 / (ya + aw) + 1.0 / (yb + aw)
    return delta, delta / np.sqrt(var)


def chi2_2x2(count_a: np.ndarray, count_b: np.ndarray, n_a: int, n_b: int, *, yates: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square statistic and p-value (1 dof) of each token's 2x2
    table ``[[count_a, n_a - count_a], [count_b, n_b - count_b]]``, in closed
    form; with ``yates`` the continuity correction ``scipy.stats.chi2_contingency``
    applies by default. A table with an empty margin gets chi2 0, p 1."""
    from scipy.stats import chi2

    a = np.asarray(count_a, dtype=np.float64)
    c = np.asarray(count_b, dtype=np.float64)
    b = n_a - a
    d = n_b - c
    n = float(n_a + n_b)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    diff = np.abs(a * d - b * c)
    if yates:
        diff = np.maximum(0.0, diff - n / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(margins > 0, n * diff**2 / np.where(margins > 0, margins, 1.0), 0.0)
    return stat, chi2.sf(stat, 1)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), capped at 1 (``scipy.stats.false_discovery_control``)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=np.float64)
    return false_discovery_control(p, method="bh") if p.size else p.copy()
