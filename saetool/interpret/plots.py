"""PNG plots of feature activations (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from saetool.artifacts.files import atomic_file
from saetool.interpret.records import FeatureRecord

# Deferred imports: matplotlib.pyplot (about 1 s) only when a plot is drawn.


def distribution_png(record: FeatureRecord, path: str | Path, *, n_tokens: int, samples_only: bool = False) -> Path:
    """Draw a feature's activation histogram into ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    edges, counts = record.histogram_edges, record.histogram_counts
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    if counts and len(edges) == len(counts) + 1:
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="#e67e22", edgecolor="white", linewidth=0.5)
    ax.set_xlabel("activation")
    ax.set_ylabel("stored top samples" if samples_only else "tokens")
    what = "of its stored top samples" if samples_only else f"over {n_tokens} tokens, density {record.density:.3%}"
    ax.set_title(f"Feature {record.index}: activations {what}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return path
