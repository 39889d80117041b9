"""An HTML page of tracks: one row per track, its features one per layer, each
linked to its page in a feature browser (``saetool interpret --html``, whose
pages are addressed ``FILE#feature-ID``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from saetool.artifacts.files import write_atomic

if TYPE_CHECKING:
    import pandas as pd

#: Where a layer's feature browser is, relative to the page: ``{layer}`` is filled in.
DEFAULT_BROWSER = "features-L{layer}.html"


def render_view(tables: Mapping[str, "pd.DataFrame"], saes: Sequence[Mapping[str, Any]], *, browser: str = DEFAULT_BROWSER, max_tracks: int = 1000,
                present: set[int] | None = None) -> str:
    """The page as a string: the longest ``max_tracks`` tracks, longest first. ``present``: the layers
    whose browser page exists beside the page (the note says which are missing; ``None``: not checked)."""
    tracks = tables["tracks"].sort_values(["length", "id"], ascending=[False, True]).head(max_tracks)
    layers = [int(s["layer"]) for s in saes]
    head = "".join(f"<th>L{layer}</th>" for layer in layers)
    rows = []
    for t in tracks.to_dict(orient="records"):
        cells = {int(n.split("-")[0][1:]): n for n in str(t["features"]).split()}
        tds = []
        for layer in layers:
            name = cells.get(layer)
            if name is None:
                tds.append("<td></td>")
                continue
            href = html.escape(browser.format(layer=layer) + f"#feature-{name.split('-')[1]}", quote=True)
            tds.append(f'<td><a href="{href}">{html.escape(name)}</a></td>')
        rows.append(
            f"<tr><td>{int(t['id'])}</td><td>{int(t['length'])}</td><td>{html.escape(str(t['start_event']))}</td>"
            f"<td>{html.escape(str(t['end_event']))}</td>{''.join(tds)}</tr>"
        )
    note = ""
    if present is not None and set(layers) - present:
        missing = [layer for layer in layers if layer not in present]
        note = (f" The pages of {len(missing)} of {len(layers)} layers are not beside this page yet (layers {', '.join(map(str, missing))}): "
                f"write each with <code>saetool interpret ACTS --sae SAE --html {html.escape(browser)}</code>, the layer filled in.")
    style = "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>saetool tracks</title><style>{style}</style></head><body>"
        f"<h1>Tracks</h1><p>{len(tables['tracks'])} tracks over layers {', '.join(map(str, layers))}; "
        f"showing the {len(tracks)} longest. A feature links to its page in <code>{html.escape(browser)}</code>.{note}</p>"
        f"<table><thead><tr><th>track</th><th>layers</th><th>starts by</th><th>ends by</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


def write_view(path: str | Path, tables: Mapping[str, "pd.DataFrame"], saes: Sequence[Mapping[str, Any]], *, browser: str = DEFAULT_BROWSER) -> Path:
    present = None
    if "://" not in browser:  # a local browser: say which pages are missing (a URL is not checked)
        folder = Path(path).parent
        present = {int(s["layer"]) for s in saes if (folder / browser.format(layer=int(s["layer"]))).exists()}
    return write_atomic(path, render_view(tables, saes, browser=browser, present=present))
