"""Token rows for the analysis passes: texts from a file or corpus windows, batched.

Each row is ``[BOS] + tokens`` (as ``saetool extract`` stores windows), cut to
``context_size``. Batches are right-padded; a position mask marks the tokens
that count (not padding, not special tokens such as BOS).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from saetool.corpus.packing import bos_id, pack_windows
from saetool.corpus.resolve import iter_documents
from saetool.errors import SaetoolError
from saetool.steer.prompts import read_prompts


def rows_from_texts(tokenizer: Any, texts: Sequence[str], context_size: int, *, prepend_bos: bool = True) -> list[list[int]]:
    """``[BOS] + tokens`` of each text (no other special tokens), at most ``context_size`` long."""
    if context_size < 2:
        raise SaetoolError(f"--context-size must be at least 2 (got {context_size})")
    bos = bos_id(tokenizer) if prepend_bos else None
    enc = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    rows = []
    for ids in enc:
        row = ([bos] if bos is not None else []) + [int(i) for i in ids]
        rows.append(row[:context_size])
    return rows


def rows_from_corpus(tokenizer: Any, corpus: str, n_windows: int, context_size: int, *, text_column: str = "text") -> list[list[int]]:
    """The first ``n_windows`` packed windows of ``corpus`` (as ``saetool extract`` makes them)."""
    if n_windows < 1:
        raise SaetoolError(f"--num-texts must be at least 1 (got {n_windows})")
    docs = iter_documents(corpus, text_column=text_column)
    windows = pack_windows(docs, tokenizer, context_size, corpus_name=corpus)
    return [[int(i) for i in w] for w in islice(windows, n_windows)]


def read_texts(path: str | Path, *, what: str = "text file", max_texts: int | None = None) -> list[str]:
    """Texts from ``.txt`` (one per line), ``.jsonl`` (``text``/``prompt`` per line) or ``.json``."""
    return [p.text for p in read_prompts(path, max_prompts=max_texts, what=what)]


def special_ids(tokenizer: Any) -> set[int]:
    return {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}


def check_rows(rows: Sequence[Sequence[int]], tokenizer: Any, *, source: str) -> None:
    """One-line error when no row holds a single ordinary (non-special) token."""
    special = special_ids(tokenizer)
    if not any(any(int(t) not in special for t in row) for row in rows):
        raise SaetoolError(f"the texts in {source} tokenise to nothing (no ordinary tokens)", hint="give texts with words in them")


def batch(rows: Sequence[Sequence[int]], pad_id: int, special: set[int]) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """``(input_ids, attention_mask, positions)`` for right-padded rows; ``positions``
    (bool) is True at tokens that count: not padding and not special."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    positions = mask.bool()
    if special:
        positions &= ~torch.isin(ids, torch.tensor(sorted(special), dtype=torch.long))
    return ids, mask, positions


def batches(rows: Sequence[Sequence[int]], size: int) -> Iterator[list[Sequence[int]]]:
    if size < 1:
        raise SaetoolError(f"--batch-size must be at least 1 (got {size})")
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])
