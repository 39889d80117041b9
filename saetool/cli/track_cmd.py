"""``saetool track``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from saetool.cli.options import BACKEND, DEVICE, DTYPE, OUTPUT, OVERWRITE, TRUST_REMOTE_CODE
from saetool.console import log
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the track API and artifact helpers load when the command runs.


def track(
    saes: Optional[List[Path]] = typer.Argument(None, help="SAE artifacts one per layer, an sae-set, or one crosscoder; default: the manifests piped in."),
    acts: Optional[Path] = typer.Option(None, "--acts", "-a", help="Activations holding every SAE's hook (same tokens): links by activation correlation too (default: the file the SAEs were trained on, if it has every hook)."),
    no_acts: bool = typer.Option(False, "--no-acts", help="Link by decoder cosine alone, even if activations are at hand."),
    texts: Optional[Path] = typer.Option(None, "--texts", help="Text mode: prompts (.txt one per line, .jsonl, .json); hypothesis tracks per token."),
    compare: Optional[List[Path]] = typer.Option(None, "--compare", help="Text mode: two prompt files A B (give the option twice) compared by their tracks."),
    min_cosine: float = typer.Option(0.5, "--min-cosine", help="Link features whose decoder rows have at least this cosine ..."),
    min_correlation: float = typer.Option(0.4, "--min-correlation", help="... and whose activations correlate at least this much (corpus mode with activations)."),
    min_ratio: float = typer.Option(0.5, "--min-ratio", help="... and whose link is at least this share of each feature's best link (0: every link)."),
    min_active: int = typer.Option(5, "--min-active", help="Live features fire on at least this many tokens ..."),
    min_strength: float = typer.Option(0.2, "--min-strength", help="... with a mean activation of at least this times the layer's median."),
    min_share: float = typer.Option(0.1, "--min-share", help="Crosscoder: a feature lives at a layer where its decoder norm is at least this share of its largest."),
    num_tokens: int = typer.Option(65536, "--num-tokens", "-n", help="Activation rows read (corpus mode)."),
    top_features: int = typer.Option(16, "--top-features", help="Text mode: the most active features per token and layer that can start or continue a track."),
    context_size: int = typer.Option(64, "--context-size", help="Text mode: tokens per prompt (BOS included); longer prompts are cut."),
    correction: str = typer.Option("holm", "--correction", help="Text mode, --compare: p-value adjustment over the measures (holm, bh, none)."),
    pairing: str = typer.Option("auto", "--pairing", help="Text mode, --compare: pair the two files line by line (paired), or not (unpaired); auto pairs files of equal length of which at least half of the line pairs share their first 3 tokens."),
    score_tokens: str = typer.Option("differing", "--tokens", help="Text mode, --compare, paired: score each prompt from the first token where it differs from its pair (differing), or every token (all)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the tracks as CSV (one row per track member)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write the flow plot (PNG)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write an HTML page of the tracks, linked to feature browsers."),
    browser: str = typer.Option("features-L{layer}.html", "--browser", help="With --html: each layer's feature browser ({layer} is filled in)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Text mode: the model (default: the one the SAEs record)."),
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Follow SAE features across layers: tracks with their continues, splits, merges, births and deaths (a `tracks` artifact).

    Crosscoder (one crosscoder file): each feature's per-layer decoder norms
    are its track (present where at least --min-share of its largest norm).
    Corpus mode (SAEs per layer): features of adjacent layers are linked by decoder
    cosine and, with activations of the same tokens, by activation
    correlation; chains of one-to-one links are tracks. Text mode (--texts or
    --compare): per token of each prompt, the active features of each layer
    are linked into hypothesis tracks scored by activation; --compare A B tests
    how the two prompt sets differ: files of equal length whose lines begin
    alike pair line by line, each prompt scored from the first token where it
    differs from its pair (paired t-test), others on every token (Welch's
    t-test); adjusted p-values.

    Examples:

        saetool track sae-L14.h5 sae-L15.h5 --acts acts.h5 --plot flow.png --csv tracks.csv
        saetool track sae-L*.h5 --compare truthful.txt --compare hallucinated.txt -o compare.h5
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.track.api import TrackConfig, summary_lines
    from saetool.track.inputs import default_activations, sae_inputs
    from saetool.track.store import KIND

    paths, piped_acts = sae_inputs(saes)
    config = TrackConfig(min_cosine=min_cosine, min_correlation=min_correlation, min_ratio=min_ratio, min_active=min_active,
                         min_strength=min_strength, num_tokens=num_tokens, min_share=min_share)
    if texts is not None or compare:
        from saetool.track.text import TextConfig, run_text_track

        if texts is not None and compare:
            raise SaetoolError("give --texts or --compare, not both")
        if compare and len(compare) != 2:
            raise SaetoolError(f"--compare takes two prompt files (got {len(compare)})", hint="--compare A.txt --compare B.txt")
        tconfig = TextConfig(min_cosine=min_cosine, min_ratio=min_ratio, top_features=top_features, context_size=context_size, correction=correction,
                             pairing=pairing, tokens=score_tokens)
        sets = [texts] if texts is not None else list(compare or [])
        result = run_text_track(tconfig, paths, sets, output=output, overwrite=overwrite, csv=csv, model_name=model, backend=backend, device=device, dtype=dtype)
        for line in result.lines:
            log(line)
        log(f"[green]wrote[/green] {result.path}")
        emit_manifest(result.path, KIND, mode="text", n_prompts=result.n_prompts, n_tracks=result.n_tracks)
        return
    from saetool.track.api import is_crosscoder, run_track

    crosscoder = is_crosscoder(paths)
    activations = None if no_acts or crosscoder else (acts or piped_acts or default_activations(paths))
    if activations is None and not no_acts and not crosscoder:
        log("[yellow]no activations for the SAEs' hooks: linking by decoder cosine alone (pass --acts FILE to add activation correlation)[/yellow]")
    result = run_track(config, paths, activations=activations, output=output, overwrite=overwrite, csv=csv, plot=plot, html=html,
                       browser=browser, device=device)
    for line in summary_lines(result.summary):
        log(line)
    log(f"[green]wrote[/green] {result.path}")
    for p in result.exports:
        log(f"[green]wrote[/green] {p}")
    emit_manifest(result.path, KIND, mode="crosscoder" if crosscoder else "corpus", n_tracks=result.summary["n_tracks"], layers=result.graph.layers,
                  events=result.summary["events"])
