"""``saetool extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from saetool.cli.options import OUTPUT, OVERWRITE, RESUME, TRUST_REMOTE_CODE


def extract(
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Embedded model name, local HF folder, or hub id (online)."),
    corpus: str = typer.Option("bbc-news", "--corpus", "-c", help="Corpus: bbc-news[:CATEGORY], kjv, a file/folder path, hub:NAME, or a plugin's source."),
    hooks: Optional[str] = typer.Option(None, "--hooks", help="Comma-separated hook names, e.g. blocks.15.hook_resid_post."),
    layers: Optional[str] = typer.Option(None, "--layers", "-l", help="Layers for --site: 15, 3,5, 2-4 or all (default: the middle layer)."),
    site: str = typer.Option("hook_resid_post", "--site", help="Hook site used with --layers: hook_resid_pre|mid|post, hook_mlp_out, attn.hook_z."),
    num_tokens: int = typer.Option(8192, "--num-tokens", "-n", help="Activation rows to store."),
    context_size: int = typer.Option(128, "--context-size", help="Tokens per window (including BOS)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Windows per forward pass."),
    dtype: str = typer.Option("float32", "--dtype", help="Model and storage dtype: float32, float16, bfloat16."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps (under torchrun, cuda means each rank's own GPU)."),
    device_map: Optional[str] = typer.Option(None, "--device-map", help="Spread a model too large for one device over all of them: auto (needs accelerate); --device is then ignored."),
    backend: str = typer.Option("transformers", "--backend", help="Model backend: transformers or transformer-lens (or a plugin's)."),
    prepend_bos: bool = typer.Option(True, "--bos/--no-bos", help="Start every window with the BOS token."),
    exclude_special: bool = typer.Option(True, "--exclude-special/--include-special", help="Leave BOS and other special tokens out of what is stored (their norms are huge)."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the text in .jsonl/.parquet corpora."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Text encoding of local .txt files (default UTF-8)."),
    per_line: bool = typer.Option(False, "--per-line", help="One window per line (a prompt file: blank and # comment lines skipped), padded to --context-size instead of packed."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Run a model over a corpus and store activations at hooks (an `activations` artifact).

    Example:

        saetool extract --model smollm2-135m --layers 15 --num-tokens 4096 -o acts.h5
        saetool extract --corpus files:harm_train.txt --per-line --layers 6,12 --context-size 64 -o harm.h5

    On several processes or machines: `torchrun --nproc-per-node 4 -m saetool extract ...`
    (see docs/scaling.md).
    """
    from saetool.artifacts.manifest import emit_manifest
    from saetool.console import log
    from saetool.extract.api import KIND, ExtractConfig, extract_activations

    config = ExtractConfig(
        model=model,
        backend=backend,
        corpus=corpus,
        hooks=hooks.split(",") if hooks else None,
        layers=layers,
        site=site,
        num_tokens=num_tokens,
        context_size=context_size,
        batch_size=batch_size,
        dtype=dtype,
        device=device,
        prepend_bos=prepend_bos,
        exclude_special=exclude_special,
        text_column=text_column,
        encoding=encoding,
        device_map=device_map,
        per_line=per_line,
    )
    path = extract_activations(config, output, overwrite=overwrite, resume=resume)
    from saetool.distributed import rank_info

    if not rank_info().is_main:  # under torchrun only rank 0 reports (it wrote OUTPUT)
        return
    from saetool.artifacts.activations import ActivationsFile

    with ActivationsFile(path) as acts:
        log(f"[green]wrote[/green] {path}: {acts.n_tokens} tokens x {len(acts.hooks)} hook(s) ({', '.join(acts.hooks)})")
        emit_manifest(path, KIND, hooks=acts.hooks, n_tokens=acts.n_tokens, model=acts.model)
