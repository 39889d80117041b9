"""The static HTML feature browser: one self-contained file that works offline from ``file://``.

The page is ``templates/browser.html`` with its CSS and JavaScript inlined and
the records embedded as JSON in a ``<script type="application/json">`` block.
The JSON is escaped so that corpus text cannot end that block (``<``, ``>``,
``&`` and U+2028/2029 become ``\\uXXXX`` escapes), and the script puts all
corpus text into the page as text nodes. A Content-Security-Policy allows only
the page's own script (by hash), inline styles and nothing from the network.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from saetool import __version__
from saetool.errors import SaetoolError
from saetool.interpret.records import Example, FeatureRecord
from saetool.interpret.report import SCORERS, at_chance, interval_name, samples_text, score_summaries, window_start_note, write_text_atomic

SCHEMA = 1
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_EXAMPLE_FIELDS = ("top_examples", "held_out", "interval_examples")
_LEFT_OUT = ("negatives",)


def _asset(name: str) -> str:
    return resources.files("saetool.interpret").joinpath("templates", name).read_text(encoding="utf-8")


def _num(x: Any) -> float | None:
    x = float(x)
    return float(f"{x:.6g}") if x - x == 0 else None  # x - x is nan for nan and inf


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data: floats to 6 significant digits, non-finite ones as ``null``,
    tuples as lists, dataclasses as dicts, numpy values unwrapped, anything else as its ``str``."""
    if type(value).__module__ == "numpy":
        value = value.tolist()  # scalars become Python numbers, arrays nested lists
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def _script_json(plain: Any) -> str:
    """Plain data as compact JSON with nothing that could end or confuse a ``<script>`` block."""
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False).translate(_JSON_ESCAPES)


def embed_json(data: Any) -> str:
    """``data`` as JSON that is safe inside an HTML ``<script>`` element."""
    return _script_json(_plain(data))


def _example(e: Example) -> dict[str, Any]:
    # The hot path (most of the page's bytes): no token ids, which the page does not show.
    return {
        "activation": _num(e.activation),
        "tokens": [str(t) for t in e.tokens],
        "position": int(e.position),
        "seq_index": int(e.seq_index),
        "token_position": int(e.token_position),
        "values": None if e.values is None else [None if v is None else _num(v) for v in e.values],
    }


def _feature(r: FeatureRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(r):
        if f.name == "interval_examples":  # each with the interval it was drawn from, named as in the report
            out[f.name] = [{**_example(e), "interval": interval_name(r, e)} for e in r.interval_examples]
        elif f.name in _EXAMPLE_FIELDS:
            out[f.name] = [_example(e) for e in getattr(r, f.name)]
        elif f.name not in _LEFT_OUT:
            out[f.name] = _plain(getattr(r, f.name))
    out["dead"] = bool(r.dead)
    details = (out.get("label") or {}).get("details")
    if isinstance(details, dict):  # the report's verdicts, so that the page states them and does not recompute them
        for name in SCORERS:
            if isinstance(details.get(name), dict) and details[name].get("score") is not None:
                details[name] = {**details[name], "at_chance": at_chance(r.label, name), "samples": samples_text(name, details[name])}
    note = window_start_note(r)
    out["notes"] = [note + "."] if note else []
    return out


def browser_data(records: Sequence[FeatureRecord], *, title: str, meta: dict[str, Any] | None, summary: Any = None) -> dict[str, Any]:
    """What the page embeds, as plain JSON data: the records as in :meth:`FeatureRecord.to_json`,
    less ``negatives`` (only used for scoring) and the examples' ``token_ids``."""
    seen: set[int] = set()
    for r in records:
        if not isinstance(r, FeatureRecord):
            raise TypeError(f"write_browser takes FeatureRecord objects, not {type(r).__name__}")
        if r.index in seen:
            raise SaetoolError(f"feature {r.index} appears twice in the records", hint="pass each feature once")
        seen.add(r.index)

    scores = score_summaries(records)
    out = {"schema": SCHEMA, "title": str(title), "meta": _plain(dict(meta or {})), "features": [_feature(r) for r in records], "scores": _plain(scores)}
    if summary is not None:
        out["summary"] = _plain(summary.to_json())
    return out


def render_browser(records: Sequence[FeatureRecord], *, title: str = "saetool features", meta: dict[str, Any] | None = None, summary: Any = None) -> str:
    """The browser page as one HTML string."""
    js = _asset("browser.js")
    if "</script" in js.lower():  # pragma: no cover - guards edits to the asset
        raise RuntimeError("templates/browser.js must not contain '</script'")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    parts = {
        "title": html.escape(str(title)),
        "version": html.escape(__version__),
        "css": _asset("browser.css"),
        "js": js,
        "script_hash": f"sha256-{digest}",
        "data": _script_json(browser_data(records, title=title, meta=meta, summary=summary)),
    }
    # One pass, so text inserted for one placeholder is never scanned for another.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _asset("browser.html"))


def write_browser(
    records: Sequence[FeatureRecord],
    path: str | Path,
    *,
    title: str = "saetool features",
    meta: dict[str, Any] | None = None,
    summary: Any = None,
) -> Path:
    """Write one self-contained HTML file that browses ``records`` offline; returns its path.

    Written atomically (a temporary name, then :func:`os.replace`).
    """
    path = Path(path)
    if path.is_dir():
        raise SaetoolError(f"{path} is a directory", hint="give a file name for the browser, e.g. features.html")
    return write_text_atomic(path, render_browser(records, title=title, meta=meta, summary=summary))
