"""``saetool track`` (corpus mode): SAE features of adjacent layers linked into tracks.

For SAEs at layers ``L0 < L1 < ...`` of one model (and, optionally, an
``activations`` artifact holding every SAE's hook for the same tokens):

1. **Live features.** With activations, a feature is live when it fires on at
   least ``min_active`` tokens with a mean activation (where it fires) of at
   least ``min_strength`` times the layer's median; without, every feature
   with a non-zero decoder row is.
2. **Links** between adjacent layers by decoder cosine and activation
   correlation (:mod:`saetool.track.link`).
3. **Tracks and events** (:mod:`saetool.track.tracker`), written as a
   ``tracks`` artifact with a summary: how many tracks span k layers, and the
   births, deaths, splits and merges at each layer.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from saetool.analysis.names import feature_name
from saetool.analysis.select import LayerSAE, load_layer_saes
from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.files import write_atomic
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import check_output_path
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.sae.crosscoder import crosscoder_hooks
from saetool.sae.io import load_sae
from saetool.track.checklist import warn_failed_checklists
from saetool.track.crosscoder import crosscoder_graph
from saetool.track.link import choose_links, code_chunks, code_stats, decoder_cosine
from saetool.track.store import KIND, write_tracks
from saetool.track.tracker import EVENT_KINDS, Graph, build_tracks
from saetool.track.view import write_view

if TYPE_CHECKING:
    from saetool.sae.model import SAE

# Deferred imports: saetool.track.plot (matplotlib, seconds to import on a loaded 2-core machine) loads only when
# --plot asks for the flow plot.


@dataclass
class TrackConfig:
    """Thresholds of a ``track`` run (defaults justified in docs/track.md)."""

    min_cosine: float = 0.5
    """Link two features only if their decoder rows have at least this cosine."""
    min_correlation: float = 0.4
    """... and (with activations) their activations at least this Pearson correlation."""
    min_ratio: float = 0.5
    """... and the link's score is at least this share of each feature's best link (0: keep every link)."""
    min_active: int = 5
    """A feature is live if it fires on at least this many tokens ..."""
    min_strength: float = 0.2
    """... with a mean activation (where it fires) of at least this times its layer's median."""
    num_tokens: int = 65536
    """Activation rows read (at most)."""
    chunk_rows: int = 4096
    """Rows encoded at a time."""
    min_share: float = 0.1
    """Crosscoder: a feature is present at a layer if its decoder norm there is at least this share of its largest."""

    def validate(self) -> None:
        for name in ("min_cosine", "min_correlation"):
            v = getattr(self, name)
            if not (math.isfinite(v) and -1.0 <= v <= 1.0):
                raise SaetoolError(f"--{name.replace('_', '-')} must be between -1 and 1 (got {v})")
        if not (math.isfinite(self.min_ratio) and 0.0 <= self.min_ratio <= 1.0):
            raise SaetoolError(f"--min-ratio must be between 0 and 1 (got {self.min_ratio})")
        if not (math.isfinite(self.min_share) and 0.0 <= self.min_share <= 1.0):
            raise SaetoolError(f"--min-share must be between 0 and 1 (got {self.min_share})")
        if not (math.isfinite(self.min_strength) and self.min_strength >= 0):
            raise SaetoolError(f"--min-strength must be a finite number >= 0 (got {self.min_strength})")
        for name in ("min_active", "num_tokens", "chunk_rows"):
            if getattr(self, name) < 1:
                raise SaetoolError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")


@dataclass
class TrackResult:
    path: Path
    graph: Graph
    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    seconds: float = 0.0
    exports: list[Path] = field(default_factory=list)


def live_features(fires: np.ndarray, sums: np.ndarray, *, min_active: int, min_strength: float) -> np.ndarray:
    """Boolean mask: fires on ``min_active`` tokens or more, with a mean activation where it
    fires of at least ``min_strength`` times the median of the features that fire at all."""
    mean = np.where(fires > 0, sums / np.maximum(fires, 1), 0.0)
    firing = mean[fires > 0]
    floor = min_strength * float(np.median(firing)) if firing.size else 0.0
    return (fires >= min_active) & (mean >= floor) & (mean > 0)


def link_layers(config: TrackConfig, saes: Sequence[LayerSAE], activations: str | Path | None) -> Graph:
    """Live features, links, tracks and events for SAEs sorted by layer."""
    models = [s.sae for s in saes]
    widths = [m.cfg.d_sae for m in models]
    stats = None
    if activations is not None:
        with ActivationsFile(activations) as acts:
            acts.require_tokens()
            for s in saes:
                if s.hook not in acts.hooks:
                    raise SaetoolError(f"{acts.path} has no activations for {s.hook} (the SAE {s.path})", hint="extract every SAE's hook into one file: saetool extract --layers ...")
                s.sae.check_input(acts.d(s.hook), s.hook, what=f"activations in {acts.path}")
            stats = code_stats(code_chunks(acts, models, config.num_tokens, config.chunk_rows), widths)
        live_mask = [live_features(f, s, min_active=config.min_active, min_strength=config.min_strength) for f, s in zip(stats.fires, stats.sums)]
    else:
        live_mask = [(m.W_dec.detach().norm(dim=1) > 0).numpy() for m in models]
    links = [
        choose_links(i, decoder_cosine(models[i], models[i + 1]), stats.correlation(i) if stats else None, live_mask[i], live_mask[i + 1],
                     min_cosine=config.min_cosine, min_correlation=config.min_correlation, min_ratio=config.min_ratio)
        for i in range(len(models) - 1)
    ]
    live = [np.nonzero(m)[0] for m in live_mask]
    tracks, events = build_tracks(live, links)
    freq = [f / stats.n for f in stats.fires] if stats else None
    return Graph([s.layer for s in saes], [s.hook for s in saes], widths, live, links, tracks, events, freq)


# -- tables and summary ---------------------------------------------------------------------------------
def _ids(values: Sequence[int]) -> str:
    return " ".join(str(int(v)) for v in values)


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def graph_tables(g: Graph) -> dict[str, pd.DataFrame]:
    """The ``tracks``, ``members``, ``events`` and ``layers`` tables of a graph."""
    L = g.layers
    tracks = pd.DataFrame({
        "id": [t.id for t in g.tracks],
        "start_layer": [L[t.start] for t in g.tracks],
        "end_layer": [L[t.end] for t in g.tracks],
        "length": [t.length for t in g.tracks],
        "start_event": [t.start_event for t in g.tracks],
        "end_event": [t.end_event for t in g.tracks],
        "features": [" ".join(feature_name(L[t.start + i], f) for i, f in enumerate(t.features)) for t in g.tracks],
        "parents": [_ids(t.parents) for t in g.tracks],
        "children": [_ids(t.children) for t in g.tracks],
        "mean_cosine": [_mean(t.cosines) for t in g.tracks],
        "mean_correlation": [_mean(t.correlations) for t in g.tracks],
        "score": [float(t.score) for t in g.tracks],
    })
    rows = []
    for t in g.tracks:
        for i, f in enumerate(t.features):
            step = t.start + i
            rows.append({
                "track": t.id, "layer": L[step], "feature": f, "name": feature_name(L[step], f),
                "cosine": t.cosines[i - 1] if i else math.nan, "correlation": t.correlations[i - 1] if i else math.nan,
                "frequency": float(g.frequency[step][f]) if g.frequency is not None else math.nan,
            })
    members = pd.DataFrame(rows, columns=["track", "layer", "feature", "name", "cosine", "correlation", "frequency"])
    events = pd.DataFrame({
        "kind": [e.kind for e in g.events],
        "layer_from": [L[e.step] for e in g.events],
        "layer_to": [L[e.step + 1] for e in g.events],
        "sources": [_ids(e.sources) for e in g.events],
        "targets": [_ids(e.targets) for e in g.events],
        "cosine": [_mean([ln.cosine for ln in e.links]) for e in g.events],
        "correlation": [_mean([ln.correlation for ln in e.links]) for e in g.events],
    })
    return {"tracks": tracks, "members": members, "events": events, "layers": layer_table(g)}


def layer_table(g: Graph) -> pd.DataFrame:
    """Per layer: features, live features, and the events of its live features (out: to the next layer; births: from the previous)."""
    rows = []
    for i, layer in enumerate(g.layers):
        out = Counter()
        for e in g.events:
            if e.step == i and e.kind != "birth":
                out[e.kind] += len(e.sources)
        births = sum(len(e.targets) for e in g.events if e.step == i - 1 and e.kind == "birth")
        n_live = len(g.live[i])
        last = i == len(g.layers) - 1
        rows.append({
            "layer": layer, "hook": g.hooks[i], "n_features": g.widths[i], "n_live": n_live,
            **{k: (math.nan if last else out[k]) for k in ("continue", "split", "merge", "complex", "death")},
            "birth": math.nan if i == 0 else births,
            "continue_fraction": math.nan if last or not n_live else out["continue"] / n_live,
        })
    return pd.DataFrame(rows)


def summarize(g: Graph, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """How many tracks span k layers, events by kind, and per layer live features, births, deaths and the continuing share."""
    lengths = Counter(t.length for t in g.tracks)
    layers = tables["layers"]

    def plain(key: str, v: Any) -> Any:
        v = v.item() if hasattr(v, "item") else v
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return int(v) if isinstance(v, float) and key != "continue_fraction" else v

    return {
        "n_tracks": len(g.tracks),
        "tracks_spanning": {str(k): lengths[k] for k in sorted(lengths)},
        "events": {k: sum(1 for e in g.events if e.kind == k) for k in EVENT_KINDS},
        "layers": [{k: plain(k, v) for k, v in r.items()} for r in layers.to_dict(orient="records")],
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary as a few lines of text."""
    span = ", ".join(f"{k} layer(s): {n}" for k, n in summary["tracks_spanning"].items())
    lines = [f"{summary['n_tracks']} tracks; spanning {span}", "events: " + ", ".join(f"{k} {n}" for k, n in summary["events"].items())]
    for r in summary["layers"]:
        frac = r["continue_fraction"]
        lines.append(
            f"layer {r['layer']}: {r['n_live']}/{r['n_features']} live, births {r['birth'] if r['birth'] is not None else '-'}, "
            f"deaths {r['death'] if r['death'] is not None else '-'}, splits {r['split'] if r['split'] is not None else '-'}, "
            f"merges into next {r['merge'] if r['merge'] is not None else '-'}, continuing {'-' if frac is None else f'{frac:.1%}'}"
        )
    return lines


# -- the API -----------------------------------------------------------------------------------------
def default_output() -> Path:
    return Path("tracks.h5")


def run_track(
    config: TrackConfig,
    sae_paths: Sequence[str | Path],
    *,
    activations: str | Path | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    csv: str | Path | None = None,
    plot: str | Path | None = None,
    html: str | Path | None = None,
    browser: str = "features-L{layer}.html",
    device: str = "cpu",
) -> TrackResult:
    """Link the features of SAEs at adjacent layers into tracks and write a ``tracks`` artifact.

    ``csv`` also writes one row per track member; ``plot`` a flow plot (PNG);
    ``html`` a page listing the tracks, each feature linked to its page in a
    feature browser. Every input is checked before anything is written.
    """
    config.validate()
    crosscoder = _crosscoder(sae_paths, device)
    saes = [] if crosscoder is not None else load_layer_saes([str(p) for p in sae_paths], device)
    if crosscoder is None and len(saes) < 2:
        raise SaetoolError("track needs SAEs at two or more layers", hint="pass SAE files (one per layer), an sae-set, or a crosscoder")
    ins = [*sae_paths, activations]
    out = check_output_path(output or default_output(), overwrite=overwrite, inputs=ins)
    extra = [(opt, Path(p)) for opt, p in (("--csv", csv), ("--plot", plot), ("--html", html)) if p is not None]
    check_outputs([("--output", out), *extra], ins, overwrite=True)
    for opt, p in extra:
        check_output_path(p, overwrite=overwrite, inputs=ins, option=opt)
    start = time.perf_counter()
    if crosscoder is not None:
        graph = crosscoder_graph(crosscoder, str(sae_paths[0]), min_share=config.min_share)
    else:
        warn_failed_checklists(saes)
        graph = link_layers(config, saes, activations)
    tables = graph_tables(graph)
    summary = summarize(graph, tables)
    seconds = time.perf_counter() - start
    settings = {**asdict(config), "activations": str(Path(activations).resolve()) if activations else None, "seconds": round(seconds, 2)}
    sae_info = [{"layer": s.layer, "hook": s.hook, "path": str(Path(s.path).resolve()), "d_sae": s.sae.cfg.d_sae} for s in saes]
    if crosscoder is not None:
        sae_info = [{"layer": la, "hook": h, "path": str(Path(sae_paths[0]).resolve()), "d_sae": crosscoder.cfg.d_sae} for la, h in zip(graph.layers, graph.hooks)]
    attrs = {"mode": "crosscoder" if crosscoder is not None else "corpus", "layers": graph.layers, "hooks": graph.hooks, "saes": sae_info, "settings": settings, "summary": summary,
             "n_tracks": len(graph.tracks), "n_events": len(graph.events)}
    model = crosscoder.cfg.model if crosscoder is not None else next((s.sae.cfg.model for s in saes if s.sae.cfg.model), None)
    parents = [str(p) for p in sae_paths if Path(p).is_file()] + ([str(activations)] if activations and crosscoder is None else [])
    prov = build_provenance(model=model, hooks=graph.hooks, parents=parents, track=settings)
    write_tracks(out, tables, attrs=attrs, provenance=prov, overwrite=overwrite)
    result = TrackResult(out, graph, tables, summary, seconds)
    if csv is not None:
        result.exports.append(write_csv(csv, tables))
    if plot is not None:
        from saetool.track.plot import flow_plot

        result.exports.append(flow_plot(plot, tables["layers"], tables["events"], title=f"tracks: {len(graph.tracks)} over layers {graph.layers[0]}-{graph.layers[-1]}"))
    if html is not None:
        result.exports.append(write_view(html, tables, sae_info, browser=browser))
    log(f"[dim]track: {len(graph.layers)} layers, {len(graph.tracks)} tracks, {len(graph.events)} events, {seconds:.1f}s[/dim]")
    return result


def is_crosscoder(paths: Sequence[str | Path]) -> bool:
    """Whether ``paths`` is one crosscoder (an unreadable file is left to :func:`run_track` to report)."""
    try:
        return _crosscoder(paths, "cpu") is not None
    except SaetoolError:
        return False


def _crosscoder(paths: Sequence[str | Path], device: str) -> "SAE | None":
    """The crosscoder, when ``paths`` is one SAE file that is one."""
    if len(paths) != 1:
        return None
    sae = load_sae(paths[0], device)
    return sae if crosscoder_hooks(sae.cfg) else None


def write_csv(path: str | Path, tables: dict[str, pd.DataFrame]) -> Path:
    """One row per track member, with its track's start and end."""
    t = tables["tracks"][["id", "start_layer", "end_layer", "length", "start_event", "end_event"]].rename(columns={"id": "track"})
    rows = tables["members"].merge(t, on="track", how="left")
    write_atomic(path, rows.to_csv(index=False))
    return Path(path)
