"""The flow plot of a ``tracks`` run (matplotlib, a Figure without pyplot, one PNG).

Each layer is a grey column as tall as its live features. Between two layers,
bands join the features that leave a layer to those that arrive at the next,
one colour per kind of event: a continue keeps its width, a split widens, a
merge narrows, a death tapers to nothing and a birth grows out of nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from saetool.artifacts.files import atomic_file

if TYPE_CHECKING:
    import pandas as pd

COLORS = {"continue": "#4C72B0", "split": "#55A868", "merge": "#C44E52", "complex": "#8172B2", "death": "#999999", "birth": "#CCB974"}
ORDER = ("continue", "split", "merge", "complex")


def _band(ax, x0: float, x1: float, lo0: float, hi0: float, lo1: float, hi1: float, color: str) -> None:
    t = np.linspace(0.0, 1.0, 40)
    s = (1 - np.cos(np.pi * t)) / 2  # smooth step
    x = x0 + (x1 - x0) * t
    ax.fill_between(x, lo0 + (lo1 - lo0) * s, hi0 + (hi1 - hi0) * s, color=color, alpha=0.6, linewidth=0)


def flow_plot(path: str | Path, layers: "pd.DataFrame", events: "pd.DataFrame", *, title: str = "tracks") -> Path:
    """Write the flow plot of a run's ``layers`` and ``events`` tables to ``path`` (PNG)."""
    names = list(layers["layer"])
    live = [int(v) for v in layers["n_live"]]
    # A Figure without pyplot: no global backend to switch, nothing to close (matplotlib's advice for servers).
    fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 1.5), 4.0), dpi=110)
    ax = fig.subplots()
    width = 0.12
    for i, n in enumerate(live):
        ax.bar(i, n, width=width, bottom=0, color="#444444", align="center")
    for i in range(len(names) - 1):
        ev = events[events["layer_from"] == names[i]]
        count = lambda kind, col: int(sum(len(str(v).split()) for v in ev.loc[ev["kind"] == kind, col]))  # noqa: E731
        y0 = y1 = 0.0
        x0, x1 = i + width / 2, i + 1 - width / 2
        for kind in ORDER:
            a, b = count(kind, "sources"), count(kind, "targets")
            if a or b:
                _band(ax, x0, x1, y0, y0 + a, y1, y1 + b, COLORS[kind])
            y0, y1 = y0 + a, y1 + b
        d, bth = count("death", "sources"), count("birth", "targets")
        mid = (x0 + x1) / 2
        if d:
            _band(ax, x0, mid, y0, y0 + d, y0 + d / 2, y0 + d / 2, COLORS["death"])
        if bth:
            _band(ax, mid, x1, y1 + bth / 2, y1 + bth / 2, y1, y1 + bth, COLORS["birth"])
    ax.set_xticks(range(len(names)), [str(n) for n in names])
    ax.set_xlabel("layer")
    ax.set_ylabel("live features")
    ax.set_title(title, fontsize=10)
    ax.legend(handles=[Patch(color=c, alpha=0.6, label=k) for k, c in COLORS.items()], fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    with atomic_file(path, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png")
    return Path(path)
