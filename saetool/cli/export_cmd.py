"""``saetool export``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from saetool.cli.options import OVERWRITE

FORMATS = ("saelens", "samples")


def export(
    sae: Optional[Path] = typer.Argument(None, help="SAE: an `sae` artifact, or an SAELens/sparsify folder (omit or '-' to read a manifest from stdin)."),
    fmt: str = typer.Option("saelens", "--format", "-f", help="saelens: an SAELens folder (cfg.json + sae_weights.safetensors); samples: the SAE's stored samples as a folder."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder (default: next to the SAE, NAME-FORMAT)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Model id written into the SAELens metadata (default: the SAE's model)."),
    device: str = typer.Option("cpu", "--device", help="Device to load the SAE on while converting."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Write an SAE in another library's format (SAELens), or its stored samples as a folder.

    Example:

        saetool export sae.h5 --format saelens -o my-sae/
    """
    from saetool.artifacts.manifest import emit_manifest, resolve_input
    from saetool.console import log
    from saetool.errors import SaetoolError
    from saetool.sae.formats import atomic_output_dir, check_output_dir

    if fmt not in FORMATS:
        raise SaetoolError(f"unknown export format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS))
    path = resolve_input(sae, what="SAE")
    out = output if output is not None else _default_output(path, fmt)
    check_output_dir(out, overwrite=overwrite, inputs=[path])  # fail before loading anything

    if fmt == "saelens":
        from saetool.sae.formats.saelens import export_saelens
        from saetool.sae.io import load_sae

        model = load_sae(path, device)
        export_saelens(model, out, model_name=model_name, metadata=_artifact_metadata(path), overwrite=overwrite)
        c = model.cfg
        log(f"[green]wrote[/green] {out}: SAELens {c.activation} SAE, d_in={c.d_in}, d_sae={c.d_sae}, hook {c.hook}")
        emit_manifest(out, "saelens")
        return

    export_samples_dir = _samples_exporter()
    if not _is_sae_artifact(path):
        raise SaetoolError(f"--format samples needs a saetool 'sae' artifact, and {path} is not one", hint="pass the .h5 file `saetool train` wrote")
    with atomic_output_dir(out, overwrite=overwrite) as work:
        export_samples_dir(path, work)
    log(f"[green]wrote[/green] {out}: samples of {path}")
    emit_manifest(out, "samples")


def _default_output(path: Path, fmt: str) -> Path:
    stem = path.stem if path.is_file() else path.name
    return path.parent / f"{stem}-{fmt}"


def _samples_exporter() -> Any:
    from saetool.errors import SaetoolError

    try:
        from saetool.train.samples import export_samples_dir
    except ImportError as exc:
        raise SaetoolError(
            f"--format samples is not available in this saetool ({exc})",
            hint="use --format saelens, or update saetool",
        ) from None
    return export_samples_dir


def _is_sae_artifact(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        from saetool.artifacts.store import read_header

        return read_header(path)["saetool_kind"] == "sae"
    except Exception:
        return False


def _artifact_metadata(path: Path) -> dict[str, Any]:
    """SAELens metadata taken from a saetool artifact's training settings, when known."""
    if not _is_sae_artifact(path):
        return {}
    from saetool.sae.io import read_sae_artifact

    with read_sae_artifact(path) as art:
        training = art.training
    meta: dict[str, Any] = {}
    for key in ("context_size", "prepend_bos", "exclude_special_tokens"):
        if training.get(key) is not None:
            meta[key] = training[key]
    if training.get("corpus") is not None:
        meta["dataset_path"] = str(training["corpus"])
    return meta
