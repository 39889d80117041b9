"""The Python API behind ``saetool extract``."""

from __future__ import annotations

import codecs
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from saetool.console import log, warn
from saetool.errors import ConfigError, SaetoolError

if TYPE_CHECKING:
    import numpy as np

    from saetool.artifacts.store import ArtifactWriter
    from saetool.models.base import HookedModel

KIND = "activations"

#: Settings that must match for ``--resume`` to continue a partial file.
RESUME_KEYS = (
    "model", "backend", "corpus", "hooks", "context_size", "batch_size", "dtype",
    "prepend_bos", "exclude_special", "text_column", "encoding", "per_line",
)


@dataclass
class ExtractConfig:
    """What to extract. ``hooks`` wins over ``layers`` + ``site``; with neither,
    the middle layer's residual stream is used."""

    model: str = "smollm2-135m"
    """Embedded model name, local HF folder, or hub id (online)."""
    backend: str = "transformers"
    """Model backend: transformers or transformer-lens (or a plugin's)."""
    corpus: str = "bbc-news"
    """Corpus: bbc-news[:CATEGORY], kjv, a file/folder path, hub:NAME, or a plugin's source."""
    hooks: list[str] | None = None
    """Comma-separated hook names, e.g. blocks.15.hook_resid_post."""
    layers: str | None = None
    """Layers for `site`: 15, 3,5, 2-4 or all (default: the middle layer)."""
    site: str = "hook_resid_post"
    """Hook site used with `layers`: hook_resid_pre|mid|post, hook_mlp_out, attn.hook_z."""
    num_tokens: int = 8192
    """Activation rows to store."""
    context_size: int = 128
    """Tokens per window (including BOS)."""
    batch_size: int = 8
    """Windows per forward pass."""
    dtype: str = "float32"
    """Model and storage dtype: float32, float16, bfloat16."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or mps (under torchrun, cuda means each rank's own GPU)."""
    prepend_bos: bool = True
    """Start every window with the BOS token."""
    exclude_special: bool = True
    """Leave BOS and other special tokens out of what is stored (their norms are huge)."""
    text_column: str = "text"
    """Column holding the text in .jsonl/.parquet corpora."""
    encoding: str | None = None
    """Text encoding of local .txt files (default UTF-8)."""
    device_map: str | None = None
    """Spread a model too large for one device over all of them: auto (needs accelerate); `device` is then ignored."""
    per_line: bool = False
    """One window per line (a prompt file: blank and # comment lines skipped), padded to `context_size` instead of packed."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings stored with the run (no built-in reads them)."""

    def validate(self) -> None:
        if self.num_tokens <= 0:
            raise ConfigError(f"`num_tokens` must be positive (got {self.num_tokens})")
        if self.context_size < 2:
            raise ConfigError(f"`context_size` must be at least 2 (got {self.context_size})")
        if self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be at least 1 (got {self.batch_size})")
        if self.per_line and not self.exclude_special:
            raise ConfigError("`per_line` pads each line with a special token, so it needs `exclude_special`", hint="drop --include-special")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"unknown `dtype` {self.dtype!r}", hint="choose float32, float16 or bfloat16")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"unknown `encoding` {self.encoding!r}", hint="name a Python codec such as utf-8, latin-1 or cp1252") from None


def default_output(config: ExtractConfig) -> Path:
    slug = Path(config.model).name.replace("/", "-") or "model"
    return Path(f"activations-{slug}.h5")


def make_windows(config: ExtractConfig, tokenizer: Any) -> Iterator["np.ndarray"]:
    """The corpus as windows: packed (default) or one per line (``per_line``)."""
    from saetool.corpus.packing import line_windows, pack_windows, prompt_lines
    from saetool.corpus.resolve import iter_documents

    docs = iter_documents(config.corpus, text_column=config.text_column, encoding=config.encoding)
    if config.per_line:
        return line_windows(prompt_lines(docs), tokenizer, config.context_size, prepend_bos=config.prepend_bos, corpus_name=config.corpus)
    return pack_windows(docs, tokenizer, config.context_size, prepend_bos=config.prepend_bos, corpus_name=config.corpus)


def resolve_hooks(config: ExtractConfig, model: "HookedModel") -> list[str]:
    from saetool.models.hooks import hooks_from_layers, parse_hooks

    if config.hooks:
        names = [h for h in config.hooks if h.strip()]
    elif config.layers:
        names = hooks_from_layers(config.layers, model.n_layers, config.site)
    else:
        names = hooks_from_layers(str(model.n_layers // 2), model.n_layers, config.site)
    return [p.name for p in parse_hooks(names, model.n_layers, model.supported_sites)]


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
    from saetool.distributed import rank_info

    if rank_info().distributed:
        from saetool.extract.sharded import extract_distributed

        return extract_distributed(config, output, overwrite=overwrite, resume=resume, progress=progress, model=model)
    from saetool.artifacts.provenance import build_provenance
    from saetool.artifacts.store import ArtifactWriter, check_output_path
    from saetool.corpus.packing import first_window
    from saetool.corpus.resolve import describe_corpus, iter_documents, resolve_corpus
    from saetool.models.registry import load_model

    config.validate()
    out = check_output_path(output or default_output(config), overwrite=overwrite, resume=resume, inputs=[config.corpus, config.model])
    resolve_corpus(config.corpus)  # an unknown corpus fails before the model loads
    first_doc = next(iter(iter_documents(config.corpus, text_column=config.text_column, encoding=config.encoding)), None)
    if first_doc is None:
        raise SaetoolError(f"corpus {config.corpus!r} has no documents", hint="check the path or corpus name")

    if model is None:
        model = load_model(config.model, backend=config.backend, device=config.device, dtype=config.dtype, **_device_map_kw(config))
    hooks = resolve_hooks(config, model)
    check_context_size(config, model)
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
            done_seq, done_tok = _reopen(writer, settings)
            log(f"resuming {writer.partial}: {done_tok} tokens in {done_seq} windows already stored")
            windows = itertools.islice(windows, done_seq, None)
        else:
            _create_layout(writer, settings, hooks, model)
            done_seq, done_tok = 0, 0
        _run(writer, model, hooks, windows, config, done_seq, done_tok, progress)
    return out


def check_context_size(config: ExtractConfig, model: "HookedModel") -> None:
    """Windows longer than the model's positions fail before any file is made."""
    model.check_positions(config.context_size, f"--context-size {config.context_size}", f"use --context-size {model.max_positions} or less")


def extract_settings(config: ExtractConfig, hooks: list[str]) -> dict[str, Any]:
    """The settings recorded in the file (``device_map`` only when one was used)."""
    settings = {**asdict(config), "hooks": hooks}
    settings.pop("extra", None)
    if settings.get("device_map") is None:
        settings.pop("device_map", None)
    return settings


def _device_map_kw(config: ExtractConfig) -> dict[str, Any]:
    return {"device_map": config.device_map} if config.device_map else {}


def _create_layout(writer: "ArtifactWriter", settings: dict[str, Any], hooks: list[str], model: "HookedModel") -> None:
    from saetool.artifacts.arrays import create_rows_dataset

    fh = writer.file
    assert fh is not None
    tok = model.tokenizer
    fh.attrs["hooks"] = json.dumps(hooks)
    fh.attrs["config"] = json.dumps(settings, sort_keys=True)
    fh.attrs["context_size"] = settings["context_size"]
    fh.attrs["n_tokens"] = 0
    fh.attrs["n_sequences"] = 0
    fh.attrs["model"] = model.model_id
    fh.attrs["backend"] = model.backend_name
    fh.attrs["dtype"] = settings["dtype"]
    fh.attrs["bos_token_id"] = -1 if tok.bos_token_id is None else int(tok.bos_token_id)
    fh.attrs["special_token_ids"] = json.dumps(sorted(int(i) for i in tok.all_special_ids))
    acts = fh.create_group("activations")
    norms = fh.create_group("norms")
    for hook in hooks:
        create_rows_dataset(acts, hook, model.hook_dim(hook), settings["dtype"])
        create_rows_dataset(norms, hook, None, "float32")
    tokens = fh.create_group("tokens")
    create_rows_dataset(tokens, "token_ids", None, "int32")
    create_rows_dataset(tokens, "seq_index", None, "int64")
    create_rows_dataset(tokens, "position", None, "int32")
    seqs = fh.create_group("sequences")
    create_rows_dataset(seqs, "token_ids", settings["context_size"], "int32", chunk_rows=64)


def _reopen(writer: "ArtifactWriter", settings: dict[str, Any]) -> tuple[int, int]:
    """Check a partial file was made with the same settings; drop rows past its last commit."""
    fh = writer.file
    assert fh is not None
    before = json.loads(fh.attrs.get("config", "{}"))
    changed = [k for k in RESUME_KEYS if before.get(k) != settings.get(k)]
    if changed:
        raise SaetoolError(
            f"cannot resume {writer.partial}: it was made with different {', '.join(changed)}",
            hint="rerun with the original settings, or without --resume to start afresh",
        )
    done_seq = int(fh.attrs["n_sequences"])
    done_tok = int(fh.attrs["n_tokens"])
    for name in ("tokens/token_ids", "tokens/seq_index", "tokens/position"):
        fh[name].resize(done_tok, axis=0)
    for hook in settings["hooks"]:
        fh[f"activations/{hook}"].resize(done_tok, axis=0)
        if f"norms/{hook}" in fh:
            fh[f"norms/{hook}"].resize(done_tok, axis=0)
    fh["sequences/token_ids"].resize(done_seq, axis=0)
    fh.attrs["config"] = json.dumps(settings, sort_keys=True)
    return done_seq, done_tok


def _batches(windows: Iterator["np.ndarray"], batch_size: int) -> Iterator["np.ndarray"]:
    import numpy as np

    while True:
        chunk = list(itertools.islice(windows, batch_size))
        if not chunk:
            return
        yield np.stack(chunk)


def _run(
    writer: "ArtifactWriter",
    model: "HookedModel",
    hooks: list[str],
    windows: Iterator["np.ndarray"],
    config: ExtractConfig,
    done_seq: int,
    done_tok: int,
    show_progress: bool,
    seq_offset: int = 0,
) -> None:
    import numpy as np
    import torch

    from saetool.artifacts.arrays import append_rows, to_storage
    from saetool.artifacts.norms import row_norms
    from saetool.progress import token_progress

    fh = writer.file
    assert fh is not None
    special = np.array(json.loads(fh.attrs["special_token_ids"]), dtype=np.int64)
    ctx = config.context_size
    with token_progress("extract", total=config.num_tokens, completed=done_tok, enabled=show_progress) as advance:
        for batch in _batches(windows, config.batch_size):
            remaining = config.num_tokens - done_tok
            if remaining <= 0:
                break
            keep = ~np.isin(batch, special) if config.exclude_special else np.ones(batch.shape, dtype=bool)
            flat = np.flatnonzero(keep.reshape(-1))[:remaining]
            if flat.size == 0:
                continue
            ids = torch.from_numpy(batch.astype(np.int64)).to(model.device)
            with torch.inference_mode():
                acts = model.run_with_cache(ids, hooks)
            index = torch.from_numpy(flat)
            for hook in hooks:
                index = index.to(acts[hook].device)  # with --device-map, hooks may sit on different devices
                rows = acts[hook].reshape(batch.shape[0] * ctx, -1).index_select(0, index)
                _check_finite(rows, hook, done_seq)
                append_rows(fh[f"activations/{hook}"], to_storage(rows, config.dtype))
                append_rows(fh[f"norms/{hook}"], to_storage(row_norms(rows), "float32"))
            n_used = int(flat[-1] // ctx) + 1
            append_rows(fh["tokens/token_ids"], batch.reshape(-1)[flat].astype(np.int32))
            append_rows(fh["tokens/seq_index"], (seq_offset + done_seq + flat // ctx).astype(np.int64))
            append_rows(fh["tokens/position"], (flat % ctx).astype(np.int32))
            append_rows(fh["sequences/token_ids"], batch[:n_used].astype(np.int32))
            done_seq += n_used
            done_tok += int(flat.size)
            fh.attrs["n_sequences"] = done_seq
            fh.attrs["n_tokens"] = done_tok
            writer.flush()
            advance(int(flat.size))
    if done_tok < config.num_tokens:
        warn(f"corpus {config.corpus!r} ran out after {done_tok} tokens ({config.num_tokens} asked for)")
    if done_tok == 0:
        raise SaetoolError(f"corpus {config.corpus!r} produced no tokens to store", hint="use a larger corpus or --include-special")


def _check_finite(rows: Any, hook: str, seq_offset: int) -> None:
    import torch

    if not torch.isfinite(rows).all():
        raise SaetoolError(
            f"the model produced NaN/inf activations at {hook} (near window {seq_offset})",
            hint="try --dtype float32",
        )
