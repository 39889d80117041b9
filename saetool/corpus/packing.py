"""Tokenising documents and packing them into fixed-length windows.

SAE training data is a stream of windows of ``context_size`` token ids. The
documents are tokenised in batches without special tokens (blank ones are
skipped), joined with a separator token (EOS, else BOS) between consecutive
documents, and cut into windows; with ``prepend_bos`` each window is ``[BOS] + context_size - 1``
stream tokens. Only one batch of documents plus less than one window of
tokens is held at a time (a long document is tokenised in pieces), and the final
incomplete window is dropped.
"""

from __future__ import annotations

from itertools import chain, islice
from typing import Any, Iterable, Iterator

import numpy as np

from saetool.console import warn
from saetool.errors import CorpusError, SaetoolError

__all__ = ["pack_windows", "line_windows", "prompt_lines", "first_window", "special_token_mask", "stored_positions",
           "whole_window_positions", "batched", "bos_id", "separator_id"]


def bos_id(tokenizer: Any) -> int | None:
    """The id put at the start of each window: BOS, else EOS, else ``None``."""
    for attr in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return None


def separator_id(tokenizer: Any) -> int | None:
    """The id put between documents: EOS, else BOS, else ``None`` (no separator)."""
    for attr in ("eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return None


#: The longest text tokenised in one call: longer documents (an 8 MB single-line
#: file) are tokenised in pieces cut before a space, so memory stays bounded.
PIECE_CHARS = 1 << 16


def _pieces(text: str) -> Iterator[str]:
    """``text`` in pieces of at most :data:`PIECE_CHARS` characters, each cut just before a
    space where there is one (a byte-level BPE tokeniser then gives the same ids as for the whole)."""
    size = PIECE_CHARS
    start = 0
    while len(text) - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        yield text[start:cut]
        start = cut
    yield text[start:]


def _token_pieces(docs: Iterator[str], tokenizer: Any, doc_batch: int) -> Iterator[tuple[bool, np.ndarray]]:
    """``(starts a document, token ids)`` for the documents' text, tokenised ``doc_batch``
    pieces at a time (blank documents skipped), so a long document is never held as tokens whole."""
    while True:
        batch = [d for d in islice(docs, doc_batch) if d and not d.isspace()]
        if not batch:
            # islice returned nothing (exhausted) or only blank documents; tell apart.
            peek = next(docs, None)
            if peek is None:
                return
            docs = chain([peek], docs)
            continue
        flat = ((j == 0, piece) for doc in batch for j, piece in enumerate(_pieces(doc)))
        while group := list(islice(flat, doc_batch)):
            for (first, _), ids in zip(group, _encode(tokenizer, [piece for _, piece in group])):
                yield first, np.asarray(ids, dtype=np.int64)


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    try:
        encoded = tokenizer(texts, add_special_tokens=False, verbose=False)
    except TypeError:  # a tokenizer-like object without ``verbose``
        encoded = tokenizer(texts, add_special_tokens=False)
    ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    return list(ids)


def pack_windows(
    documents: Iterable[str],
    tokenizer: Any,
    context_size: int,
    *,
    prepend_bos: bool = True,
    doc_batch: int = 32,
    corpus_name: str | None = None,
) -> Iterator[np.ndarray]:
    """Yield int64 arrays of length ``context_size`` packed from ``documents``.

    Deterministic for the same documents and tokenizer. Raises
    :class:`CorpusError` (when the iterator is first advanced past the end) if
    the corpus yields no documents or fewer tokens than one window;
    ``corpus_name`` is used in that message. Use :func:`first_window` to hit
    that error before starting heavy work.
    """
    context_size = int(context_size)
    if context_size < (2 if prepend_bos else 1):
        raise SaetoolError(
            f"context size {context_size} is too small",
            hint=f"use at least {2 if prepend_bos else 1} tokens per window",
        )
    if doc_batch < 1:
        raise SaetoolError(f"doc_batch must be at least 1, not {doc_batch}")
    bos = bos_id(tokenizer) if prepend_bos else None
    if prepend_bos and bos is None:
        raise SaetoolError(
            "the tokenizer has neither a BOS nor an EOS token to start each window with",
            hint="turn off prepending BOS for this model",
        )
    return _pack(documents, tokenizer, context_size, bos, separator_id(tokenizer), doc_batch, corpus_name)


def _pack(
    documents: Iterable[str],
    tokenizer: Any,
    context_size: int,
    bos: int | None,
    sep: int | None,
    doc_batch: int,
    corpus_name: str | None,
) -> Iterator[np.ndarray]:
    stride = context_size - 1 if bos is not None else context_size
    sep_arr = np.array([sep] if sep is not None else [], dtype=np.int64)
    buffer = np.empty(0, dtype=np.int64)
    n_docs = 0
    n_tokens = 0
    n_windows = 0
    for first, ids in _token_pieces(iter(documents), tokenizer, doc_batch):
        if len(ids) == 0:
            continue
        pieces = [buffer]
        if first:
            if n_docs:
                pieces.append(sep_arr)
            n_docs += 1
        pieces.append(ids)
        n_tokens += len(ids)
        buffer = np.concatenate(pieces)
        n_full = len(buffer) // stride
        for i in range(n_full):
            chunk = buffer[i * stride : (i + 1) * stride]
            if bos is not None:
                window = np.empty(context_size, dtype=np.int64)
                window[0] = bos
                window[1:] = chunk
            else:
                window = chunk.copy()
            n_windows += 1
            yield window
        if n_full:
            buffer = buffer[n_full * stride :].copy()
    if n_windows == 0:
        label = f"corpus {corpus_name!r}" if corpus_name else "the corpus"
        if n_docs == 0:
            raise CorpusError(
                f"{label} is empty (it yielded no documents with text)",
                hint="check the --corpus path, category or --text-column",
            )
        raise CorpusError(
            f"{label} is too short for one window of {context_size} tokens "
            f"({n_docs} documents, {n_tokens} tokens)",
            hint="use a larger corpus or a smaller --context-size",
        )


def prompt_lines(documents: Iterable[str]) -> Iterator[str]:
    """The lines of ``documents`` as prompt files read them: stripped, blank
    lines and ``#`` comment lines left out."""
    for doc in documents:
        for line in doc.splitlines():
            text = line.strip()
            if text and not text.startswith("#"):
                yield text


def line_windows(
    lines: Iterable[str],
    tokenizer: Any,
    context_size: int,
    *,
    prepend_bos: bool = True,
    doc_batch: int = 32,
    corpus_name: str | None = None,
) -> Iterator[np.ndarray]:
    """One window per line (``extract --per-line``): ``[BOS] + its tokens``, cut
    to ``context_size`` and padded after the end with the separator (EOS), a
    special token, so the padding is never stored and, the model being causal,
    never seen by the line's own tokens."""
    context_size = int(context_size)
    if context_size < (2 if prepend_bos else 1):
        raise SaetoolError(f"context size {context_size} is too small", hint=f"use at least {2 if prepend_bos else 1} tokens per window")
    bos = bos_id(tokenizer) if prepend_bos else None
    pad = separator_id(tokenizer)
    if pad is None or (prepend_bos and bos is None):
        raise SaetoolError("the tokenizer has no EOS/BOS token to pad the lines with", hint="use packed windows (without --per-line)")
    return _lines(iter(lines), tokenizer, context_size, bos, pad, doc_batch, corpus_name)


def _lines(lines: Iterator[str], tokenizer: Any, context_size: int, bos: int | None, pad: int, doc_batch: int, corpus_name: str | None) -> Iterator[np.ndarray]:
    room = context_size - (1 if bos is not None else 0)
    n_windows = n_cut = 0
    while True:
        batch = list(islice(lines, doc_batch))
        if not batch:
            break
        for ids in _encode(tokenizer, batch):
            if len(ids) == 0:
                continue
            if len(ids) > room:
                n_cut += 1
                if n_cut == 1:
                    warn(f"a line of {len(ids)} tokens is cut to the window of {context_size} tokens; raise --context-size to keep whole lines")
            window = np.full(context_size, pad, dtype=np.int64)
            body = np.asarray(ids[:room], dtype=np.int64)
            start = 0 if bos is None else 1
            if bos is not None:
                window[0] = bos
            window[start : start + len(body)] = body
            n_windows += 1
            yield window
    if n_windows == 0:
        label = f"corpus {corpus_name!r}" if corpus_name else "the corpus"
        raise CorpusError(f"{label} has no lines with text (blank and # comment lines are skipped)", hint="check the --corpus path or --text-column")


def first_window(windows: Iterable[np.ndarray]) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """Peek at the first window: ``(first, iterator over all windows including first)``.

    Raises the packer's :class:`CorpusError` now if the corpus is empty or too
    short, so a command can fail before loading a model or opening outputs.
    """
    it = iter(windows)
    try:
        first = next(it)
    except StopIteration:
        raise CorpusError("the corpus yielded no windows", hint="use a larger corpus or a smaller --context-size") from None
    return first, chain([first], it)


def special_token_mask(window: np.ndarray, tokenizer: Any) -> np.ndarray:
    """A bool array, True where ``window`` holds one of ``tokenizer.all_special_ids``."""
    special = np.asarray(sorted(set(int(i) for i in getattr(tokenizer, "all_special_ids", []) or [])), dtype=np.int64)
    return np.isin(np.asarray(window), special)


def stored_positions(batch: np.ndarray, special_ids: Iterable[int] | None, limit: int) -> np.ndarray:
    """Flat indices into ``batch`` (``[B, context_size]``) of the tokens ``extract`` stores:
    the first ``limit`` tokens that are not in ``special_ids`` (every token when it is ``None``)."""
    flat = np.asarray(batch).reshape(-1)
    if special_ids is None:
        return np.arange(min(max(limit, 0), flat.size))
    special = np.asarray(sorted(set(int(i) for i in special_ids)), dtype=np.int64)
    return np.flatnonzero(~np.isin(flat, special))[: max(limit, 0)]


def whole_window_positions(batch: np.ndarray, special_ids: Iterable[int] | None, limit: int) -> tuple[np.ndarray, int]:
    """:func:`stored_positions` of the leading windows whose tokens all fit in ``limit``
    (``extract --per-line``: a line is stored whole or not at all), and how many
    windows that is (a window with nothing to store always fits)."""
    batch = np.asarray(batch)
    every = stored_positions(batch, special_ids, batch.size)
    window = every // batch.shape[1]
    ends = np.cumsum(np.bincount(window, minlength=batch.shape[0]))
    fits = int(np.searchsorted(ends, max(limit, 0), side="right"))
    return every[window < fits], fits


def batched(windows: Iterable[np.ndarray], batch_size: int, *, drop_last: bool = False) -> Iterator[np.ndarray]:
    """Stack windows into ``[B, context_size]`` arrays of ``batch_size`` rows.

    The last batch may be smaller unless ``drop_last``.
    """
    if batch_size < 1:
        raise SaetoolError(f"batch size must be at least 1, not {batch_size}")
    it = iter(windows)
    while True:
        rows = list(islice(it, batch_size))
        if not rows or (drop_last and len(rows) < batch_size):
            return
        yield np.stack(rows)


def skip_stored(windows: Iterator[np.ndarray], tokens: int, special_ids: Iterable[int] | None, *, whole: bool = False) -> Iterator[np.ndarray]:
    """The windows after those an extract of ``tokens`` tokens stores rows of
    (:func:`stored_positions`; ``whole``: it stores whole windows only and stops at
    the first that does not fit, as ``--per-line`` does)."""
    done = 0
    rest = iter(windows)
    for window in rest:
        n = int(stored_positions(window[None], special_ids, window.size).size)
        if done >= tokens or (whole and done + n > tokens):
            yield window
            yield from rest
            return
        done += n
    raise CorpusError(f"the corpus ends within the {tokens} tokens --skip-tokens leaves out ({done} in all)", hint="lower --skip-tokens, or use a larger corpus")
