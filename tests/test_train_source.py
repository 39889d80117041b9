"""Streaming training batches from activation artifacts: split, shuffle buffer, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saetool.errors import SaetoolError
from saetool.train.source import ActivationSource
from saetool.train.synthetic import write_activations

HOOK = "blocks.0.hook_resid_post"


def rows_file(path, n: int, d: int = 4, context: int = 16, **kw):
    """Activations whose first column is the row number, so every batch row can be traced."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    x[:, 0] = torch.arange(n, dtype=torch.float32)
    return write_activations(path, {HOOK: x}, context_size=context, **kw)


def test_split_is_by_sequence_and_covers_every_row(tmp_path):
    a = rows_file(tmp_path / "a.h5", 3000, context=10)
    b = rows_file(tmp_path / "b.h5", 2000, context=10)
    with ActivationSource([a, b], batch_size=100, shuffle_buffer=500, val_fraction=0.2, val_tokens=10**6, seed=1) as src:
        val_rows = torch.cat([batch.rows for batch in src.validation()]).numpy()
        stream = src.batches()
        train_rows = torch.cat([next(stream).rows for _ in range(src.count_train_tokens() // 100)]).numpy()
        file_v, local_v = src.locate(val_rows)
        file_t, local_t = src.locate(train_rows)
    seq_v = set(zip(file_v.tolist(), (local_v // 10).tolist()))
    seq_t = set(zip(file_t.tolist(), (local_t // 10).tolist()))
    assert seq_v and seq_t and not (seq_v & seq_t)  # no sequence on both sides
    assert 0.1 < len(seq_v) / (len(seq_v) + len(seq_t)) < 0.3
    assert len(set(val_rows.tolist())) == len(val_rows) == 10 * len(seq_v)  # whole sequences held out
    assert set(train_rows.tolist()) | set(val_rows.tolist()) <= set(range(5000))
    assert len(set(train_rows.tolist())) > 0.9 * (5000 - len(val_rows))


def test_split_does_not_depend_on_seed_and_batches_do(tmp_path):
    a = rows_file(tmp_path / "a.h5", 2000)
    def first(seed):
        with ActivationSource([a], batch_size=64, shuffle_buffer=256, seed=seed) as src:
            return torch.cat([b.rows for b in src.validation()]), next(src.batches()).rows
    v1, b1 = first(1)
    v2, b2 = first(1)
    v3, b3 = first(2)
    assert torch.equal(v1, v3) and torch.equal(b1, b2) and not torch.equal(b1, b3)


def test_shuffle_buffer_is_bounded_and_rows_match_their_activations(tmp_path):
    n = 20000
    a = rows_file(tmp_path / "a.h5", n)
    with ActivationSource([a], batch_size=128, shuffle_buffer=1024, val_fraction=0.0, seed=0, chunk_rows=512) as src:
        stream = src.batches()
        seen = []
        for _ in range(150):
            batch = next(stream)
            assert torch.equal(batch.x[:, 0].long(), batch.rows)  # each row's activations are its own
            seen.append(batch.rows)
        assert src.peak_rows <= 1024 + 512  # never more than the buffer plus one chunk
    rows = torch.cat(seen)
    assert len(set(rows.tolist())) == len(rows)  # within the first epoch no row repeats
    spread = rows[:128].float().std().item()
    assert spread > 150  # a batch mixes rows from across the buffer, not a contiguous run


def test_endless_epochs(tmp_path):
    a = rows_file(tmp_path / "a.h5", 300)
    with ActivationSource([a], batch_size=64, shuffle_buffer=128, val_fraction=0.0) as src:
        stream = src.batches()
        rows = torch.cat([next(stream).rows for _ in range(30)])  # 1920 rows from 300
    counts = np.bincount(rows.numpy(), minlength=300)
    assert counts.min() >= 4 and counts.max() <= 8


def test_nan_rows_are_named(tmp_path):
    x = torch.randn(500, 4)
    x[7, 1] = float("nan")
    x[123, 0] = float("inf")
    path = write_activations(tmp_path / "bad.h5", {HOOK: x})
    with ActivationSource([path], batch_size=32, shuffle_buffer=64, val_fraction=0.0) as src:
        with pytest.raises(SaetoolError, match=r"NaN/inf activations at blocks.0.hook_resid_post in 2 row\(s\): 7, 123"):
            next(src.batches())


def test_bad_files(tmp_path):
    empty = write_activations(tmp_path / "empty.h5", {HOOK: torch.zeros(0, 4)})
    with pytest.raises(SaetoolError, match="holds no activations"):
        ActivationSource([empty])
    a = rows_file(tmp_path / "a.h5", 100)
    with pytest.raises(SaetoolError, match="has no activations for hook 'blocks.9.hook_resid_post'"):
        ActivationSource([a], hook="blocks.9.hook_resid_post")
    narrow = write_activations(tmp_path / "narrow.h5", {HOOK: torch.zeros(10, 3)})
    with pytest.raises(SaetoolError, match="disagree on the width"):
        ActivationSource([a, narrow])
