"""PNG plots of bench results (matplotlib, no display): the L0 vs FVU frontier
and, with probing, test accuracy vs k; one point or line per SAE (random floors dashed or crossed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saetool.bench.store import BenchResults

# Deferred imports: matplotlib (seconds to import on a loaded 2-core machine) loads only when plots are drawn, and
# selects its Agg backend only then.


def write_plots(results: BenchResults, folder: str | Path) -> list[Path]:
    """The plots the results allow, written into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    floors = {s["name"] for s in results.saes if s.get("random_of") is not None}
    written = []
    if "core" in results.evals:
        fig, ax = plt.subplots(figsize=(5, 4))
        for name in results.names:
            l0, fvu = results.value(name, "core", "l0"), results.value(name, "core", "fvu")
            if l0 is not None and fvu is not None:
                ax.scatter([l0], [fvu], marker="x" if name in floors else "o", label=name)
        written.append(_finish(plt, fig, ax, out / "l0_fvu.png", "sparsity vs reconstruction", "L0 (active latents per token)", "FVU (lower is better)"))
    if "probing" in results.evals:
        fig, ax = plt.subplots(figsize=(5, 4))
        llm = None
        for name in results.names:
            res = results.results.get((name, "probing"))
            if res is None:
                continue
            ks = sorted(int(m.split("_")[1]) for m in res.metrics if m.startswith("top_") and m.endswith("_accuracy") and res.metrics[m] is not None)
            if ks:
                ax.plot(ks, [res.metrics[f"top_{k}_accuracy"] for k in ks], marker="o", linestyle="--" if name in floors else "-", label=name)
            llm = res.metrics.get("llm_accuracy", llm)
        if llm is not None:
            ax.axhline(llm, color="grey", linestyle=":", label="probe on all activations")
        ax.axhline(0.5, color="lightgrey", linestyle=":", label="chance")
        written.append(_finish(plt, fig, ax, out / "probing_k.png", "sparse probing", "k (latents the probe may use)", "test accuracy"))
    return written


def _finish(plt: Any, fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Label, lay out and save (through ``PATH.partial``) one plot; log x axis."""
    ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".partial")
    fig.savefig(tmp, format="png", dpi=120)
    tmp.replace(path)
    plt.close(fig)
    return path
