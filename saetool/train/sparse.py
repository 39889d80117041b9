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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

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
        import torch

        out = torch.zeros(self.n_rows, d_sae, dtype=self.values.dtype, device=self.values.device)
        out[self.rows, self.cols] = self.values.detach()
        return out

    def detach(self) -> "SparseCodes":
        return self.with_values(self.values.detach())


def topk_codes(idx: "torch.Tensor", values: "torch.Tensor | None" = None) -> SparseCodes:
    """Codes of a ``[n, k]`` index matrix (row-major); ``values`` default to empty."""
    import torch

    n, k = idx.shape
    rows = torch.arange(n, device=idx.device).repeat_interleave(k)
    vals = values.reshape(-1) if values is not None else torch.empty(0, device=idx.device)
    return SparseCodes(rows, idx.reshape(-1), vals, n, k)


def _offsets(rows: "torch.Tensor", n_rows: int, k: int | None = None) -> "torch.Tensor":
    """Start of each row's entries; ``k``: every row has exactly k."""
    import torch

    if k:
        return torch.arange(0, n_rows * k, k, device=rows.device)
    counts = torch.bincount(rows, minlength=n_rows)
    return torch.cumsum(counts, 0) - counts


def column_order(cols: "torch.Tensor", n_cols: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(perm, offsets)``: entries grouped by column (stable), and where each column starts."""
    import torch

    keys = cols.to(torch.int32) if n_cols < 2**31 else cols

    def order() -> tuple["torch.Tensor", "torch.Tensor"]:
        sorted_keys, perm = torch.sort(keys, stable=True)
        return perm, torch.searchsorted(sorted_keys, torch.arange(n_cols, dtype=keys.dtype, device=keys.device))

    if cols.device.type == "cpu" and torch.get_num_threads() > 1:
        # these ~1e5-element steps take a millisecond on one thread, but can stall
        # for a hundred waiting for a second one on a busy machine
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return order()
        finally:
            torch.set_num_threads(before)
    return order()


def _segment_sum_by_col(order: tuple["torch.Tensor", "torch.Tensor"], rows: "torch.Tensor", weights: "torch.Tensor", table: "torch.Tensor") -> "torch.Tensor":
    """``out[c] = sum_{e: cols[e] == c} weights[e] * table[rows[e]]``, shape ``[n_cols, table.shape[1]]``."""
    import torch.nn.functional as F

    perm, offsets = order
    return F.embedding_bag(rows[perm], table, offsets, mode="sum", per_sample_weights=weights[perm].to(table.dtype))


def _row_dots(rows: "torch.Tensor", cols: "torch.Tensor", left: "torch.Tensor", right: "torch.Tensor", n_rows: int, k: int | None = None) -> "torch.Tensor":
    """``out[e] = <left[rows[e]], right[cols[e]]>`` for ascending ``rows``: a sampled
    dense-dense matmul (``torch.sparse.sampled_addmm``), float32 inside."""
    import warnings

    import torch

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
        pattern = torch.sparse_csr_tensor(crow, cols, torch.zeros(cols.shape[0], dtype=work, device=cols.device), (n_rows, right.shape[0]))
        out = torch.sparse.sampled_addmm(pattern, left.to(work), right.to(work).t(), beta=0.0).values()
    return out.to(left.dtype)


def _function_classes() -> tuple[Any, Any]:
    import torch
    import torch.nn.functional as F

    class GatherPreacts(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, pre: torch.Tensor, codes: SparseCodes, order: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            ctx.save_for_backward(x, W_enc, codes.rows, codes.cols, *order)
            ctx.n_rows, ctx.k = codes.n_rows, codes.k
            if codes.k:
                return pre.gather(1, codes.cols.view(-1, codes.k)).view(-1)
            return pre[codes.rows, codes.cols]

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> Any:
            x, W_enc, rows, cols, perm, col_offsets = ctx.saved_tensors
            d_sae = W_enc.shape[1]
            grad_x = grad_W = grad_b = None
            if ctx.needs_input_grad[0]:
                grad_x = F.embedding_bag(cols, W_enc.t().contiguous(), _offsets(rows, ctx.n_rows, ctx.k), mode="sum", per_sample_weights=grad.to(W_enc.dtype))
            if ctx.needs_input_grad[1]:
                grad_W = _segment_sum_by_col((perm, col_offsets), rows, grad, x.to(W_enc.dtype)).t().contiguous()
            if ctx.needs_input_grad[2]:
                grad_b = torch.zeros(d_sae, dtype=W_enc.dtype, device=grad.device).index_add_(0, cols, grad.to(W_enc.dtype))
            return grad_x, grad_W, grad_b, None, None, None

    class SparseDecode(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, values: torch.Tensor, W_dec: torch.Tensor, codes: SparseCodes, order: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            ctx.save_for_backward(values, W_dec, codes.rows, codes.cols, *order)
            ctx.k = codes.k
            if codes.k:
                return F.embedding_bag(codes.cols.view(-1, codes.k), W_dec, mode="sum", per_sample_weights=values.view(-1, codes.k).to(W_dec.dtype))
            return F.embedding_bag(codes.cols, W_dec, codes.offsets(), mode="sum", per_sample_weights=values.to(W_dec.dtype))

        @staticmethod
        def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
            values, W_dec, rows, cols, perm, col_offsets = ctx.saved_tensors
            grad_out = grad_out.contiguous()
            grad_values = grad_W = None
            if ctx.needs_input_grad[0]:
                grad_values = _row_dots(rows, cols, grad_out, W_dec, grad_out.shape[0], ctx.k).to(values.dtype)
            if ctx.needs_input_grad[1]:
                grad_W = _segment_sum_by_col((perm, col_offsets), rows, values, grad_out)
            return grad_values, grad_W, None, None

    return GatherPreacts, SparseDecode


_classes: tuple[Any, Any] | None = None


def _fns() -> tuple[Any, Any]:
    global _classes
    if _classes is None:
        _classes = _function_classes()
    return _classes


def gather_preacts(x: "torch.Tensor", W_enc: "torch.Tensor", b_enc: "torch.Tensor", pre: "torch.Tensor", codes: SparseCodes, order: "tuple[torch.Tensor, torch.Tensor] | None" = None) -> "torch.Tensor":
    """``pre[codes.rows, codes.cols]`` where ``pre = x @ W_enc + b_enc`` was computed
    without autograd; gradients reach ``x``, ``W_enc`` and ``b_enc`` through the
    ``nnz`` chosen entries only. ``codes.values`` is ignored; ``order`` is
    :func:`column_order` of ``codes.cols`` (computed when omitted)."""
    if order is None:
        order = column_order(codes.cols, W_enc.shape[1])
    return _fns()[0].apply(x, W_enc, b_enc, pre, codes, order)


def sparse_decode(codes: SparseCodes, W_dec: "torch.Tensor", order: "tuple[torch.Tensor, torch.Tensor] | None" = None) -> "torch.Tensor":
    """``codes`` times ``W_dec`` (``[n_rows, d_out]``, no bias), with a sparse backward."""
    if order is None:
        order = column_order(codes.cols, W_dec.shape[0])
    return _fns()[1].apply(codes.values, W_dec, codes, order)
