"""``saetool transitions``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.cli.options import BACKEND, DEVICE, DTYPE, OUTPUT, OVERWRITE, TRUST_REMOTE_CODE, key_values
from saetool.console import is_quiet, log, stderr

# Deferred imports: loaded by `saetool --help`; the transitions API (torch), artifact helpers and rich tables load when
# the command runs.


def transitions(
    sae: Path = typer.Option(..., "--sae", help="SAE (artifact or SAE folder (SAELens, sparsify, Gemma/Llama Scope, dictionary_learning) or pretrained RELEASE/SAE_ID) whose hook the activations are read at."),
    texts: Optional[Path] = typer.Option(None, "--texts", help="Ready texts: .txt (one per line), .jsonl ({\"text\": ...}) or .json."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", "-p", help="Or base prompts: each is continued, the --bridge appended, and continued again."),
    control: Optional[Path] = typer.Option(None, "--control", help="Control inputs of the same kind (neutral texts, or neutral base prompts continued through the same --bridge), labeled the same way: a feature of the bridge word fires there too, one of the turn does not."),
    max_texts: Optional[int] = typer.Option(None, "--max-texts", "-n", help="At most this many texts/prompts (and control inputs)."),
    labeler: str = typer.Option("transition-words", "--labeler", help="Position labeler: transition-words or llm-transition (or a plugin's)."),
    labeler_option: Optional[List[str]] = typer.Option(None, "--labeler-option", help="KEY=VALUE for the labeler (repeatable), e.g. words=but,however, prefer=however (looked for first; default: the bridge word) or occurrence=last."),
    offset: int = typer.Option(0, "--offset", help="Read the token this far from the labeled one (-1: the token before it)."),
    top: int = typer.Option(20, "--top", help="Common features to report."),
    bridge: str = typer.Option(" However,", "--bridge", help="Text appended after the first continuation when generating (empty: one continuation); the labeler reads each text from it on."),
    max_new_tokens: int = typer.Option(24, "--max-new-tokens", "-t", help="Tokens per continuation when generating."),
    sample: bool = typer.Option(False, "--sample/--greedy", help="Sample (with --seed) instead of greedy decoding."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature."),
    seed: int = typer.Option(0, "--seed", help="Random seed for sampling."),
    only_turning: bool = typer.Option(False, "--only-turning", help="Keep only the texts that turn from negative to positive at the labeled token (VADER sentiment before < 0, from it on > 0); the control keeps all of its own."),
    context_size: int = typer.Option(256, "--context-size", help="Tokens per text (BOS included); longer texts are cut."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Texts per forward pass / generate call."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model (default: the one the SAE records)."),
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """SAE features at the token where texts turn from negative to positive (a `transitions` artifact).

    Texts are read (--texts) or generated from base prompts (--prompts); a
    position labeler finds each text's transition token on the model's tokens;
    the activations there go through the SAE. Reports reconstruction quality at
    those tokens (and over all tokens, for comparison) and the features active
    in most samples (count and share). With --control, each feature's share
    at the control's tokens and its lift (share here / share there).

    Example:

        saetool transitions --sae sae-L15.h5 --prompts negative_starts.txt --control neutral_starts.txt --bridge " However," -o transitions.h5
    """
    from saetool.analysis.transitions import KIND, TransitionsConfig, run_transitions
    from saetool.artifacts.manifest import emit_manifest

    config = TransitionsConfig(
        labeler=labeler, labeler_options=key_values(labeler_option or [], "--labeler-option", example="words=but,however"), offset=offset, top=top, batch_size=batch_size,
        context_size=context_size, bridge=bridge, max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature, seed=seed,
        only_turning=only_turning,
    )
    result = run_transitions(config, sae, texts_file=texts, prompts_file=prompts, control_file=control, max_texts=max_texts, output=output,
                             overwrite=overwrite, model_name=model, backend=backend, device=device, dtype=dtype)
    show_table(result)
    from saetool.analysis.transitions import n_labeled

    labeled = f"{result.n_samples} of {len(result.texts)} texts labeled"
    if config.only_turning:
        labeled = f"{n_labeled(result.sentiment)} of {len(result.texts)} texts labeled, {result.n_samples} kept: --only-turning"
    if result.control is not None:
        labeled += f"; control: {result.control.n_samples} of {len(result.control.texts)}"
    log(f"[green]wrote[/green] {result.path} ({labeled})")
    extra = {"n_control_samples": result.control.n_samples} if result.control is not None else {}
    emit_manifest(result.path, KIND, n_texts=len(result.texts), n_samples=result.n_samples, **extra,
                  explained_variance=_num(result.metrics.get("explained_variance")), cosine=_num(result.metrics.get("cosine")))


def _num(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def show_table(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from saetool.analysis.transitions import n_labeled, n_turning

    if is_quiet():
        return
    quality = Table(title="SAE reconstruction", title_justify="left")
    quality.add_column("tokens")
    for col in ("n", "MSE", "explained var.", "cosine", "L0"):
        quality.add_column(col, justify="right")
    sets = [("transition tokens", result.metrics), ("all tokens of the texts", result.baseline)]
    if result.control is not None:
        sets.insert(1, ("control tokens", result.control.metrics))
    for label, m in sets:
        quality.add_row(label, str(m["n"]), *(("-" if _num(m[k]) is None else f"{m[k]:.4g}") for k in ("mse", "explained_variance", "cosine", "l0")))
    stderr().print(quality)
    labeled = Table(title="labeled transition tokens (first 10 texts; position: the token's index, BOS = 0)", title_justify="left")
    for col in ("#", "position", "sentiment before / after", "around the token"):
        labeled.add_column(col, justify="right" if col in ("#", "position") else "left", overflow="fold")
    sentiment = result.sentiment if result.sentiment is not None else [[math.nan, math.nan]] * len(result.texts)
    contexts = result.contexts or [" ".join(t.split())[:100] for t in result.texts]
    for i, (pos, mood, around) in enumerate(list(zip(result.positions, sentiment, contexts))[:10]):
        mood_text = "-" if math.isnan(mood[0]) else f"{mood[0]:+.2f} / {mood[1]:+.2f}"
        left_out = pos is None and not math.isnan(mood[0])  # labeled, but --only-turning left it out
        labeled.add_row(str(i), "-" if pos is None else str(pos), mood_text,
                        escape(" ".join(around.split())) if pos is not None else ("left out: does not turn (--only-turning)" if left_out else "-"))
    stderr().print(labeled)
    stderr().print("transition tokens: " + _token_counts(result.tokens, result.positions))
    control = result.control
    if control is not None:
        stderr().print("control tokens: " + _token_counts(control.tokens, control.positions))
    if result.sentiment is not None:
        line = (f"texts that turn from negative to positive at the labeled token (VADER compound < 0 before it, > 0 from it on): "
                f"{n_turning(result.sentiment)} of {n_labeled(result.sentiment)}")
        if result.n_samples < n_labeled(result.sentiment):
            line += f" (the {result.n_samples} kept: --only-turning)"
        if control is not None and control.sentiment is not None:
            line += f"; control: {n_turning(control.sentiment)} of {control.n_samples}"
        stderr().print(line)
    title = f"features common at the transition ({result.n_samples} samples" + (f"; control: {control.n_samples})" if control is not None else ")")
    table = Table(title=title, title_justify="left")
    cols = ("feature", "count", "share", "mean act.") + (("control share", "lift") if control is not None else ())
    for col in cols:
        table.add_column(col, justify="right" if col != "feature" else "left")
    for rec in result.common.to_dict(orient="records"):
        cells = [rec["name"], str(rec["count"]), f"{rec['share']:.0%}", f"{rec['mean_activation']:.3g}"]
        if control is not None:
            cells += [f"{rec['control_share']:.0%}", _lift_text(rec["lift"])]
        table.add_row(*cells)
    stderr().print(table)
    if control is not None and result.specific is not None:
        table = Table(title="features most specific to the transition (active in at least half the samples, largest lift over the control first)",
                      title_justify="left")
        for col in ("feature", "count", "share", "mean act.", "control share", "lift"):
            table.add_column(col, justify="right" if col != "feature" else "left")
        for rec in result.specific.to_dict(orient="records")[:10]:
            table.add_row(rec["name"], str(rec["count"]), f"{rec['share']:.0%}", f"{rec['mean_activation']:.3g}", f"{rec['control_share']:.0%}",
                          _lift_text(rec["lift"]))
        stderr().print(table)
        stderr().print("[dim]lift: share at the transition / share at the control's tokens; a feature of the bridge word has a lift near 1. "
                       "saetool check --criteria seed000 tests these against ordinary text and the control, corrected for the number tested[/dim]")


def _token_counts(tokens: Any, positions: Any) -> str:
    """The labeled tokens and how often each, most frequent first (at most 10)."""
    from rich.markup import escape

    counts: dict[str, int] = {}
    for t, p in zip(tokens, positions):
        if p is not None:
            counts[t] = counts.get(t, 0) + 1
    return ", ".join(f"{escape(repr(t))} x{n}" for t, n in sorted(counts.items(), key=lambda kv: -kv[1])[:10])


def _lift_text(lift: float) -> str:
    return "-" if math.isnan(lift) else ("inf" if math.isinf(lift) else f"{lift:.1f}")
