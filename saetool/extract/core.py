"""The extraction core: windows, hooks, the file layout and the batch loop.

Used by the single-process run (:mod:`saetool.extract.api`) and by each rank's
shard (:mod:`saetool.extract.sharded`), so both write exactly the same rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from saetool.artifacts.arrays import append_rows, create_rows_dataset, to_storage
from saetool.artifacts.norms import row_norms
from saetool.artifacts.resume import check_resumable
from saetool.console import warn
from saetool.corpus.packing import batched, line_windows, pack_windows, prompt_lines, skip_stored, stored_positions, whole_window_positions
from saetool.corpus.resolve import iter_documents
from saetool.errors import SaetoolError
from saetool.extract.config import RESUME_KEYS, ExtractConfig
from saetool.models.hooks import hooks_from_layers, parse_hooks
from saetool.progress import token_progress

if TYPE_CHECKING:
    from saetool.artifacts.store import ArtifactWriter
    from saetool.models.base import HookedModel


def make_windows(config: ExtractConfig, tokenizer: Any) -> Iterator["np.ndarray"]:
    """The corpus as windows: packed (default) or one per line (``per_line``), after
    those of its first ``skip_tokens`` stored tokens."""
    docs = iter_documents(config.corpus, text_column=config.text_column, encoding=config.encoding)
    if config.per_line:
        windows = line_windows(prompt_lines(docs), tokenizer, config.context_size, prepend_bos=config.prepend_bos, corpus_name=config.corpus)
    else:
        windows = pack_windows(docs, tokenizer, config.context_size, prepend_bos=config.prepend_bos, corpus_name=config.corpus)
    if config.skip_tokens:
        windows = skip_stored(windows, config.skip_tokens, tokenizer.all_special_ids if config.exclude_special else None, whole=config.per_line)
    return windows


def resolve_hooks(config: ExtractConfig, model: "HookedModel") -> list[str]:
    if config.hooks:
        names = [h for h in config.hooks if h.strip()]
    elif config.layers:
        names = hooks_from_layers(config.layers, model.n_layers, config.site)
    else:
        names = hooks_from_layers(str(model.n_layers // 2), model.n_layers, config.site)
    return [p.name for p in parse_hooks(names, model.n_layers, model.supported_sites)]


def check_context_size(config: ExtractConfig, model: "HookedModel") -> None:
    """Windows longer than the model's positions fail before any file is made."""
    model.check_positions(config.context_size, f"--context-size {config.context_size}", f"use --context-size {model.max_positions} or less")


def device_map_kw(config: ExtractConfig) -> dict[str, Any]:
    return {"device_map": config.device_map} if config.device_map else {}


def create_layout(writer: "ArtifactWriter", settings: dict[str, Any], hooks: list[str], model: "HookedModel") -> None:
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
    fh.attrs["storage_dtype"] = settings["storage_dtype"]
    fh.attrs["bos_token_id"] = -1 if tok.bos_token_id is None else int(tok.bos_token_id)
    fh.attrs["special_token_ids"] = json.dumps(sorted(int(i) for i in tok.all_special_ids))
    acts = fh.create_group("activations")
    norms = fh.create_group("norms")
    for hook in hooks:
        create_rows_dataset(acts, hook, model.hook_dim(hook), settings["storage_dtype"])
        create_rows_dataset(norms, hook, None, "float32")
    tokens = fh.create_group("tokens")
    create_rows_dataset(tokens, "token_ids", None, "int32")
    create_rows_dataset(tokens, "seq_index", None, "int64")
    create_rows_dataset(tokens, "position", None, "int32")
    seqs = fh.create_group("sequences")
    create_rows_dataset(seqs, "token_ids", settings["context_size"], "int32", chunk_rows=64)


def reopen(writer: "ArtifactWriter", settings: dict[str, Any]) -> tuple[int, int]:
    """Check a partial file was made with the same settings; drop rows past its last commit."""
    fh = writer.file
    assert fh is not None
    before = json.loads(fh.attrs.get("config", "{}"))
    check_resumable(before, settings, str(writer.partial), keys=RESUME_KEYS)
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


def batch_positions(batch: "np.ndarray", special: Any, remaining: int, per_line: bool) -> tuple["np.ndarray", bool]:
    """What extract stores of ``batch`` with ``remaining`` tokens of budget left: the flat
    positions, and whether lines are left out there (``--per-line`` stores whole lines
    only and stops at the first that does not fit)."""
    if remaining <= 0:
        return np.zeros(0, dtype=np.int64), per_line
    if not per_line:
        return stored_positions(batch, special, remaining), False
    flat, fits = whole_window_positions(batch, special, remaining)
    return flat, fits < batch.shape[0]


def warn_short(config: ExtractConfig, tokens: int, lines: int, lines_left: bool) -> None:
    """The end-of-corpus warnings: ``--per-line`` lines left out by ``--num-tokens``, or a
    packed corpus that ran out first (running out of lines is ``--per-line``'s normal end)."""
    if lines_left:
        warn(f"--num-tokens {config.num_tokens} was reached after {lines} line(s) ({tokens} tokens); the lines after them are left out "
             "(each line is stored whole or not at all): raise --num-tokens to keep every line")
    elif tokens < config.num_tokens and not config.per_line:
        warn(f"corpus {config.corpus!r} ran out after {tokens} tokens ({config.num_tokens} asked for)")


def write_batches(
    writer: "ArtifactWriter",
    model: "HookedModel",
    hooks: list[str],
    windows: Iterator["np.ndarray"],
    config: ExtractConfig,
    done_seq: int,
    done_tok: int,
    show_progress: bool,
    seq_offset: int = 0,
    warn_end: bool = True,
) -> None:
    fh = writer.file
    assert fh is not None
    special = json.loads(fh.attrs["special_token_ids"]) if config.exclude_special else None
    ctx = config.context_size
    lines_left = False
    with token_progress("extract", total=config.num_tokens, completed=done_tok, enabled=show_progress) as advance:
        for batch in batched(windows, config.batch_size):
            flat, lines_left = batch_positions(batch, special, config.num_tokens - done_tok, config.per_line)
            if done_tok >= config.num_tokens or (lines_left and flat.size == 0):
                break
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
                append_rows(fh[f"activations/{hook}"], to_storage(rows, config.storage_dtype or config.dtype))
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
            if lines_left:
                break
    if warn_end:
        warn_short(config, done_tok, done_seq, lines_left)
    if done_tok == 0:
        raise SaetoolError(f"corpus {config.corpus!r} produced no tokens to store", hint="use a larger corpus or --include-special")


def _check_finite(rows: Any, hook: str, seq_offset: int) -> None:
    if not torch.isfinite(rows).all():
        raise SaetoolError(
            f"the model produced NaN/inf activations at {hook} (near window {seq_offset})",
            hint="try --dtype float32",
        )
