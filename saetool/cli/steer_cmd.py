"""``saetool steer`` and the ``saetool vector`` command group."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.cli.options import BACKEND, DEVICE, DTYPE, OUTPUT, OVERWRITE, TRUST_REMOTE_CODE
from saetool.console import is_quiet, log, stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the steer and vector APIs, the model and SAE loaders (torch), artifact
# helpers and rich tables load when the command runs.

MODEL = typer.Option("smollm2-135m", "--model", "-m", help="Embedded model name, local HF folder, or hub id (online).")
CHAT = typer.Option(True, "--chat/--no-chat", help="Wrap prompts in the model's chat template (assistant turn opened).")
SYSTEM = typer.Option(None, "--system", help="System message for the chat template (default: the template's own).")
SITE = typer.Option("hook_resid_post", "--site", help="Hook site used with --layer: hook_resid_pre|mid|post, hook_mlp_out.")
BATCH = typer.Option(16, "--batch-size", "-b", help="Prompts per forward pass / generate call.")


# -- steer -------------------------------------------------------------------------------------------
def steer(
    vector_arg: Optional[Path] = typer.Argument(None, metavar="[VECTOR]", help="Vector artifact, SAE, or .npy/.pt file (omit or '-' to read a manifest from stdin)."),
    vector: Optional[Path] = typer.Option(None, "--vector", "-V", help="Same as the VECTOR argument."),
    prompts: Path = typer.Option(..., "--prompts", "-p", help="Prompt file: .txt (one per line), .jsonl or .json ({prompt, split})."),
    alpha: Optional[float] = typer.Option(None, "--alpha", "-a", help="Strength (add: 4, ablate: 1; clamp: the value to clamp the feature to)."),
    layer: Optional[int] = typer.Option(None, "--layer", "-l", help="Layer to steer at (default: where the vector was made)."),
    site: str = SITE,
    intervention: str = typer.Option("add", "--intervention", "-i", help="add, ablate or clamp (or a plugin's)."),
    scale: str = typer.Option("unit", "--scale", help="How add scales the vector: unit (alpha·v/|v|), raw (alpha·v), relative (alpha·r·v/|v|, r = mean activation norm)."),
    positions: str = typer.Option("all", "--positions", help="Steer at all positions, or generated ones only."),
    sae: Optional[Path] = typer.Option(None, "--sae", help="SAE (artifact or SAE folder (SAELens, sparsify, Gemma/Llama Scope, dictionary_learning) or pretrained RELEASE/SAE_ID): its --feature's decoder direction, or what clamp edits."),
    feature: Optional[int] = typer.Option(None, "--feature", "-f", help="SAE feature index."),
    split: Optional[str] = typer.Option(None, "--split", help="Only prompts of this split (.jsonl files)."),
    max_prompts: Optional[int] = typer.Option(None, "--max-prompts", "-n", help="At most this many prompts."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", "-t", help="Tokens to generate per prompt."),
    sample: bool = typer.Option(False, "--sample/--greedy", help="Sample (with --seed) instead of greedy decoding."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling threshold."),
    seed: int = typer.Option(0, "--seed", help="Random seed for sampling (baseline and steered use the same seed)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also generate unsteered completions."),
    prompt_suffix: Optional[List[str]] = typer.Option(None, "--prompt-suffix", help="Prompt-suffix steering: also continue each prompt + this text unsteered, as condition 'prompted' (repeatable: prompted-1, prompted-2, ...)."),
    metrics: str = typer.Option("refusal,helpfulness,coherence,sentiment", "--metrics", help="Comma-separated metrics (see `saetool plugins`)."),
    show: int = typer.Option(10, "--show", help="Rows of the side-by-side table (0: none)."),
    chat: bool = CHAT,
    system: Optional[str] = SYSTEM,
    batch_size: int = BATCH,
    model: str = MODEL,
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Generate baseline and steered completions side by side (a `completions` artifact).

    Alpha scaling (--scale): `unit` adds alpha·v/|v|; `raw` adds alpha·v (for a
    difference of means, alpha 1 adds exactly the mean difference); `relative`
    adds alpha·r·v/|v| with r the mean activation norm at the hook.

    Example:

        saetool vector diff-means --positive harm.txt --negative benign.txt --layer 15 -o refusal.h5
        saetool steer refusal.h5 --alpha 4 --layer 15 --prompts examples/prompts/harm_test.txt
        saetool vector words --layer 15 | saetool steer --no-chat --alpha 8 --prompts openings.txt --prompt-suffix " (thinking positively)" --metrics sentiment

    With --prompt-suffix, prompting is compared with steering (seed 000's
    "(thinking positively)"): the suffixed prompts are continued unsteered as
    condition `prompted`, scored with the same metrics.
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.steer.api import SteerConfig, resolve_source, run_steer
    from saetool.steer.completions import KIND
    from saetool.steer.generation import GenerationSettings

    if vector_arg is not None and vector is not None:
        raise SaetoolError("give the vector once: as the VECTOR argument or with --vector")
    if sae is not None and (vector_arg is not None or vector is not None):
        raise SaetoolError("give either a steering vector or --sae, not both")
    config = SteerConfig(
        prompts=str(prompts),
        split=split,
        max_prompts=max_prompts,
        layer=layer,
        site=site,
        intervention=intervention,
        alpha=alpha,
        scale=scale,
        positions=positions,
        feature=feature,
        model=model,
        backend=backend,
        device=device,
        dtype=dtype,
        chat=chat,
        system=system,
        baseline=baseline,
        prompt_suffixes=list(prompt_suffix or []),
        metrics=[m.strip() for m in metrics.split(",") if m.strip()],
        generation=GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=sample, temperature=temperature, top_p=top_p, seed=seed),
    )
    config.validate()
    from saetool.steer.prompts import read_prompts

    read_prompts(prompts, split=split, max_prompts=max_prompts)  # an empty or missing prompt file fails before any loading
    source = resolve_source(vector_arg or vector, sae, feature, layer=layer, site=site, device=device)
    result = run_steer(config, source, output, overwrite=overwrite)
    show_table(result.completions, show)
    log(f"[green]wrote[/green] {result.path} ({result.completions.n} prompts, {result.hook}, alpha={result.alpha:g}, {result.seconds:.0f}s)")
    emit_manifest(result.path, KIND, n_prompts=result.completions.n, hook=result.hook, alpha=result.alpha)


def show_table(comp: Any, rows: int) -> None:
    """The side-by-side table (stderr) and per-condition metric means."""
    from rich.table import Table

    if is_quiet():
        return
    conds = list(comp.texts)
    if rows > 0:
        table = Table(show_lines=True, title="completions", title_justify="left")
        table.add_column("#", justify="right", style="dim")
        table.add_column("prompt", ratio=2, overflow="fold")
        suffixes = comp.settings.get("prompt_suffixes") or {}
        for cond in conds:  # a prompted condition continues prompt + its suffix: the header says which
            table.add_column(_escape(f"{cond} (prompt + {suffixes[cond]!r})") if cond in suffixes else cond, ratio=3, overflow="fold")
        refusal = {c: comp.metrics.get(c, {}).get("refusal") for c in conds}
        for i in range(min(rows, comp.n)):
            cells = []
            for c in conds:
                text = _clip(comp.texts[c][i], 240)
                if refusal[c] is not None and refusal[c][i] == 1:
                    text = "[bold red]\\[refusal][/bold red] " + _escape(text)
                else:
                    text = _escape(text)
                cells.append(text)
            table.add_row(str(i), _escape(_clip(comp.prompts[i], 120)), *cells)
        stderr().print(table)
    names = sorted({m for c in conds for m in comp.metrics.get(c, {})})
    if names:
        stderr().print(metrics_table(comp, conds, names))


def metrics_table(comp: Any, conds: list[str], names: list[str]) -> Any:
    """Per metric and condition: the rate with its Wilson 95% interval (0/1 metrics) or the mean
    with its t interval, over n prompts; each later condition against the first by a paired
    test on the same prompts (exact McNemar for 0/1 metrics, paired t otherwise)."""
    from rich.table import Table

    from saetool.steer.stats import mean_ci, paired_p, wilson_ci

    n = comp.n
    table = Table(title=f"metrics over {n} prompts: rate or mean [95% CI]; p: paired test against {conds[0]}, uncorrected", title_justify="left")
    table.add_column("metric")
    for c in conds:
        table.add_column(c, justify="right")
    for c in conds[1:]:
        table.add_column(f"p {c}", justify="right")
    for m in names:
        series = {c: list(comp.metrics.get(c, {}).get(m, [])) for c in conds}
        metric = _registered(m)
        bounds = getattr(metric, "bounds", (-math.inf, math.inf))
        # a rate metric (0/1 per completion) as sweep counts it; an unregistered one by its values
        binary = metric.kind == "rate" if metric is not None else all(v in (0, 1) for xs in series.values() for v in xs if not math.isnan(v))
        cells, pvals = [], []
        for c in conds:
            xs = [v for v in series[c] if not math.isnan(v)]
            if not xs:
                cells.append("-")
            elif binary:
                lo, hi = wilson_ci(int(sum(xs)), len(xs))
                cells.append(f"{sum(xs) / len(xs):.2f} [{lo:.2f}, {hi:.2f}]" + ("" if len(xs) == n else f" (n {len(xs)})"))
            else:
                mean, lo, hi = mean_ci(xs, bounds=bounds)
                interval = f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else ""
                cells.append(f"{mean:.3g}{interval}" + ("" if len(xs) == n else f" (n {len(xs)})"))
        for c in conds[1:]:
            a, b = series[conds[0]], series[c]
            p = paired_p(a, b, rate=binary) if len(a) == len(b) and a else math.nan
            pvals.append("-" if math.isnan(p) else f"{p:.2g}")
        better = {True: " (higher is better)", False: " (lower is better)"}.get(getattr(metric, "higher_is_better", None), "")  # None: unregistered or no direction
        table.add_row(m + better, *cells, *pvals)
    return table


def _registered(metric: str) -> Any:
    """The registered completion metric ``metric``, or None (a metric stored by a plugin not loaded now)."""
    from saetool.errors import SaetoolError
    from saetool.steer.metrics import get_metric

    try:
        return get_metric(metric)
    except SaetoolError:
        return None


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- vector -------------------------------------------------------------------------------------------
vector_app = typer.Typer(no_args_is_help=True, help="""Make steering vectors (`vector` artifacts) that `saetool steer` reads; export them to llama.cpp, repeng, .npy or .pt and import them back.

Example:

    saetool vector diff-means --positive examples/prompts/harm_train.txt --negative examples/prompts/benign_train.txt --layer 15 -o refusal-L15.h5
""")


def _finish_vector(sv: Any, output: Optional[Path], default: str, overwrite: bool, parents: list, extra: dict) -> None:
    from saetool.artifacts.manifest import emit_manifest
    from saetool.artifacts.provenance import build_provenance
    from saetool.artifacts.store import check_output_path
    from saetool.steer.vectors import KIND, write_vector

    out = check_output_path(output or Path(default), overwrite=overwrite, inputs=parents)
    prov = build_provenance(model=sv.model, hooks=[sv.hook], parents=parents, vector={"method": sv.method, **extra})
    write_vector(out, sv, provenance=prov, overwrite=overwrite)
    log(f"[green]wrote[/green] {out}: {sv.describe()}")
    emit_manifest(out, KIND, hook=sv.hook, method=sv.method, d=sv.d, model=sv.model)


@vector_app.command("from-sae")
def from_sae(
    sae: Optional[Path] = typer.Argument(None, help="SAE artifact or SAE folder (SAELens, sparsify, Gemma/Llama Scope, dictionary_learning) or pretrained RELEASE/SAE_ID (omit or '-' to read a manifest from stdin)."),
    feature: int = typer.Option(..., "--feature", "-f", help="Feature index: its decoder row W_dec[feature] is the vector."),
    device: str = DEVICE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """An SAE feature's decoder direction as a steering vector.

    Example:

        saetool vector from-sae sae.h5 --feature 123 -o f123.h5
    """
    from saetool.artifacts.manifest import resolve_input
    from saetool.artifacts.store import check_output_path
    from saetool.sae.io import load_sae
    from saetool.steer.vectors import vector_from_sae

    path = resolve_input(sae, what="SAE")
    default = Path(f"vector-{path.stem}-f{feature}.h5")
    check_output_path(output or default, overwrite=overwrite)
    sv = vector_from_sae(load_sae(path, device), feature, source=str(path))
    _finish_vector(sv, output, str(default), overwrite, [path] if path.is_file() else [], {"sae": str(path), "feature": feature})


def _vector_from_prompts(
    positive: list[str],
    negative: list[str],
    *,
    layer: int,
    site: str,
    positions: str,
    chat: bool,
    system: Optional[str],
    model: str,
    backend: str,
    device: str,
    dtype: str,
    batch_size: int,
    method: str,
    details: dict,
):
    from saetool.models.hooks import hook_name, parse_hooks
    from saetool.models.registry import load_model
    from saetool.steer.vectors import diff_means_vectors, parse_positions

    pos_spec = parse_positions(positions)
    hooked = load_model(model, backend=backend, device=device, dtype=dtype)
    (point,) = parse_hooks([hook_name(layer, site)], hooked.n_layers, hooked.supported_sites)
    return diff_means_vectors(
        hooked, positive, negative, [point.name], positions=pos_spec, chat=chat, system=system, batch_size=batch_size, method=method, details=details
    )[point.name]


@vector_app.command("diff-means")
def diff_means(
    positive: Path = typer.Option(..., "--positive", help="Prompt file of the behaviour to steer towards (e.g. harm_train.txt)."),
    negative: Path = typer.Option(..., "--negative", help="Prompt file to contrast with (e.g. benign_train.txt)."),
    layer: int = typer.Option(..., "--layer", "-l", help="Layer whose activations are averaged."),
    site: str = SITE,
    positions: str = typer.Option("last", "--positions", help="Token positions averaged: last, all, or negative indices like -1,-2,-3."),
    split: Optional[str] = typer.Option(None, "--split", help="Only prompts of this split (.jsonl files)."),
    max_prompts: Optional[int] = typer.Option(None, "--max-prompts", "-n", help="At most this many prompts from each file."),
    chat: bool = CHAT,
    system: Optional[str] = SYSTEM,
    batch_size: int = BATCH,
    model: str = MODEL,
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Difference of mean activations between two prompt sets at a layer.

    Records the mean activation norm there, so `steer --scale relative` can use it.

    Example:

        saetool vector diff-means --positive examples/prompts/harm_train.txt --negative examples/prompts/benign_train.txt --layer 15 -o refusal-L15.h5
    """
    from saetool.artifacts.store import check_output_path
    from saetool.steer.prompts import read_prompts

    pos = [p.text for p in read_prompts(positive, split=split, max_prompts=max_prompts, what="--positive prompt file")]
    neg = [p.text for p in read_prompts(negative, split=split, max_prompts=max_prompts, what="--negative prompt file")]
    default = f"vector-{positive.stem}-vs-{negative.stem}-L{layer}.h5"
    check_output_path(output or Path(default), overwrite=overwrite)
    sv = _vector_from_prompts(
        pos, neg, layer=layer, site=site, positions=positions, chat=chat, system=system, model=model, backend=backend,
        device=device, dtype=dtype, batch_size=batch_size, method="diff-means",
        details={"positive": str(positive.resolve()), "negative": str(negative.resolve()), "split": split},
    )
    _finish_vector(sv, output, default, overwrite, [], {"positive": str(positive), "negative": str(negative)})


@vector_app.command("words")
def words(
    positive: Optional[str] = typer.Option(None, "--positive", help="Words file (one per line) or inline list happy,joy (default: seed 000's five positive words)."),
    negative: Optional[str] = typer.Option(None, "--negative", help="Words file or inline list (default: seed 000's five negative words)."),
    layer: int = typer.Option(..., "--layer", "-l", help="Layer whose activations are averaged."),
    template: str = typer.Option("Today I feel {word}", "--template", help="Text each word is put into; the shared context cancels in the difference."),
    positions: str = typer.Option("last", "--positions", help="Token positions averaged: last (the word's last token), all, or -1,-2."),
    site: str = SITE,
    batch_size: int = BATCH,
    model: str = MODEL,
    backend: str = BACKEND,
    device: str = DEVICE,
    dtype: str = DTYPE,
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Difference of mean activations between positive and negative words (seed 000's emotion vector).

    Example:

        saetool vector words --layer 15 -o emotion-L15.h5
        saetool steer emotion-L15.h5 --no-chat --alpha 8 --prompts examples/prompts/emotion.txt --metrics sentiment,coherence
    """
    from saetool.artifacts.store import check_output_path
    from saetool.steer.prompts import read_words
    from saetool.steer.vectors import DEFAULT_NEGATIVE_WORDS, DEFAULT_POSITIVE_WORDS

    if "{word}" not in template:
        raise SaetoolError(f"--template {template!r} has no {{word}} placeholder")
    pos = read_words(positive, what="--positive word list") if positive else list(DEFAULT_POSITIVE_WORDS)
    neg = read_words(negative, what="--negative word list") if negative else list(DEFAULT_NEGATIVE_WORDS)
    default = f"vector-words-L{layer}.h5"
    check_output_path(output or Path(default), overwrite=overwrite)
    sv = _vector_from_prompts(
        [template.format(word=w) for w in pos], [template.format(word=w) for w in neg], layer=layer, site=site,
        positions=positions, chat=False, system=None, model=model, backend=backend, device=device, dtype=dtype,
        batch_size=batch_size, method="words", details={"positive_words": pos, "negative_words": neg, "template": template},
    )
    _finish_vector(sv, output, default, overwrite, [], {"positive_words": pos, "negative_words": neg, "template": template})


@vector_app.command("random")
def random_(
    like: Path = typer.Option(..., "--like", help="A vector artifact: the random direction gets its norm, hook and model."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the direction."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """A random direction of another vector's norm at its hook: the control for a steering result.

    Steer with both on the same prompts and settings; an effect the random
    direction shows too is the push's size, not the direction's meaning.

    Example:

        saetool vector random --like f123.h5 --seed 0 -o random-f123.h5
    """
    from saetool.artifacts.store import check_output_path
    from saetool.steer.vectors import random_like, read_vector

    if not like.exists():
        raise SaetoolError(f"--like {like} does not exist", hint="pass a vector artifact (saetool vector ...)")
    default = f"vector-random-{like.stem}-s{seed}.h5"
    check_output_path(output or Path(default), overwrite=overwrite, inputs=[like])
    sv = random_like(read_vector(like), seed=seed, source=str(like.resolve()))
    _finish_vector(sv, output, default, overwrite, [like], {"like": str(like.resolve()), "seed": seed})


@vector_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A vector file: .npy, .pt/.pth, .safetensors (one tensor), text (numbers), or a control-vector .gguf (llama.cpp, repeng, saetool vector export)."),
    layer: Optional[int] = typer.Option(None, "--layer", "-l", help="Layer it belongs to (with --site); for a .gguf, the direction.L to take (default: its only one)."),
    hook: Optional[str] = typer.Option(None, "--hook", help="Full hook name instead of --layer/--site, e.g. blocks.15.hook_resid_post."),
    site: str = SITE,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model it was made for (recorded, checked against at steer time)."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """Wrap a vector from a file as a `vector` artifact.

    A control-vector GGUF's direction.L is the output of layer L (blocks.L.hook_resid_post),
    unless saetool wrote the file and recorded the hook.

    Example:

        saetool vector import direction.npy --layer 15 --model smollm2-135m -o direction.h5
        saetool vector import happy.gguf --layer 15 -o happy-L15.h5
    """
    from saetool.artifacts.store import check_output_path
    from saetool.models.hooks import HookPoint, hook_name
    from saetool.steer.vectors import import_vector

    if layer is not None and layer < 0:
        raise SaetoolError(f"layer {layer} is out of range", hint="layers count from 0")
    default = f"vector-{file.stem}.h5"
    if file.suffix.lower() == ".gguf":
        from saetool.steer.vector_formats import import_control_vector

        if hook is not None:
            raise SaetoolError("a .gguf control vector says where each direction belongs", hint="pick a layer with --layer L instead of --hook")
        check_output_path(output or Path(default), overwrite=overwrite)
        sv = import_control_vector(file, layer=layer, model=model)
    else:
        if hook is None and layer is None:
            raise SaetoolError("say where the vector belongs", hint="pass --layer N (or --hook NAME)")
        name = HookPoint.parse(hook).name if hook is not None else hook_name(layer, site)
        check_output_path(output or Path(default), overwrite=overwrite)
        sv = import_vector(file, name, model=model)
    _finish_vector(sv, output, default, overwrite, [], {"source": str(file.resolve())})


@vector_app.command("export")
def export_(
    vectors: List[Path] = typer.Argument(..., help="`vector` artifacts; several (one per layer) only for gguf/repeng."),
    fmt: str = typer.Option("gguf", "--format", "-f", help="gguf: a llama.cpp control vector (--control-vector); repeng: the same GGUF with repeng's model_hint (ControlVector.import_gguf); npy; pt."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (default: next to the first vector, NAME.gguf/.npy/.pt)."),
    model_hint: Optional[str] = typer.Option(None, "--model-hint", help="controlvector.model_hint to write (default: the model id for gguf, its model_type for repeng)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Write steering vectors for other tools: llama.cpp control vectors, repeng, .npy or .pt.

    A vector at blocks.L.hook_resid_post becomes direction.L (llama.cpp adds it to layer L's
    output; layer 0 is never steered). `vector import` reads every format back.

    Example:

        saetool vector export refusal-L15.h5 --format gguf -o refusal.gguf
        llama-cli -m model.gguf --control-vector-scaled refusal.gguf 4
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.artifacts.store import check_output_path
    from saetool.steer.vector_formats import FORMATS, export_vectors
    from saetool.steer.vectors import read_vector

    if fmt not in FORMATS:
        raise SaetoolError(f"unknown vector format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS))
    out = output or vectors[0].with_name(vectors[0].stem + FORMATS[fmt])
    check_output_path(out, overwrite=overwrite, inputs=vectors)
    svs = [read_vector(v) for v in vectors]
    summary = export_vectors(svs, out, fmt, model_hint=model_hint)
    log(f"[green]wrote[/green] {out}: {summary}")
    emit_manifest(out, f"vector-{fmt}")
