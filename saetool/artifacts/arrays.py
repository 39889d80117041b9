"""Storing torch tensors in HDF5, including bfloat16 (kept as its raw 16 bits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

if TYPE_CHECKING:
    import h5py
    import torch

# Deferred imports: torch only for the tensor conversions; the artifact kinds' validators (`saetool inspect`, `audit`) import this module and need numpy alone.

#: How each torch dtype name is stored, as (numpy dtype, ``saetool_dtype`` attribute).
STORAGE = {
    "float32": ("float32", "float32"),
    "float16": ("float16", "float16"),
    "bfloat16": ("uint16", "bfloat16"),
}


def to_storage(tensor: "torch.Tensor", dtype: str) -> "np.ndarray":
    """A tensor as the numpy array stored for ``dtype``."""
    import torch

    if dtype == "bfloat16":
        return tensor.to(torch.bfloat16).contiguous().view(torch.int16).cpu().numpy().view("uint16")
    return tensor.to(getattr(torch, dtype)).cpu().numpy()


def from_storage(array: "np.ndarray", stored_dtype: str, *, as_dtype: "torch.dtype | None" = None) -> "torch.Tensor":
    """The tensor back from a stored array (bfloat16 restored from its bits)."""
    import torch

    if stored_dtype == "bfloat16":
        tensor = torch.from_numpy(np.ascontiguousarray(array).view("int16")).view(torch.bfloat16)
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if as_dtype is None else tensor.to(as_dtype)


def create_rows_dataset(group: "h5py.Group", name: str, width: int | None, dtype: str, *, chunk_rows: int = 256) -> "h5py.Dataset":
    """A resizable ``[rows, width]`` (or ``[rows]``) dataset to append to."""
    np_dtype, attr = STORAGE.get(dtype, (dtype, dtype))
    shape = (0,) if width is None else (0, width)
    maxshape = (None,) if width is None else (None, width)
    chunks = (chunk_rows * 16,) if width is None else (chunk_rows, width)
    ds = group.create_dataset(name, shape=shape, maxshape=maxshape, dtype=np_dtype, chunks=chunks)
    ds.attrs["saetool_dtype"] = attr
    return ds


def append_rows(ds: "h5py.Dataset", rows: Any) -> None:
    start = ds.shape[0]
    ds.resize(start + len(rows), axis=0)
    ds[start:] = rows


#: HDF5 strings cannot hold NUL characters (a byte-level tokenizer can produce one): stored as U+2400.
NUL_SHOWN = "\u2400"


def text_array(values: "Iterable[object]") -> "np.ndarray":
    """Strings ready for an HDF5 UTF-8 dataset (``dtype=h5py.string_dtype()``): NUL shown as U+2400."""
    return np.array([str(v).replace("\x00", NUL_SHOWN) for v in values], dtype=object)


def read_rows(ds: "h5py.Dataset", index: "np.ndarray") -> "np.ndarray":
    """``ds[index]`` for any (unsorted, repeated) row indices, reading blocks of about 16 MB."""
    block = max(1, (1 << 22) // max(1, int(np.prod(ds.shape[1:]))))

    index = np.asarray(index, dtype=np.int64)
    out = np.empty((len(index),) + ds.shape[1:], dtype=ds.dtype)
    order = np.argsort(index, kind="stable")
    sorted_idx = index[order]
    start = 0
    while start < len(sorted_idx):
        lo = sorted_idx[start]
        stop = int(np.searchsorted(sorted_idx, lo + block, side="left"))
        hi = sorted_idx[stop - 1] + 1
        chunk = ds[lo:hi]
        out[order[start:stop]] = chunk[sorted_idx[start:stop] - lo]
        start = stop
    return out
