"""The Python API behind ``saetool extract``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import ArtifactWriter, check_output_path
from saetool.console import log, warn
from saetool.corpus.packing import first_window
from saetool.corpus.resolve import describe_corpus, iter_documents, resolve_corpus
from saetool.distributed import rank_info
from saetool.errors import SaetoolError
from saetool.extract.config import KIND, RESUME_KEYS, ExtractConfig, default_output, extract_settings
from saetool.extract.core import check_context_size, create_layout, device_map_kw, make_windows, reopen, resolve_hooks, write_batches
from saetool.extract.sharded import extract_distributed
from saetool.models import registry  # the module, so tests can stub registry.load_model

if TYPE_CHECKING:
    from saetool.models.base import HookedModel

__all__ = ["KIND", "RESUME_KEYS", "ExtractConfig", "default_output", "extract_activations", "extract_settings"]


def extract_activations(
    config: ExtractConfig,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    model: "HookedModel | None" = None,
) -> Path:
    """Run ``config.model`` over ``config.corpus`` and write an activations artifact.

    Returns the output path. Memory stays flat in ``num_tokens``: windows are
    tokenised, run and written one batch at a time. With ``resume`` a partial
    file left by a killed run is continued, and the result equals an
    uninterrupted run. Pass an already loaded ``model`` to skip loading.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank extracts a contiguous
    share of the windows into ``OUTPUT.shards/`` and rank 0 writes ``OUTPUT``
    presenting them as one file (see :mod:`saetool.extract.sharded`).
    """
    if rank_info().distributed:
        return extract_distributed(config, output, overwrite=overwrite, resume=resume, progress=progress, model=model)
    config.validate()
    out = check_output_path(output or default_output(config), overwrite=overwrite, resume=resume, inputs=[config.corpus, config.model])
    resolve_corpus(config.corpus)  # an unknown corpus fails before the model loads
    first_doc = next(iter(iter_documents(config.corpus, text_column=config.text_column, encoding=config.encoding)), None)
    if first_doc is None:
        raise SaetoolError(f"corpus {config.corpus!r} has no documents", hint="check the path or corpus name")

    if model is None:
        model = registry.load_model(config.model, backend=config.backend, device=config.device, dtype=config.dtype, **device_map_kw(config))
    hooks = resolve_hooks(config, model)
    check_context_size(config, model)
    warn_slow_bfloat16(config, model)
    windows = make_windows(config, model.tokenizer)
    _, windows = first_window(windows)  # an empty or too-short corpus fails before any file is made

    settings = extract_settings(config, hooks)
    provenance = build_provenance(
        model=model.model_id,
        backend=model.backend_name,
        hooks=hooks,
        corpus=describe_corpus(config.corpus),
        extract=settings,
    )
    with ArtifactWriter(out, KIND, provenance, overwrite=overwrite, resume=resume, keep_partial_on_error=True) as writer:
        if writer.resumed:
            done_seq, done_tok = reopen(writer, settings)
            log(f"resuming {writer.partial}: {done_tok} tokens in {done_seq} windows already stored")
            windows = itertools.islice(windows, done_seq, None)
        else:
            create_layout(writer, settings, hooks, model)
            done_seq, done_tok = 0, 0
        write_batches(writer, model, hooks, windows, config, done_seq, done_tok, progress)
    return out


def warn_slow_bfloat16(config: ExtractConfig, model: "HookedModel") -> None:
    """bfloat16 compute on a CPU without bfloat16 matrix instructions is several times slower than float32: say so once."""
    if config.dtype != "bfloat16" or torch.device(model.device).type != "cpu":
        return
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return
    if not supported:
        warn("this CPU has no bfloat16 matrix instructions: --dtype bfloat16 runs several times slower than float32 here "
             "(docs/benchmarks.md); for half the disk use --dtype float32 --storage-dtype bfloat16")
