"""The ``tracks`` artifact: tables as HDF5 groups of column datasets (layout in docs/artifacts.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import h5py
import numpy as np

from saetool.artifacts.arrays import text_array
from saetool.artifacts.store import ArtifactWriter, attr_value, open_artifact
from saetool.errors import ArtifactError

if TYPE_CHECKING:
    import pandas as pd

# Deferred imports: pandas loads only in read_tracks; validate_tracks_file runs inside `saetool inspect` and `audit` of
# any tracks file, which need no pandas.

KIND = "tracks"
SCHEMA_VERSION = 1
#: Tables every ``tracks`` file holds (text mode adds ``tokens``, ``prompts`` and, with --compare, ``compare``).
TABLES = ("tracks", "members", "events", "layers")


def write_tracks(path: str | Path, tables: Mapping[str, "pd.DataFrame"], *, attrs: Mapping[str, Any], provenance: dict[str, Any], overwrite: bool = False) -> Path:
    """Write ``tables`` (one group each, one dataset per column) and ``attrs`` (JSON when not a number or text)."""
    strings = h5py.string_dtype("utf-8")
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        for name, table in tables.items():
            group = fh.create_group(name)
            group.attrs["n_rows"] = len(table)
            for col in table.columns:
                values = table[col].to_numpy()
                if values.dtype == object or values.dtype.kind in "USb":
                    group.create_dataset(col, data=text_array(values), dtype=strings)
                else:
                    group.create_dataset(col, data=values.astype(np.int64 if values.dtype.kind in "iu" else np.float64))
        for key, value in attrs.items():
            fh.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)
    return Path(path)


def read_tracks(path: str | Path) -> tuple[dict[str, "pd.DataFrame"], dict[str, Any]]:
    """``(tables, attrs)`` of a ``tracks`` artifact (JSON attributes decoded)."""
    import pandas as pd

    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        tables = {
            name: pd.DataFrame({c: (fh[name][c].asstr()[()] if fh[name][c].dtype.kind == "O" else fh[name][c][()]) for c in fh[name]})
            for name in fh if isinstance(fh[name], type(fh["tracks"]))
        }
        attrs = {k: attr_value(v) for k, v in fh.attrs.items() if k != "provenance"}
    return tables, attrs


def validate_tracks_file(fh: Any, path: Path) -> None:
    """Every column of a table has the table's ``n_rows`` rows."""
    for name in fh:
        group = fh[name]
        n = group.attrs.get("n_rows")
        if n is None:
            continue
        for col in group:
            if group[col].shape[:1] != (int(n),):
                raise ArtifactError(f"{path}: {name}/{col} has {group[col].shape[0]} rows, not {int(n)}", hint="the file is damaged; rerun saetool track")
