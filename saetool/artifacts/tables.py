"""Tables in HDF5: a pandas DataFrame as a group with one dataset per column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from saetool.artifacts.arrays import text_array

if TYPE_CHECKING:
    import pandas as pd

# Deferred imports: pandas only to read a table back (writers are handed a DataFrame), so importing this module stays light.


def write_table(group: "h5py.Group", table: "pd.DataFrame") -> None:
    """Each column of ``table`` as a dataset of ``group``: text as UTF-8 strings, integers as
    int64, other numbers as float64 (``saetool_dtype`` names the stored dtype)."""
    strings = h5py.string_dtype("utf-8")
    for col in table.columns:
        values = table[col].to_numpy()
        if values.dtype == object:
            group.create_dataset(col, data=text_array(values), dtype=strings)
        else:
            arr = values.astype(np.int64 if values.dtype.kind in "iu" else np.float64)
            group.create_dataset(col, data=arr).attrs["saetool_dtype"] = str(arr.dtype)


def read_table(group: Any) -> "pd.DataFrame":
    """The DataFrame :func:`write_table` stored in ``group``."""
    import pandas as pd

    return pd.DataFrame({k: (group[k].asstr()[()] if group[k].dtype.kind == "O" else group[k][()]) for k in group})
