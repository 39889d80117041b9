"""``saetool export``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from saetool.cli.options import OVERWRITE
from saetool.console import log
from saetool.errors import SaetoolError
from saetool.plugins import host

# Deferred imports: loaded by `saetool --help`; the SAE formats (torch) and artifact helpers load when the command runs.


def export(
    sae: Optional[Path] = typer.Argument(None, help="SAE: an `sae` artifact, a folder in a format saetool reads (SAELens, sparsify, Gemma Scope, Llama Scope, dictionary_learning) or a pretrained RELEASE/SAE_ID; for neuronpedia a `features` artifact; omit or '-' to read a manifest from stdin."),
    fmt: str = typer.Option("saelens", "--format", "-f", help="saelens: an SAELens folder (cfg.json + sae_weights.safetensors); sparsify: a sparsify run folder (topk); dictionary-learning: ae.pt + config.json; neuronpedia: a `features` artifact as Neuronpedia dashboard batches; samples: the SAE's stored samples as a folder; or a plugin's (saetool plugins lists them)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder (default: next to the SAE, NAME-FORMAT)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Model id written into the output (SAELens metadata, sparsify config, Neuronpedia model_id; default: the SAE's model)."),
    device: str = typer.Option("cpu", "--device", help="Device to load the SAE on while converting."),
    overwrite: bool = OVERWRITE,
    set_name: Optional[str] = typer.Option(None, "--set-name", help="neuronpedia: the sae_set (source set) name (default: res-saetool, mlp-saetool or att-saetool)."),
) -> None:
    """Write an SAE in another library's format (SAELens, sparsify, dictionary_learning), its features as Neuronpedia dashboards, or its stored samples as a folder.

    Example:

        saetool export sae.h5 --format saelens -o my-sae/
        saetool export features.h5 --format neuronpedia --model-name gpt2-small -o np-batches/
    """
    from saetool.artifacts.manifest import emit_manifest, resolve_input
    from saetool.sae.format_api import ExportSettings
    from saetool.sae.formats import atomic_output_dir, check_output_dir

    exporters = host().collect("exporters")
    if fmt not in exporters:
        raise SaetoolError(f"unknown export format {fmt!r}", hint="choose one of: " + ", ".join(sorted(exporters)))
    exporter = exporters[fmt].obj
    path = resolve_input(sae, what="SAE")
    out = output if output is not None else _default_output(path, fmt)
    check_output_dir(out, overwrite=overwrite, inputs=[path])  # fail before loading anything
    exporter.check(path)
    with atomic_output_dir(out, overwrite=overwrite) as work:
        summary = exporter.export(path, work, ExportSettings(device=device, model_name=model_name, set_name=set_name))
    log(f"[green]wrote[/green] {out}: {summary}")
    emit_manifest(out, fmt)


def _default_output(path: Path, fmt: str) -> Path:
    stem = path.stem if path.is_file() else path.name
    return path.parent / f"{stem}-{fmt}"
