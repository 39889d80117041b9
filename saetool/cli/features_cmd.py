"""``saetool features``: read a features artifact (seed 004's analyzer: report, compare, similar, distribution)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from saetool.cli.options import JSON
from saetool.console import stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the interpret readers, the SAE loader (torch, h5py) and rich markup load
# when the command runs.

app = typer.Typer(
    no_args_is_help=True,
    help="""Read a `features` artifact from `saetool interpret`, or seed 004's samples folder: one feature's report, two features compared, nearest features, activation distribution.

Human text goes to stderr; --json prints data to stdout.

Example:

    saetool features report features.h5 --feature 42
""",
)

FEATURES_ARG = typer.Argument(..., help="A features artifact (from saetool interpret), a samples folder (saetool export --format samples) or an SAE artifact with stored samples (train --collect-samples).")
SAE_OPT = typer.Option(None, "--sae", help="The SAE the artifact came from (checked by sha256; lets `similar` look beyond the stored neighbours).")


def _emit(data: Any) -> None:
    from saetool.artifacts.jsonable import finite

    sys.stdout.write(json.dumps(finite(data), sort_keys=True, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def _say(text: str) -> None:
    from rich.markup import escape

    stderr().print(escape(text), soft_wrap=True, highlight=False)  # contexts stay on one line each


def _open(path: Path, sae: Optional[str]) -> Any:
    from saetool.interpret.samples_view import SamplesSource
    from saetool.interpret.store import FeaturesFile
    from saetool.sae.io import is_sae_artifact

    if path.is_dir() or is_sae_artifact(path):
        return SamplesSource(path)
    ff = FeaturesFile(path)
    try:
        if sae is not None:
            ff.check_sae(sae)
    except BaseException:
        ff.close()
        raise
    return ff


def _note(ff: Any, record: Any) -> Optional[str]:
    """A samples source's note on where a record's numbers come from (``None`` for a features artifact)."""
    from saetool.interpret.samples_view import SamplesSource

    return ff.note(record) if isinstance(ff, SamplesSource) else None


def _directions(ff: Any, features: list, sae: Optional[str]) -> Any:
    from saetool.interpret.samples_view import SamplesSource

    return ff.directions(features, sae) if isinstance(ff, SamplesSource) else ff.directions(features)


@app.command("report")
def report(
    features: Path = FEATURES_ARG,
    feature: int = typer.Option(..., "--feature", "-f", help="Feature id."),
    examples: int = typer.Option(10, "--examples", "-k", help="Examples shown."),
    sae: Optional[str] = SAE_OPT,
    as_json: bool = JSON,
) -> None:
    """One feature's statistics, label and top-activating examples.

    Example:

        saetool features report features.h5 --feature 42
    """
    with _open(features, sae) as ff:
        (record,) = ff.records([feature])
        note = _note(ff, record)
    record.top_examples = record.top_examples[:examples]
    if as_json:
        _emit(record.to_json())
        return
    from saetool.interpret.report import feature_report_text

    _say(feature_report_text(record, examples=examples, note=note))


@app.command("compare")
def compare(
    features: Path = FEATURES_ARG,
    a: int = typer.Argument(..., help="First feature id."),
    b: int = typer.Argument(..., help="Second feature id."),
    sae: Optional[str] = SAE_OPT,
    as_json: bool = JSON,
) -> None:
    """Two features side by side, with the cosine similarity of their decoder directions.

    Example:

        saetool features compare features.h5 10 20
    """
    with _open(features, sae) as ff:
        ra, rb = ff.records([a, b])
        da, db = _directions(ff, [a, b], sae)
    cosine = float((da * db).sum())
    if as_json:
        shared = sorted(set(t for t, _ in ra.top_tokens) & set(t for t, _ in rb.top_tokens))
        _emit({"a": ra.to_json(), "b": rb.to_json(), "cosine": cosine, "shared_top_tokens": shared})
        return
    from saetool.interpret.report import compare_text

    _say(compare_text(ra, rb, cosine))


@app.command("similar")
def similar(
    features: Path = FEATURES_ARG,
    feature: int = typer.Argument(..., help="Feature id."),
    top: int = typer.Option(5, "--top", "-k", help="How many neighbours."),
    sae: Optional[str] = SAE_OPT,
    as_json: bool = JSON,
) -> None:
    """The features nearest to one feature by decoder cosine similarity.

    Example:

        saetool features similar features.h5 42 --top 5
    """
    with _open(features, sae) as ff:
        (record,) = ff.records([feature])
        pairs = record.neighbours
        sae_path = sae if sae is not None else (str(ff.sae_path) if getattr(ff, "sae_path", None) is not None and Path(ff.sae_path).exists() else None)
        if top > len(pairs):
            if sae_path is None:
                raise SaetoolError(f"{features} stores {len(pairs)} neighbours per feature, fewer than --top {top}", hint="pass --sae SAE to compute more")
            from saetool.interpret.api import neighbours
            from saetool.sae.io import load_sae

            idx, cos, _ = neighbours(load_sae(str(sae_path), "cpu"), [feature], top)
            pairs = [(int(i), float(c)) for i, c in zip(idx[0], cos[0])]
        pairs = pairs[:top]
        stats = ff.stats()
        stored = {int(f) for f in ff.index.tolist()}
        labels = {r.index: r.label.text for r in ff.records([i for i, _ in pairs if i in stored]) if r.label}
    rows = [{"feature": i, "cosine": c, "density": float(stats["density"][i]), "max": float(stats["max"][i]), "label": labels.get(i)} for i, c in pairs]
    if as_json:
        _emit({"feature": feature, "neighbours": rows})
        return
    lines = [f"features nearest to {feature} (decoder cosine):"]
    for r in rows:
        stats_text = "not stored" if r["density"] != r["density"] else f"density {r['density']:.4f}  max {r['max']:.3g}"
        lines.append(f"  {r['feature']:>6}  cos {r['cosine']:+.4f}  {stats_text}" + (f"  {r['label']}" if r["label"] else ""))
    _say("\n".join(lines))


@app.command("distribution")
def distribution(
    features: Path = FEATURES_ARG,
    feature: int = typer.Argument(..., help="Feature id."),
    width: int = typer.Option(40, "--width", help="Width of the longest bar."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also draw the histogram as a PNG image here."),
    sae: Optional[str] = SAE_OPT,
    as_json: bool = JSON,
) -> None:
    """A feature's activation histogram (over the tokens where it is active; for a samples
    folder, over its stored top samples) and statistics.

    Example:

        saetool features distribution features.h5 42
    """
    from saetool.interpret.samples_view import SamplesSource

    with _open(features, sae) as ff:
        (record,) = ff.records([feature])
        stats = ff.stats()
        n_tokens = ff.n_tokens
        from_samples = isinstance(ff, SamplesSource)
        note = _note(ff, record)
    data = {
        "feature": feature,
        "n_tokens": n_tokens,
        "count": int(stats["count"][feature]),
        "density": record.density,
        "max": record.max_activation,
        "mean": record.mean_activation,
        "std": float(stats["std"][feature]),
        "edges": record.histogram_edges,
        "counts": record.histogram_counts,
    }
    if png is not None:
        from saetool.interpret.plots import distribution_png

        distribution_png(record, png, n_tokens=n_tokens, samples_only=from_samples)
        data["png"] = str(png)
    if as_json:
        _emit(data)
        return
    peak = max(record.histogram_counts or [0]) or 1
    spread = (f"max {data['max']:.4g} and std {data['std']:.4g} over the {len(record.top_examples)} stored samples, mean {data['mean']:.4g} over the active tokens"
              if from_samples else f"max {data['max']:.4g}, mean {data['mean']:.4g}, std {data['std']:.4g}")  # samples: two populations, said apart
    lines = [f"feature {feature}: active on {data['count']} of {n_tokens} tokens (density {data['density']:.4f}); {spread}"]
    if note:
        lines.append(f"  {note}")
    if data["count"] == 0:
        lines.append("  dead: never active")
    if png is not None:
        lines.append(f"  histogram drawn in {png}")
    for lo, hi, c in zip(record.histogram_edges[:-1], record.histogram_edges[1:], record.histogram_counts):
        lines.append(f"  {lo:9.3g} - {hi:9.3g} | {'#' * round(width * c / peak):<{width}} {c}")
    _say("\n".join(lines))
