"""Sweep plots (matplotlib, Agg backend, small PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from saetool.artifacts.files import atomic_file

if TYPE_CHECKING:
    import pandas as pd

# Deferred imports: matplotlib.pyplot (about 1 s) only when a plot is drawn.


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(df: "pd.DataFrame"):
    for (layer, iv), g in df.groupby(["layer", "intervention"], sort=True):
        yield f"L{layer} {iv}", g.sort_values("alpha")


def plot_metric_vs_alpha(summary: "pd.DataFrame", path: Path, metric: str, *, title: str = "", level: float = 0.05) -> Path:
    """A metric (rate or mean, with its 95% CI) against alpha: a panel per split, a line per layer × intervention.

    For a rate metric with tests, a star marks cells significant after correction."""
    plt = _plt()
    col = f"{metric}_rate" if f"{metric}_rate" in summary else f"{metric}_mean"
    is_rate = col.endswith("_rate")
    df = summary[summary["status"] == "ok"]
    splits = list(dict.fromkeys(summary["split"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(max(4.6, 3.6 * len(splits) + 0.6), 3.6), sharey=True, squeeze=False)
    sig_col = f"{metric}_p_adj"
    for ax, split in zip(axes[0], splits):
        sub = df[df["split"] == split]
        for label, g in _series(sub):
            y = g[col].to_numpy(dtype=float)
            lo = np.nan_to_num(y - g[f"{metric}_ci_low"].to_numpy(dtype=float), nan=0.0)
            hi = np.nan_to_num(g[f"{metric}_ci_high"].to_numpy(dtype=float) - y, nan=0.0)
            line = ax.errorbar(g["alpha"], y, yerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)], marker="o", ms=4, capsize=3, label=label)
            if sig_col in g:
                sig = g[(g[sig_col] < level).to_numpy()]
                if len(sig):
                    ax.plot(sig["alpha"], sig[col], "*", ms=11, color=line[0].get_color())
        ax.set_title(split)
        ax.set_xlabel("alpha")
        if is_rate:
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} {'rate' if is_rate else 'mean'} (95% CI)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(handles, labels, loc="best", fontsize=7, frameon=False)
    what = f"{metric} vs alpha" + ("\n" if len(splits) == 1 else " ") + "(* = significant after correction)"
    fig.suptitle(f"{title}: {what}" if title else what, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_tradeoff(summary: "pd.DataFrame", path: Path, *, title: str = "") -> Path | None:
    """harm_test refusal rate against the drop in benign helpfulness, per layer × intervention (labels: alpha)."""
    if "helpfulness_rate" not in summary:
        return None
    splits = set(summary["split"])
    if not {"harm_test", "benign"} <= splits:
        return None
    plt = _plt()
    df = summary[summary["status"] == "ok"]
    bars = {"refusal_ci_low", "refusal_ci_high", "helpfulness_ci_low", "helpfulness_ci_high"} <= set(df.columns)
    harm = df[df["split"] == "harm_test"][["layer", "intervention", "alpha", "refusal_rate", *(["refusal_ci_low", "refusal_ci_high"] if bars else [])]]
    ben = df[df["split"] == "benign"][["layer", "intervention", "alpha", "helpfulness_drop", *(["helpfulness_rate", "helpfulness_ci_low", "helpfulness_ci_high"] if bars else [])]]
    merged = harm.merge(ben, on=["layer", "intervention", "alpha"])
    if merged.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for label, g in _series(merged):
        if bars:  # each cell's own 95% Wilson intervals (the drop's interval holds alpha 0's rate fixed)
            yerr = [np.clip(g["refusal_rate"] - g["refusal_ci_low"], 0, None), np.clip(g["refusal_ci_high"] - g["refusal_rate"], 0, None)]
            xerr = [np.clip(g["helpfulness_ci_high"] - g["helpfulness_rate"], 0, None), np.clip(g["helpfulness_rate"] - g["helpfulness_ci_low"], 0, None)]
            ax.errorbar(g["helpfulness_drop"], g["refusal_rate"], xerr=xerr, yerr=yerr, marker="o", ms=4, capsize=2, elinewidth=0.8, label=label)
        else:
            ax.plot(g["helpfulness_drop"], g["refusal_rate"], marker="o", ms=4, label=label)
        for _, r in g.iterrows():
            ax.annotate(f"{r['alpha']:g}", (r["helpfulness_drop"], r["refusal_rate"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("benign helpfulness drop (vs alpha 0)")
    ax.set_ylabel("harm_test refusal rate")
    what = "labels: alpha; bars: 95% CIs" if bars else "labels: alpha"
    ax.set_title(f"{title}: trade-off ({what})" if title else f"trade-off ({what})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    _save(fig, path)
    return path


def _save(fig: object, path: Path) -> None:
    """Save ``fig`` as PNG atomically (a full disk is one line), then free it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=90)  # type: ignore[attr-defined]
    finally:
        plt.close(fig)  # type: ignore[arg-type]
