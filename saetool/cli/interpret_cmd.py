"""``saetool interpret``."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.cli.options import DEVICE, OUTPUT, OVERWRITE, RESUME, TRUST_REMOTE_CODE, key_values
from saetool.console import is_quiet, log, stderr, warn
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the interpret API (torch), h5py, artifact helpers and rich tables load
# when the command runs.


def interpret(
    acts: Optional[Path] = typer.Argument(None, help="Activations artifact (or a features artifact to re-render); omit or '-' to read a manifest from stdin (extract's or train's)."),
    sae: Optional[str] = typer.Option(None, "--sae", help="The SAE: an sae artifact, an SAE folder or a pretrained RELEASE/SAE_ID (default: from a piped train manifest)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Re-run this model over --corpus instead of reading ACTS (stores the SAE's hook in a temporary file)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", "-c", help="Corpus for --model (as in saetool extract)."),
    num_tokens: int = typer.Option(8192, "--num-tokens", "-n", help="Tokens to run with --model/--corpus."),
    context_size: int = typer.Option(128, "--context-size", help="Tokens per window with --model/--corpus."),
    features: Optional[str] = typer.Option(None, "--features", help="Only these feature ids, e.g. 0,5,10-12."),
    top: Optional[int] = typer.Option(None, "--top", help="Report N features chosen by --order (default: all)."),
    order: str = typer.Option("bands", "--order", help="Which features --top keeps and the report's order: bands (sampled evenly across log10-density bands, dense and dead ones listed apart), density, max, score (bands, shown best score first), index or random."),
    dense_threshold: float = typer.Option(0.1, "--dense-threshold", help="A feature active on more than this fraction of tokens is dense: listed apart, not sampled by --order bands."),
    intervals: int = typer.Option(5, "--intervals", help="Equal intervals of (0, max] to show random activating examples from (weak to strong)."),
    per_interval: int = typer.Option(2, "--per-interval", help="Examples kept per interval."),
    logit_tokens: int = typer.Option(10, "--logit-tokens", help="Tokens each feature most promotes and suppresses through the unembedding (0: none, no model loaded)."),
    scorers: str = typer.Option("detection,fuzzing", "--scorers", help="Label scorers, comma-separated (detection, fuzzing or a plugin's); the first gives the label's score."),
    json_dir: Optional[Path] = typer.Option(None, "--json-dir", help="Also write seed 002's layer_{L}_interpretations.json into this folder."),
    examples: int = typer.Option(20, "--examples", "-k", help="Top-activating examples kept per feature."),
    held_out: int = typer.Option(10, "--held-out", help="Random activating examples (not among the top) kept per feature, for scoring labels."),
    negatives: int = typer.Option(10, "--negatives", help="Random windows where the feature is 0, kept per feature."),
    context: int = typer.Option(24, "--context", help="Tokens in each example window (the activating token sits at 3/4)."),
    bins: int = typer.Option(40, "--bins", help="Histogram bins over (0, max]; a multiple of --intervals makes each interval's share of the activations exact."),
    n_neighbours: int = typer.Option(10, "--neighbours", help="Nearest features by decoder cosine kept per feature."),
    labeler: str = typer.Option("tokens", "--labeler", help="Labeler: tokens, llm or a plugin's; 'none' for no labels."),
    labeler_option: Optional[List[str]] = typer.Option(None, "--labeler-option", help="KEY=VALUE passed to the labeler (repeatable)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a markdown report here."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a static HTML feature browser here."),
    show: int = typer.Option(10, "--show", help="Rows in the summary table on stderr."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random held-out and negative examples."),
    device: str = DEVICE,
    chunk_rows: Optional[int] = typer.Option(None, "--chunk-rows", help="Tokens encoded per chunk (default: about 64 MB of feature activations)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Checkpoint every N chunks (default: every 30 s)."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Find what each SAE feature responds to: statistics, examples, labels (a `features` artifact).

    Per feature: firing density, max and mean activation, a histogram, the
    top-activating tokens in context, held-out and negative examples, common
    tokens, nearest features by decoder cosine and a label. Given a features
    artifact instead of activations, writes its --report/--html again.

    Example:

        saetool extract -n 20000 | saetool train --d-sae 2048 | saetool interpret --top 50 --report report.md --html features.html
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.artifacts.store import ensure_writable_parent
    from saetool.interpret.api import InterpretConfig, extract_for_sae, interpret as run, parse_features

    for extra in (report, html):
        if extra is not None:
            if extra.is_dir():
                raise SaetoolError(f"{extra} is a directory", hint="give a file name")
            ensure_writable_parent(extra)
    if json_dir is not None and json_dir.exists() and not json_dir.is_dir():
        raise SaetoolError(f"{json_dir} is not a folder", hint="give --json-dir a folder (created if missing)")
    options = key_values(labeler_option or [], "--labeler-option", example="model=NAME")
    acts_path, sae_path, kind = _resolve_inputs(acts, sae, from_model=model is not None or corpus is not None)
    from saetool.artifacts.outputs import check_outputs
    from saetool.interpret.api import default_output

    main_out = None if kind == "features" else (output or (default_output(sae_path) if sae_path else None))
    json_out = _json_output(json_dir, _known_hook(kind, acts_path, sae_path)) if json_dir is not None else None
    check_outputs({"--output": main_out, "--report": report, "--html": html, "--json-dir": json_out}, [acts_path, sae_path], overwrite=overwrite)
    if kind == "features":
        _rerender(acts_path, sae_path, report, html, show, json_dir, overwrite=overwrite)
        return
    if sae_path is None:
        raise SaetoolError("no SAE given", hint="pass --sae SAE, or pipe saetool train into interpret")
    config = InterpretConfig(
        features=parse_features(features),
        top=top,
        order=order,
        dense_threshold=dense_threshold,
        intervals=intervals,
        per_interval=per_interval,
        logit_tokens=logit_tokens,
        scorers=[x.strip() for x in scorers.split(",") if x.strip()],
        examples=examples,
        held_out=held_out,
        negatives=negatives,
        context=context,
        bins=bins,
        neighbours=n_neighbours,
        labeler=None if labeler.lower() == "none" else labeler,
        labeler_options=options,
        seed=seed,
        device=device,
        chunk_rows=chunk_rows,
        checkpoint_every=checkpoint_every,
    )
    with contextlib.ExitStack() as stack:
        if acts_path is None:  # the temporary folder only when there is something to put in it (a killed run cannot remove it)
            if not (model and corpus):
                raise SaetoolError("--model and --corpus go together", hint="give both, or pass an activations artifact")
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="saetool-interpret-"))
            log_line(f"running {model} over {corpus} ({num_tokens} tokens) for the SAE's hook")
            acts_path = extract_for_sae(sae_path, model, corpus, num_tokens, context_size, Path(tmp) / "activations.h5", device=device)
        result = run(config, acts_path, sae_path, output, overwrite=overwrite, resume=resume)
    model_name, hook, summary = _model_of(result.path)
    meta = with_quality_warning({"sae": str(sae_path), "activations": str(acts_path), "model": model_name, "hook": hook, "d_sae": result.d_sae,
                                 "n_tokens": result.n_tokens, "dead": result.dead, "labeler": result.labeler, "features": str(result.path)}, sae_path)
    records = result.records
    print_summary(records, result.d_sae, result.dead, show, summary)
    written = _write_views(records, report, html, meta, summary, json_dir, result.path, inputs=(acts_path, sae_path), overwrite=overwrite)
    log_line(f"[green]wrote[/green] {result.path}: {len(result.records)} features of {result.d_sae} ({result.dead} dead) over {result.n_tokens} tokens" + "".join(f"; {w}" for w in written))
    from saetool.interpret.report import score_summaries

    emit_manifest(result.path, "features", d_sae=result.d_sae, n_features=len(result.records), dead=result.dead, labeler=result.labeler, scores=score_summaries(records), report=str(report) if report else None, html=str(html) if html else None)


def log_line(message: str) -> None:
    log(message)


def with_quality_warning(meta: dict[str, Any], sae_path: Any) -> dict[str, Any]:
    """``meta`` led by a ``warning`` (also printed) when the SAE missed its training checklist's reconstruction target."""
    from saetool.sae.quality import quality_warning

    note = quality_warning(sae_path) if sae_path else None
    if note is None:
        return meta
    warn(note)
    return {"warning": note, **meta}


def _resolve_inputs(acts: Optional[Path], sae: Optional[str], *, from_model: bool) -> tuple[Optional[Path], Optional[str], str]:
    """(activations path or None, SAE path or None, kind of the main input)."""
    from saetool.artifacts.manifest import read_manifests
    from saetool.artifacts.store import read_header

    if acts is not None and str(acts) != "-":
        if not acts.exists():
            raise SaetoolError(f"{acts} does not exist", hint="check the path, or pipe the previous stage's output")
        kind = _kind(acts)
        if kind == "sae":
            return _acts_of_sae(acts), sae or str(acts), "activations"
        if kind not in ("activations", "features"):
            raise SaetoolError(f"{acts} is a {kind!r} artifact, but interpret needs activations (or a features artifact)")
        return acts, sae, kind
    if from_model:
        return None, sae, "activations"
    own = sae is not None and Path(sae).is_file() and _kind(Path(sae)) == "sae"  # --sae alone: the activations it trained on
    if sys.stdin is None or sys.stdin.isatty():
        if own:
            return _acts_of_sae(Path(sae)), sae, "activations"
        raise SaetoolError("no activations given", hint="pass ACTS and --sae, or pipe saetool extract | saetool train into this")
    records = read_manifests(sys.stdin)
    if not records:
        if own:
            return _acts_of_sae(Path(sae)), sae, "activations"
        raise SaetoolError("no activations given and stdin was empty", hint="pass ACTS and --sae, or pipe a saetool stage into this")
    last = records[-1]
    path = Path(last["path"])
    kind = last.get("kind") or read_header(path)["saetool_kind"]
    if kind == "sae":
        return _acts_of_sae(path), sae or str(path), "activations"
    if kind in ("activations", "features"):
        return path, sae, kind
    raise SaetoolError(f"stdin gave a {kind!r} artifact, but interpret needs activations or an SAE")


def _kind(path: Path) -> str:
    import h5py

    from saetool.artifacts.store import read_header

    if path.is_dir() or not h5py.is_hdf5(path):
        return "sae-folder" if path.is_dir() else "unknown"
    return read_header(path)["saetool_kind"] or "unknown"


def _acts_of_sae(sae_path: Path) -> Path:
    """The activations artifact an SAE was trained on (from its provenance parents)."""
    from saetool.artifacts.store import read_header

    parents = read_header(sae_path)["provenance"].get("parents", [])
    candidates = [Path(p["path"]) for p in parents if p.get("kind") == "activations"]
    for p in candidates:
        if p.exists():
            return p
    if candidates:
        raise SaetoolError(f"the activations {sae_path} was trained on ({candidates[0]}) no longer exist", hint="pass an activations artifact as ACTS")
    raise SaetoolError(f"{sae_path} does not record the activations it was trained on", hint="pass an activations artifact as ACTS")


def _model_of(path: Path) -> tuple[Optional[str], str, Any]:
    from saetool.interpret.store import FeaturesFile

    with FeaturesFile(path) as ff:
        return ff.model, ff.hook, ff.summary()


def _rerender(path: Path, sae_path: Optional[str], report: Optional[Path], html: Optional[Path], show: int, json_dir: Optional[Path] = None, *, overwrite: bool = False) -> None:
    from saetool.artifacts.manifest import emit_manifest
    from saetool.interpret.selection import report_order
    from saetool.interpret.store import FeaturesFile

    with FeaturesFile(path) as ff:
        if sae_path is not None:
            ff.check_sae(sae_path)
        records = report_order(ff.records(), str(ff.settings.get("order", "bands")))
        summary = ff.summary()
        stats = ff.stats()
        dead = int((stats["count"] == 0).sum())
        meta = {"sae": (ff.provenance.get("parents") or [{}])[-1].get("path"), "model": ff.model, "hook": ff.hook, "d_sae": ff.d_sae, "n_tokens": ff.n_tokens, "dead": dead, "labeler": ff.labeler, "features": str(path)}
        d_sae = ff.d_sae
    meta = with_quality_warning(meta, sae_path or meta["sae"])
    print_summary(records, d_sae, dead, show, summary)
    written = _write_views(records, report, html, meta, summary, json_dir, path, inputs=(path, sae_path), overwrite=overwrite)
    log_line(f"{path}: {len(records)} features" + "".join(f"; {w}" for w in written))
    emit_manifest(path, "features", d_sae=d_sae, n_features=len(records), dead=dead, report=str(report) if report else None, html=str(html) if html else None)


def _json_output(json_dir: Optional[Path], hook: Optional[str]) -> Optional[Path]:
    """The file ``--json-dir`` writes for an SAE at ``hook`` (None when either is unknown)."""
    from saetool.interpret.seed_json import interpretations_path

    return interpretations_path(json_dir, hook) if json_dir is not None and hook else None


def _known_hook(kind: str, acts_path: Optional[Path], sae_path: Optional[str]) -> Optional[str]:
    """The SAE's hook, read through the artifact readers from a features or ``sae`` artifact
    (None for an SAE folder or a pretrained name: ``--json-dir``'s file is then checked once the
    features are known, still before anything is written)."""
    from saetool.interpret.store import FeaturesFile
    from saetool.sae.io import is_sae_artifact, read_sae_artifact

    if kind == "features" and acts_path is not None:
        with FeaturesFile(acts_path) as ff:
            return ff.hook
    if kind != "features" and sae_path is not None and is_sae_artifact(Path(sae_path)):
        with read_sae_artifact(sae_path) as art:
            return art.config.hook
    return None


def _write_views(records: list, report: Optional[Path], html: Optional[Path], meta: dict[str, Any], summary: Any = None, json_dir: Optional[Path] = None,
                 features_path: Optional[Path] = None, *, inputs: tuple = (), overwrite: bool = False) -> list[str]:
    from saetool.artifacts.outputs import check_outputs

    json_out = _json_output(json_dir, meta.get("hook")) if features_path is not None else None
    check_outputs({"--report": report, "--html": html, "--json-dir": json_out}, [*inputs, features_path], overwrite=overwrite)  # before any is written
    written = []
    title = f"saetool features: {Path(str(meta.get('sae') or 'SAE')).name}"
    if report is not None:
        from saetool.interpret.report import write_report

        write_report(records, report, title=title, meta=meta, summary=summary)
        written.append(f"report {report}")
    if html is not None:
        from saetool.interpret.browser import write_browser

        write_browser(records, html, title=title, meta=meta, summary=summary)
        written.append(f"browser {html}")
    if json_dir is not None and features_path is not None:
        from saetool.interpret.seed_json import write_interpretations_json

        out = write_interpretations_json(features_path, json_dir)
        written.append(f"interpretations {out}")
    return written


def print_summary(records: list, d_sae: int, dead: int, show: int, summary: Any = None) -> None:
    """The density summary of all features, mean scores, and the first reported features on stderr."""
    from rich.markup import escape
    from rich.table import Table

    from saetool.interpret.report import dense_list, density_histogram_lines, mean_scores_text, score_cell, summary_lines

    if is_quiet() or show <= 0:
        return
    if summary is not None:
        lines = summary_lines(summary) + ([f"dense features: {dense_list(summary, 20)}"] if summary.dense else [])
        lines += ["feature density (log10 of the fraction of tokens active):"] + ["  " + x for x in density_histogram_lines(summary, width=30)]
        stderr().print(escape("\n".join(lines)), highlight=False)
    for line in mean_scores_text(records):
        stderr().print(escape(line), highlight=False)
    shown = f"; the first {show} shown (--show)" if len(records) > show else ""
    table = Table(title=f"{len(records)} features reported, {dead} of {d_sae} dead{shown}", title_justify="left")
    for col, just in (("feature", "right"), ("density", "right"), ("max", "right"), ("mean", "right"), ("label", "left"), ("detection", "right"), ("top tokens", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in records[:show]:
        label = r.label.text if r.label else ""
        label = label if len(label) <= 40 else label[:39] + "…"
        score = "" if not r.label or r.label.score is None else score_cell(r.label, "detection")
        toks = ", ".join(repr(t) for t, _ in r.top_tokens[:4])
        table.add_row(str(r.index), f"{r.density:.4f}", f"{r.max_activation:.3g}", f"{r.mean_activation:.3g}", escape(label), score, escape(toks))
    stderr().print(table)
