"""Sparse encode/decode with sparse backward passes, for TopK-family training.

A TopK step needs the dense encoder matmul (to choose the active features),
but nothing else dense: the decode is a weighted sum of ``k`` decoder rows per
token, and every gradient only touches the chosen entries. Active features are
held in coordinate form (:class:`SparseCodes`) and two autograd functions do
the work:

* :func:`gather_preacts` picks ``pre[row, col]`` out of a pre-activation matrix
  computed without autograd; its backward builds ``dW_enc = x^T G`` from the
  ``nnz`` nonzero entries of ``G`` only (a segment sum per feature).
* :func:`sparse_decode` computes ``sum_e values[e] * W_dec[cols[e]]`` per row
  with ``F.embedding_bag``; its backward gives ``d values`` by a sampled
  dense-dense matmul (one dot product per entry) and ``dW_dec`` by the same
  per-feature segment sum.

Both backward passes are deterministic on the CPU (stable sorts, sequential
bag sums), so a resumed run reproduces an uninterrupted one bit for bit.

Where the time goes (one CPU step of the benchmark's TopK SAE, d_in 576,
d_sae 4608, batch 4096, with the AuxK loss's 288 entries per token once
features die): after the encoder matmul and the top-k selections, the
per-entry work over ~1.3M entries dominates, so every pass over the entries
counts. Hence :class:`ColumnOrder` sorts each code set once and keeps
``rows[perm]`` for both backward passes, and :func:`gather_preacts` turns the
gradient of ``x - b_dec`` (a ``[batch, d_in]`` sum over every entry) into one
matrix-vector product (``shift``). The trainer runs the step under
:func:`narrow_threads` (small ops on one CPU thread, :func:`wide_threads`
around the big ones).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

_wide: int | None = None  # the full CPU thread count while a step runs narrowed (narrow_threads)


@contextmanager
def narrow_threads(device: "torch.device", enabled: bool = True) -> Iterator[None]:
    """Run a CPU training step's many small ops on one thread; :func:`wide_threads`
    restores the full count around the few big ones (the encoder matmul, the
    top-k selections, the per-entry kernels over every entry, ...).

    A TopK step runs dozens of ops over ~1e5-1e6 elements (index, gather, relu
    and its backward, sorts, per-entry weights). Each takes a millisecond or
    less on one thread, but split over several it waits for every thread to be
    scheduled: on a machine shared with other processes that wait is several
    milliseconds per op, and the spinning threads steal time from the working
    ones. One thread loses next to nothing on an idle machine. Results do not
    depend on it: these ops give the same numbers on any number of threads
    (entry-wise ops, sequential per-row/per-bag sums).
    """
    global _wide
    if not enabled or device.type != "cpu" or _wide is not None or torch.get_num_threads() <= 1:
        yield
        return
    _wide = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(_wide)
        _wide = None


@contextmanager
def wide_threads() -> Iterator[None]:
    """All CPU threads for one big op inside :func:`narrow_threads` (else a no-op)."""
    if _wide is None:
        yield
        return
    torch.set_num_threads(_wide)
    try:
        yield
    finally:
        torch.set_num_threads(1)


@dataclass
class SparseCodes:
    """Feature activations of ``n_rows`` tokens as ``(rows, cols, values)``.

    ``rows`` is ascending, so the entries of one token are contiguous.
    ``values`` may carry autograd; ``rows``/``cols`` are int64.
    """

    rows: "torch.Tensor"
    cols: "torch.Tensor"
    values: "torch.Tensor"
    n_rows: int
    k: int | None = None  # every row has exactly k entries (TopK): enables faster kernels

    def offsets(self) -> "torch.Tensor":
        """Start of each row's entries (for ``F.embedding_bag``)."""
        return _offsets(self.rows, self.n_rows, self.k)

    def select(self, mask: "torch.Tensor") -> "SparseCodes":
        return SparseCodes(self.rows[mask], self.cols[mask], self.values[mask], self.n_rows)

    def with_values(self, values: "torch.Tensor") -> "SparseCodes":
        return SparseCodes(self.rows, self.cols, values, self.n_rows, self.k)

    def to_dense(self, d_sae: int) -> "torch.Tensor":
        out = torch.zeros(self.n_rows, d_sae, dtype=self.values.dtype, device=self.values.device)
        out[self.rows, self.cols] = self.values.detach()
        return out

    def detach(self) -> "SparseCodes":
        return self.with_values(self.values.detach())


def topk_codes(idx: "torch.Tensor", values: "torch.Tensor | None" = None) -> SparseCodes:
    """Codes of a ``[n, k]`` index matrix (row-major); ``values`` default to empty."""
    n, k = idx.shape
    rows = torch.arange(n, device=idx.device).repeat_interleave(k)
    vals = values.reshape(-1) if values is not None else torch.empty(0, device=idx.device)
    return SparseCodes(rows, idx.reshape(-1), vals, n, k)


def _offsets(rows: "torch.Tensor", n_rows: int, k: int | None = None) -> "torch.Tensor":
    """Start of each row's entries; ``k``: every row has exactly k."""
    if k:
        return torch.arange(0, n_rows * k, k, device=rows.device)
    counts = torch.bincount(rows, minlength=n_rows)
    return torch.cumsum(counts, 0) - counts


@dataclass
class ColumnOrder:
    """The entries of a :class:`SparseCodes` grouped by column (stable), for the
    per-feature segment sums of the backward passes. Computed once per code set
    and shared by :func:`gather_preacts` and :func:`sparse_decode`."""

    perm: "torch.Tensor"  # entry indices, grouped by column, rows ascending within a column
    offsets: "torch.Tensor"  # [n_cols] where each column's entries start in ``perm``
    rows: "torch.Tensor"  # rows[perm]: the row of each grouped entry (the same for every segment sum)


def column_order(codes: SparseCodes, n_cols: int) -> ColumnOrder:
    """:class:`ColumnOrder` of ``codes`` over ``n_cols`` columns."""
    cols = codes.cols
    keys = cols.to(torch.int32) if n_cols < 2**31 else cols

    def order() -> ColumnOrder:
        sorted_keys, perm = torch.sort(keys, stable=True)
        offsets = torch.searchsorted(sorted_keys, torch.arange(n_cols, dtype=keys.dtype, device=keys.device))
        # k entries per row, rows ascending: entry e is in row e // k (cheaper than a gather)
        rows = torch.div(perm, codes.k, rounding_mode="floor") if codes.k else codes.rows.index_select(0, perm)
        return ColumnOrder(perm, offsets, rows)

    if cols.device.type == "cpu" and torch.get_num_threads() > 1:
        # these ~1e5-1e6-element steps take milliseconds on one thread, but can
        # stall for a hundred waiting for a second one on a busy machine
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return order()
        finally:
            torch.set_num_threads(before)
    return order()


def _segment_sum_by_col(order: ColumnOrder, weights: "torch.Tensor", table: "torch.Tensor") -> "torch.Tensor":
    """``out[c] = sum_{e: cols[e] == c} weights[e] * table[rows[e]]``, shape ``[n_cols, table.shape[1]]``."""
    with wide_threads():
        per_entry = weights.index_select(0, order.perm).to(table.dtype)  # index_select: about twice as fast as weights[perm]
        return F.embedding_bag(order.rows, table, order.offsets, mode="sum", per_sample_weights=per_entry)


def _row_dots(rows: "torch.Tensor", cols: "torch.Tensor", left: "torch.Tensor", right: "torch.Tensor", n_rows: int, k: int | None = None) -> "torch.Tensor":
    """``out[e] = <left[rows[e]], right[cols[e]]>`` for ascending ``rows``: a sampled
    dense-dense matmul (``torch.sparse.sampled_addmm``), float32 inside."""
    if rows.device.type not in ("cpu", "cuda"):  # no sampled_addmm kernel (e.g. MPS): gather in blocks
        out = torch.empty(rows.shape[0], dtype=left.dtype, device=left.device)
        for start in range(0, rows.shape[0], 1 << 14):
            r, c = rows[start : start + (1 << 14)], cols[start : start + (1 << 14)]
            out[start : start + r.shape[0]] = (right[c].to(left.dtype) * left[r]).sum(-1)
        return out
    work = left.dtype if left.dtype in (torch.float32, torch.float64) else torch.float32
    crow = torch.empty(n_rows + 1, dtype=torch.long, device=rows.device)
    crow[:-1] = _offsets(rows, n_rows, k)
    crow[-1] = rows.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        # zeros, not torch.empty: the CPU kernel multiplies them by beta=0, so garbage nan would propagate
        pattern = torch.sparse_csr_tensor(crow, cols, torch.zeros(cols.shape[0], dtype=work, device=cols.device), (n_rows, right.shape[0]))
        with wide_threads():
            out = torch.sparse.sampled_addmm(pattern, left.to(work), right.to(work).t(), beta=0.0).values()
    return out.to(left.dtype)


def _function_classes() -> tuple[Any, Any]:
    class GatherPreacts(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, shift: torch.Tensor | None, pre: torch.Tensor, codes: SparseCodes, order: ColumnOrder) -> torch.Tensor:
            ctx.save_for_backward(x, W_enc, codes.rows, codes.cols, order.perm, order.offsets, order.rows)
            ctx.n_rows, ctx.k = codes.n_rows, codes.k
            if codes.values.shape[0] == codes.cols.shape[0]:  # pre's values, from the top-k that chose them
                return codes.values.detach()
            if codes.k:
                return pre.gather(1, codes.cols.view(-1, codes.k)).view(-1)
            return pre[codes.rows, codes.cols]

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> Any:
            x, W_enc, rows, cols, perm, col_offsets, col_rows = ctx.saved_tensors
            d_sae = W_enc.shape[1]
            grad_x = grad_W = grad_b = grad_shift = None
            if ctx.needs_input_grad[0]:
                with wide_threads():
                    grad_x = F.embedding_bag(cols, W_enc.t().contiguous(), _offsets(rows, ctx.n_rows, ctx.k), mode="sum", per_sample_weights=grad.to(W_enc.dtype))
            if ctx.needs_input_grad[1]:
                # a transposed view, not a copy: autograd first adds the main and AuxK
                # contributions (in this layout), then copies once into W_enc's layout
                grad_W = _segment_sum_by_col(ColumnOrder(perm, col_offsets, col_rows), grad, x.to(W_enc.dtype)).t()
            if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
                grad_b = torch.zeros(d_sae, dtype=W_enc.dtype, device=grad.device).index_add_(0, cols, grad.to(W_enc.dtype))
            if ctx.needs_input_grad[3]:
                # x = x_raw - shift, so d/d shift = -sum_rows d/dx = -W_enc @ (per-feature
                # sum of grad) = -W_enc @ grad_b: one [d_in, d_sae] matvec instead
                # of a [n_rows, d_in] embedding bag over every entry
                grad_shift = -(W_enc @ grad_b)
            return grad_x, grad_W, grad_b if ctx.needs_input_grad[2] else None, grad_shift, None, None, None

    class SparseDecode(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, values: torch.Tensor, W_dec: torch.Tensor, codes: SparseCodes, order: ColumnOrder) -> torch.Tensor:
            ctx.save_for_backward(values, W_dec, codes.rows, codes.cols, order.perm, order.offsets, order.rows)
            ctx.k = codes.k
            if codes.k:
                with wide_threads():
                    return F.embedding_bag(codes.cols.view(-1, codes.k), W_dec, mode="sum", per_sample_weights=values.view(-1, codes.k).to(W_dec.dtype))
            offsets = codes.offsets()
            with wide_threads():
                return F.embedding_bag(codes.cols, W_dec, offsets, mode="sum", per_sample_weights=values.to(W_dec.dtype))

        @staticmethod
        def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
            values, W_dec, rows, cols, perm, col_offsets, col_rows = ctx.saved_tensors
            grad_out = grad_out.contiguous()
            grad_values = grad_W = None
            if ctx.needs_input_grad[0]:
                grad_values = _row_dots(rows, cols, grad_out, W_dec, grad_out.shape[0], ctx.k).to(values.dtype)
            if ctx.needs_input_grad[1]:
                grad_W = _segment_sum_by_col(ColumnOrder(perm, col_offsets, col_rows), values, grad_out)
            return grad_values, grad_W, None, None

    return GatherPreacts, SparseDecode


_classes: tuple[Any, Any] | None = None


def _fns() -> tuple[Any, Any]:
    global _classes
    if _classes is None:
        _classes = _function_classes()
    return _classes


def gather_preacts(
    x: "torch.Tensor", W_enc: "torch.Tensor", b_enc: "torch.Tensor", pre: "torch.Tensor", codes: SparseCodes,
    order: ColumnOrder | None = None, *, shift: "torch.Tensor | None" = None,
) -> "torch.Tensor":
    """``pre[codes.rows, codes.cols]`` where ``pre = x @ W_enc + b_enc`` was computed
    without autograd; gradients reach ``x``, ``W_enc`` and ``b_enc`` through the
    ``nnz`` chosen entries only. ``codes.values``, when given for every entry,
    must be ``pre``'s values there (the top-k that chose the entries returns
    them): they are used as they are, which saves a random-access gather from
    ``pre``. ``order`` is :func:`column_order` of ``codes`` (computed when omitted).

    ``shift``: ``x`` was computed (without autograd) as ``x_raw - shift`` (the
    SAE's ``b_dec`` subtracted from the input); its gradient is given to
    ``shift`` directly, without the per-row gradient of ``x``.
    """
    if order is None:
        order = column_order(codes, W_enc.shape[1])
    return _fns()[0].apply(x, W_enc, b_enc, shift, pre, codes, order)


def sparse_decode(codes: SparseCodes, W_dec: "torch.Tensor", order: ColumnOrder | None = None) -> "torch.Tensor":
    """``codes`` times ``W_dec`` (``[n_rows, d_out]``, no bias), with a sparse backward."""
    if order is None:
        order = column_order(codes, W_dec.shape[0])
    return _fns()[1].apply(codes.values, W_dec, codes, order)
