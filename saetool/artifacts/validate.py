"""What every artifact is checked for when it is opened, so no reader trusts a lying file.

For every kind: the ``saetool_kind``, ``schema_version`` and ``provenance``
attributes are well formed; the file holds no soft or external links, and a
virtual dataset reads only files beside the artifact; every ``saetool_dtype``
attribute names the dtype the data is really stored in. Then the kind's own
rules (:class:`~saetool.artifacts.kinds.ArtifactKind`): required attributes and
datasets, attribute types, each dataset's rank, dtype and row count (and that
the rows it declares are really stored), and the kind's ``validate`` function.
Every failure is one :class:`~saetool.errors.ArtifactError` naming the file and
the attribute or dataset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from saetool.artifacts.arrays import STORAGE
from saetool.errors import ArtifactError

if TYPE_CHECKING:
    from saetool.artifacts.kinds import ArtifactKind, Rows

HINT = "re-create it with the stage that wrote it"


def bad(path: Path, what: str) -> ArtifactError:
    """The one-line error for a file whose ``what`` is wrong."""
    return ArtifactError(f"{path} is not a valid saetool artifact: {what}", hint=HINT)


def text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


# -- attributes -----------------------------------------------------------------
def integer(value: Any, path: Path, name: str, *, minimum: int | None = None) -> int:
    """An integer attribute (a numpy integer, or a float with an integer value), at least ``minimum``."""
    value = text(value)
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok and isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value, ok = int(value), True
    if not ok:
        raise bad(path, f"attribute {name!r} is {_show(value)}, not an integer")
    if minimum is not None and int(value) < minimum:
        raise bad(path, f"attribute {name!r} is {int(value)}, expected at least {minimum}")
    return int(value)


def json_attr(value: Any, path: Path, name: str, kind: type | None = None) -> Any:
    """A JSON-text attribute parsed (and of type ``kind`` when given)."""
    value = text(value)
    if not isinstance(value, str):
        raise bad(path, f"attribute {name!r} is {_show(value)}, not JSON text")
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise bad(path, f"attribute {name!r} is not valid JSON ({_show(value)})") from None
    if kind is not None and not isinstance(parsed, kind):
        raise bad(path, f"attribute {name!r} is a JSON {type(parsed).__name__}, expected a {'list' if kind is list else 'object'}")
    return parsed


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def check_attr(fh: "h5py.File", path: Path, name: str, rule: str) -> Any:
    """The attribute ``name`` checked against ``rule`` (see :class:`ArtifactKind`)."""
    value = fh.attrs[name]
    if rule == "count":
        return integer(value, path, name, minimum=0)
    if rule == "positive":
        return integer(value, path, name, minimum=1)
    if rule == "integer":
        return integer(value, path, name)
    if rule == "number":  # a real number; NaN allowed (it stands for "not measured")
        value = value[()] if isinstance(value, np.ndarray) and value.shape == () else value
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
            raise bad(path, f"attribute {name!r} is {_show(text(value))}, not a number")
        return float(value)
    if rule == "text":
        if not isinstance(text(value), str):
            raise bad(path, f"attribute {name!r} is {_show(value)}, not text")
        return text(value)
    if rule == "json-object":
        return json_attr(value, path, name, dict)
    if rule in ("json-list", "json-text-list"):
        items = json_attr(value, path, name, list)
        if rule == "json-text-list" and not all(isinstance(i, str) and i for i in items):
            raise bad(path, f"attribute {name!r} must list non-empty names")
        return items
    raise ValueError(f"unknown attribute rule {rule!r}")


# -- links and datasets -----------------------------------------------------------
def check_links(fh: "h5py.File", path: Path) -> None:
    """Refuse soft and external links, and virtual datasets reading files other than those beside the artifact."""
    found: list[str] = []

    def visit(name: str, link: Any) -> Any:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{name} is an external link to {link.filename}:{link.path}")
        elif isinstance(link, h5py.SoftLink):
            found.append(f"{name} is a soft link to {link.path}")
        return True if found else None

    fh.visititems_links(visit)
    if found:
        raise bad(path, found[0] + " (saetool artifacts hold no links)")

    def datasets(name: str, obj: Any) -> Any:
        if isinstance(obj, h5py.Dataset) and obj.is_virtual:
            for source in obj.virtual_sources():
                p = PurePath(source.file_name)
                if source.file_name != "." and (p.is_absolute() or ".." in p.parts):
                    found.append(f"dataset {name} reads {source.file_name}, outside the artifact's folder")
                    return True
        return None

    fh.visititems(datasets)
    if found:
        raise bad(path, found[0])


def check_stored_dtypes(fh: "h5py.File", path: Path) -> None:
    """Every ``saetool_dtype`` attribute must name the dtype the dataset is stored in."""
    problems: list[str] = []

    def visit(name: str, obj: Any) -> Any:
        if not isinstance(obj, h5py.Dataset) or "saetool_dtype" not in obj.attrs:
            return None
        claimed = text(obj.attrs["saetool_dtype"])
        stored = STORAGE.get(claimed, (claimed, claimed))[0] if isinstance(claimed, str) else None
        if stored is None or stored != obj.dtype.name:
            problems.append(f"dataset {name} says saetool_dtype {_show(claimed)} but is stored as {obj.dtype.name}")
            return True
        return None

    fh.visititems(visit)
    if problems:
        raise bad(path, problems[0])


def check_dataset(fh: "h5py.File", path: Path, name: str, rule: "Rows", counts: dict[str, int]) -> None:
    """``name`` is a dataset of the rule's rank, dtype and row count, with every row really stored."""
    ds = fh.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise bad(path, f"{name} is a group, not a dataset")
    if rule.ndim is not None and (ds.ndim != rule.ndim or any(n < rule.min_width for n in ds.shape[1:])):
        wide = f" of width at least {rule.min_width}" if rule.ndim > 1 and rule.min_width else ""
        raise bad(path, f"dataset {name} has shape {list(ds.shape)}, expected {rule.ndim} dimension(s){wide}")
    kind = ds.dtype.kind
    if rule.dtype == "float" and not (kind == "f" or (kind == "u" and text(ds.attrs.get("saetool_dtype")) == "bfloat16")):
        raise bad(path, f"dataset {name} holds {ds.dtype} values, not floating-point numbers")
    if rule.dtype == "int" and kind not in "iu":
        raise bad(path, f"dataset {name} holds {ds.dtype} values, not integers")
    if rule.dtype == "number" and kind not in "biuf":
        raise bad(path, f"dataset {name} holds {ds.dtype} values, not numbers")
    if rule.dtype == "text" and h5py.check_string_dtype(ds.dtype) is None:
        raise bad(path, f"dataset {name} holds {ds.dtype} values, not text")
    if rule.rows is not None and rule.rows in counts and rule.rows != name and (not ds.ndim or ds.shape[0] != counts[rule.rows]):
        says = f"attribute {rule.rows!r} says" if rule.rows in fh.attrs else f"dataset {rule.rows} has"
        raise bad(path, f"{says} {counts[rule.rows]} rows but dataset {name} has {ds.shape[0] if ds.ndim else 'none (a scalar)'}")
    if not ds.is_virtual and ds.size and not _all_stored(ds):
        raise bad(path, f"dataset {name} declares {ds.shape[0]} rows but stores data for fewer")


def _all_stored(ds: "h5py.Dataset") -> bool:
    """Whether every element of ``ds`` was written (no unallocated chunks that read as fill values)."""
    if ds.chunks is None:
        return ds.id.get_storage_size() > 0
    needed = math.prod(-(-n // c) for n, c in zip(ds.shape, ds.chunks))
    return ds.id.get_num_chunks() >= needed


def _expand(fh: "h5py.File", pattern: str) -> list[str]:
    """``pattern`` with each ``{...}`` placeholder as the members of the group it stands in
    (``examples/{group}/values``: that dataset in every member of ``examples``)."""
    parts = pattern.split("/")
    at = next((i for i, part in enumerate(parts) if part.startswith("{")), None)
    if at is None:
        return [pattern]
    prefix = "/".join(parts[:at])
    members = fh.get(prefix) if prefix else fh
    if members is None or not hasattr(members, "keys"):
        return []
    return [name for m in members for name in _expand(fh, "/".join([*parts[:at], m, *parts[at + 1:]]))]


# -- the whole file ---------------------------------------------------------------------
def validate(fh: "h5py.File", path: Path, spec: "ArtifactKind") -> None:
    """Check ``fh`` (an artifact of kind ``spec``) as described in the module docstring."""
    check_links(fh, path)
    json_attr(fh.attrs.get("provenance", "{}"), path, "provenance", dict)
    if "complete" in fh.attrs and not isinstance(fh.attrs["complete"], (bool, np.bool_)):
        raise bad(path, f"attribute 'complete' is {_show(text(fh.attrs['complete']))}, not true or false")
    check_stored_dtypes(fh, path)
    for ds in spec.required_datasets:
        if "{" not in ds and ds not in fh:
            raise bad(path, f"it has no dataset {ds!r}, required for a {spec.name!r} artifact")
    for attr in spec.required_attrs:
        if attr not in fh.attrs:
            raise bad(path, f"it has no {attr!r} attribute, required for a {spec.name!r} artifact")
    counts = {}
    for name, rule in spec.attrs.items():
        if name in fh.attrs and isinstance(value := check_attr(fh, path, name, rule), int):
            counts[name] = value
    for rule in spec.datasets.values():  # a row count given by another dataset's length (``features/index``)
        if rule.rows is not None and rule.rows not in counts and isinstance(ds := fh.get(rule.rows), h5py.Dataset) and ds.ndim:
            counts[rule.rows] = ds.shape[0]
    for pattern, rule in spec.datasets.items():
        for name in _expand(fh, pattern):
            if name in fh:
                check_dataset(fh, path, name, rule, counts)
    if spec.validate is not None:
        spec.validate(fh, path)
