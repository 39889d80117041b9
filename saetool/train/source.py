"""Training data: batches of activations, streamed from activation artifacts.

The trainer takes any iterator of batches (tensors, ``(x, target)`` pairs or
:class:`Batch`). :class:`ActivationSource` is the built-in one: it reads one or
many ``activations`` artifacts in chunks, holds out whole sequences for
validation (a fixed hash of ``(file, seq_index)``, so no sequence is in both
sets and the split does not depend on the seed), and shuffles training rows
through a buffer of bounded size. The stream is endless (epochs follow each
other) and deterministic given the seed, which is what ``--resume`` replays.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.norms import NormFilter, sample_budget, sample_rows
from saetool.console import warn
from saetool.errors import SaetoolError

CHUNK_ROWS = 8192
_SPLIT_SALT = 0x5AE7001


@dataclass
class Batch:
    """One batch: inputs ``x`` ``[n, d_in]``, the ``target`` to reconstruct
    (``None``: ``x`` itself) and, from files, the global ``rows`` they came from."""

    x: "torch.Tensor"
    target: "torch.Tensor | None" = None
    rows: "torch.Tensor | None" = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def as_batch(item: Any) -> Batch:
    """A :class:`Batch` from a tensor, an ``(x, target)`` pair or a Batch."""
    if isinstance(item, Batch):
        return item
    if isinstance(item, torch.Tensor):
        return Batch(item)
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, torch.Tensor) for t in item):
        return Batch(item[0], item[1])
    raise SaetoolError(f"a training batch must be a tensor, an (x, target) pair of tensors or a Batch (got {type(item).__name__})")


def split_uniform(file_index: int, seq: "np.ndarray") -> "np.ndarray":
    """A fixed pseudo-random number in [0, 1) for each ``(file_index, seq)`` (splitmix64)."""
    v = np.asarray(seq, dtype=np.uint64) + np.uint64((file_index << 40) + _SPLIT_SALT)
    with np.errstate(over="ignore"):
        v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        v = v ^ (v >> np.uint64(31))
    return (v >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class ActivationSource:
    """Shuffled training batches and a capped validation set from activation files."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        hook: str | None = None,
        hook_out: str | None = None,
        batch_size: int = 4096,
        shuffle_buffer: int = 65536,
        val_fraction: float = 0.05,
        val_tokens: int = 16384,
        seed: int = 0,
        chunk_rows: int = CHUNK_ROWS,
        rank: int = 0,
        world_size: int = 1,
        max_norm_ratio: float | None = None,
        hooks: Sequence[str] | None = None,
    ) -> None:
        """``hooks`` (several): each batch's ``x`` is those hooks' rows for the same
        tokens side by side, ``[n, sum of widths]`` (:attr:`widths`, :meth:`split`);
        the rows and their order are those a one-hook source with the same seed reads."""
        if hooks:
            if len(hooks) > 1 and (hook_out is not None or max_norm_ratio is not None):
                raise SaetoolError("a source of several hooks takes no hook_out and no max_norm_ratio")
            hook = hooks[0]

        if not paths:
            raise SaetoolError("no activation artifact given", hint="pass a FILE argument or pipe `saetool extract` into this one")
        self.paths = [Path(p) for p in paths]
        self.files: list[ActivationsFile] = []
        try:
            for p in self.paths:
                self.files.append(ActivationsFile(p))
            self._check_files(hook, hook_out)
            for h in (hooks or [])[1:]:
                self._check_files(h, None)
        except BaseException:
            self.close()
            raise
        first = self.files[0]
        self.hook = hook or first.hooks[0]
        self.hook_out = hook_out
        self.hooks: list[str] = list(hooks) if hooks else [self.hook]
        self.widths = [first.d(h) for h in self.hooks]
        self.d_in = sum(self.widths)
        self.d_out = first.d(hook_out) if hook_out else self.d_in
        self.shuffle_buffer = int(shuffle_buffer)
        self.use_batch_size(batch_size)
        self.chunk_rows = int(min(chunk_rows, max(1, shuffle_buffer)))
        self.val_fraction = float(val_fraction)
        self.val_tokens = int(val_tokens)
        self.seed = int(seed)
        # data-parallel training: this rank reads its own contiguous part of every
        # chunk (a disjoint share of the training rows) and shuffles it with its own seed
        self.rank, self.world_size = int(rank), int(world_size)
        self.offsets = [0]
        for f in self.files:
            self.offsets.append(self.offsets[-1] + f.n_tokens)
        self._val_seq = self._split()
        self.peak_rows = 0  # most rows ever held in the shuffle buffer
        self.norm_filter, self._ordinary = self._norm_filter(max_norm_ratio)

    def use_batch_size(self, batch_size: int) -> None:
        """Read batches of ``batch_size`` rows (before the first batch: the shuffle buffer is sized by it)."""
        self.batch_size = int(batch_size)
        self.capacity = max(self.shuffle_buffer, 2 * self.batch_size)

    # -- files -------------------------------------------------------------------
    def _check_files(self, hook: str | None, hook_out: str | None) -> None:
        first = self.files[0]
        hook = hook or (first.hooks[0] if first.hooks else None)
        for f in self.files:
            f.require_tokens()
            for h in (hook, hook_out):
                if h is not None and h not in f.hooks:
                    raise SaetoolError(f"{f.path} has no activations for hook {h!r}", hint="it has: " + ", ".join(f.hooks))
        models = {f.model for f in self.files}
        if len(models) > 1:
            warn(f"the activation files come from different models ({', '.join(sorted(str(m) for m in models))})")
        for h in (hook, hook_out):
            if h is None:
                continue
            dims = {f.d(h) for f in self.files}
            if len(dims) > 1:
                raise SaetoolError(f"the activation files disagree on the width of {h} ({sorted(dims)})", hint="train on files from one model")

    @property
    def n_tokens(self) -> int:
        return self.offsets[-1]

    @property
    def model(self) -> str | None:
        return self.files[0].model

    def _n_sequences(self, f: "ActivationsFile") -> int:
        n = f.artifact.file.attrs.get("n_sequences")
        return int(n) if n is not None else int(f.artifact.file["sequences/token_ids"].shape[0])

    def _split(self) -> list["np.ndarray"]:
        """Per file, which sequences are held out for validation (at least one
        sequence on each side when there are two or more and val_fraction > 0)."""
        us = [split_uniform(i, np.arange(self._n_sequences(f))) for i, f in enumerate(self.files)]
        val = [u < self.val_fraction for u in us]
        if self.val_fraction > 0:
            flat = np.concatenate(us) if us else np.zeros(0)
            if flat.size >= 2:
                if not any(v.any() for v in val):
                    low = flat.min()
                    val = [v | (u == low) for v, u in zip(val, us)]
                if all(v.all() for v in val):
                    high = flat.max()
                    val = [v & (u != high) for v, u in zip(val, us)]
        return val

    def _norm_filter(self, ratio: float | None) -> tuple[Any, list["np.ndarray"] | None]:
        """``--max-norm-ratio``: the rule (median row and distance over a sample of every file's
        rows, in proportion to each file's size) and, per file, which rows are kept: a pass over
        every file's rows, on every rank of a data-parallel run."""
        if ratio is None:
            return None, None

        if not ratio > 0:
            raise SaetoolError(f"--max-norm-ratio must be positive (got {ratio})")
        total = max(1, sum(f.n_tokens for f in self.files))
        sample = [
            sample_rows(lambda a, b, i=i: self._read_checked(i, self.hook, a, b), f.n_tokens, max(1, sample_budget(self.d_in) * f.n_tokens // total))
            for i, f in enumerate(self.files)
        ]
        rule = NormFilter.from_rows(torch.cat(sample), ratio)
        keep = []
        for i, f in enumerate(self.files):
            parts = [rule.keep(self._read_checked(i, self.hook, s, min(s + self.chunk_rows, f.n_tokens))).numpy() for s in range(0, f.n_tokens, self.chunk_rows)]
            keep.append(np.concatenate(parts) if parts else np.zeros(0, bool))
        return rule, keep

    def excluded_tokens(self) -> dict[str, int]:
        """How many training and validation tokens ``--max-norm-ratio`` leaves out."""
        out = {"train": 0, "validation": 0}
        if self._ordinary is None:
            return out
        for i, (f, keep) in enumerate(zip(self.files, self._ordinary)):
            seq = f.artifact.file["tokens/seq_index"][: f.n_tokens]
            val = self.is_val(i, seq)
            out["train"] += int(np.count_nonzero(~keep & ~val))
            out["validation"] += int(np.count_nonzero(~keep & val))
        return out

    def is_val(self, file_index: int, seq: "np.ndarray") -> "np.ndarray":
        table = self._val_seq[file_index]
        seq = np.asarray(seq, dtype=np.int64)
        out = np.zeros(seq.shape, dtype=bool)
        inside = (seq >= 0) & (seq < table.shape[0])
        out[inside] = table[seq[inside]]
        return out

    def locate(self, rows: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
        """``(file_index, local_row)`` of global row ids."""
        rows = np.asarray(rows, dtype=np.int64)
        file_index = np.searchsorted(np.asarray(self.offsets[1:]), rows, side="right")
        return file_index, rows - np.asarray(self.offsets)[file_index]

    def count_train_tokens(self) -> int:
        total = 0
        for i, f in enumerate(self.files):
            for start in range(0, f.n_tokens, 1 << 20):
                seq = f.artifact.file["tokens/seq_index"][start : start + (1 << 20)]
                train = ~self.is_val(i, seq)
                if self._ordinary is not None:
                    train &= self._ordinary[i][start : start + len(seq)]
                total += int(train.sum())
        return total

    # -- reading -----------------------------------------------------------------
    def _chunks(self, *, val: bool) -> Iterator[tuple["torch.Tensor", "torch.Tensor | None", "torch.Tensor"]]:
        """One pass over every file: ``(x, target, global_rows)`` of train (or val) rows."""
        for i, f in enumerate(self.files):
            for start in range(0, f.n_tokens, self.chunk_rows):
                stop = min(start + self.chunk_rows, f.n_tokens)
                if not val and self.world_size > 1:
                    start, stop = start + (stop - start) * self.rank // self.world_size, start + (stop - start) * (self.rank + 1) // self.world_size
                    if start >= stop:
                        continue
                seq = f.artifact.file["tokens/seq_index"][start:stop]
                keep = self.is_val(i, seq) if val else ~self.is_val(i, seq)
                if self._ordinary is not None:
                    keep &= self._ordinary[i][start:stop]
                if not keep.any():
                    continue
                index = np.flatnonzero(keep)
                if index.size < keep.size // 2:  # a few sequences: read just their rows
                    runs = np.split(index, np.flatnonzero(np.diff(index) > 1) + 1)
                    parts = [(start + int(r[0]), start + int(r[-1]) + 1) for r in runs]
                    x = torch.cat([self._read_x(i, a, b) for a, b in parts])
                    y = torch.cat([self._read_checked(i, self.hook_out, a, b) for a, b in parts]) if self.hook_out else None
                else:
                    sel = torch.from_numpy(index)
                    x = self._read_x(i, start, stop).index_select(0, sel)
                    y = self._read_checked(i, self.hook_out, start, stop).index_select(0, sel) if self.hook_out else None
                yield x, y, torch.from_numpy(index) + (self.offsets[i] + start)

    def _read_x(self, file_index: int, start: int, stop: int) -> "torch.Tensor":
        """Rows ``start:stop`` of every input hook, side by side."""
        if len(self.hooks) == 1:
            return self._read_checked(file_index, self.hook, start, stop)
        return torch.cat([self._read_checked(file_index, h, start, stop) for h in self.hooks], dim=1)

    def split(self, x: "torch.Tensor") -> list["torch.Tensor"]:
        """A several-hook batch's ``x`` as one contiguous ``[n, d]`` tensor per hook (in :attr:`hooks` order)."""
        return [part.contiguous() for part in x.split(self.widths, dim=1)]

    def for_hook(self, hook: str) -> "ActivationSource":
        """A view of this source that reads ``hook`` alone (same files and split), for writing one SAE's samples."""
        view = copy.copy(self)
        view.hook, view.hooks, view.widths = hook, [hook], [self.widths[self.hooks.index(hook)]]
        view.d_in = view.widths[0]
        return view

    def _read_checked(self, file_index: int, hook: str, start: int, stop: int) -> "torch.Tensor":
        return self.files[file_index].read_finite(hook, start, stop, dtype=torch.float32)

    # -- batches -----------------------------------------------------------------
    def validation(self) -> list[Batch]:
        """Up to ``val_tokens`` rows of held-out sequences, in batches."""
        if self.val_fraction <= 0 or self.val_tokens <= 0:
            return []
        xs, ys, rs, n = [], [], [], 0
        for x, y, rows in self._chunks(val=True):
            take = min(len(x), self.val_tokens - n)
            xs.append(x[:take])
            rs.append(rows[:take])
            if y is not None:
                ys.append(y[:take])
            n += take
            if n >= self.val_tokens:
                break
        if not xs:
            return []
        x, rows = torch.cat(xs), torch.cat(rs)
        y = torch.cat(ys) if ys else None
        b = self.batch_size
        return [Batch(x[i : i + b], y[i : i + b] if y is not None else None, rows[i : i + b]) for i in range(0, len(x), b)]

    def batches(self) -> Iterator[Batch]:
        """Endless shuffled training batches (deterministic given the seed)."""
        gen = torch.Generator().manual_seed(self.seed + 7919 * self.rank)
        chunks = self._endless_train_chunks()
        cap = self.capacity
        size = cap + self.chunk_rows
        buf_x = torch.empty(size, self.d_in)
        buf_y = torch.empty(size, self.d_out) if self.hook_out else None
        buf_r = torch.empty(size, dtype=torch.long)
        n, b = 0, self.batch_size
        while True:
            while n < cap:
                x, y, rows = next(chunks)
                m = len(x)
                buf_x[n : n + m] = x
                if buf_y is not None:
                    buf_y[n : n + m] = y
                buf_r[n : n + m] = rows
                n += m
            self.peak_rows = max(self.peak_rows, n)
            perm = torch.randperm(n, generator=gen)
            emit = max(b, ((n - cap // 2) // b) * b)
            for i in range(0, emit, b):
                sel = perm[i : i + b]
                yield Batch(buf_x[sel], buf_y[sel] if buf_y is not None else None, buf_r[sel])
            keep = perm[emit:]
            n = len(keep)
            buf_x[:n] = buf_x[keep]
            if buf_y is not None:
                buf_y[:n] = buf_y[keep]
            buf_r[:n] = buf_r[keep]

    def _endless_train_chunks(self) -> Iterator[tuple["torch.Tensor", "torch.Tensor | None", "torch.Tensor"]]:
        while True:
            got = False
            for chunk in self._chunks(val=False):
                got = True
                yield chunk
            if not got:
                raise SaetoolError("no training rows: every sequence is held out for validation", hint="lower --val-fraction")

    # -- lifetime ----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What the artifact's training record says about the data."""
        first = self.files[0]
        cfg = first.config
        return {
            "sources": [str(p.resolve()) for p in self.paths],
            "n_tokens": self.n_tokens,
            "hook": self.hook,
            "hook_out": self.hook_out,
            **({"hooks": self.hooks} if len(self.hooks) > 1 else {}),
            "model": self.model,
            "context_size": first.context_size,
            "prepend_bos": cfg.get("prepend_bos"),
            "exclude_special_tokens": cfg.get("exclude_special"),
            "corpus": cfg.get("corpus"),
            **({"norm_filter": {**self.norm_filter.to_dict(), "excluded_tokens": self.excluded_tokens()}} if self.norm_filter is not None else {}),
        }

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> "ActivationSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
