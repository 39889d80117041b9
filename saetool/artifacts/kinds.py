"""Artifact kinds: what a ``saetool_kind`` means, which schema version is current,
and what a file of that kind must hold (checked by :mod:`saetool.artifacts.validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from saetool.errors import ArtifactError
from saetool.plugins import host

if TYPE_CHECKING:
    from pathlib import Path

    import h5py

@dataclass(frozen=True)
class Rows:
    """A dataset of ``rows`` rows (an attribute name, e.g. ``n_tokens``, or another
    dataset whose length it shares, e.g. ``features/index``), ``ndim``
    dimensions (None: any; the others at least ``min_width`` wide), of ``dtype``
    ``float``, ``int``, ``number``, ``text`` or ``any``."""

    rows: str | None = None
    ndim: int | None = 1
    dtype: str = "any"
    min_width: int = 1


@dataclass(frozen=True)
class ArtifactKind:
    """A kind of artifact file.

    ``required_datasets`` are HDF5 paths every file of this kind holds (a
    ``{hook}`` placeholder matches any member of that group); ``attrs`` maps
    attribute names to a rule (``count``, ``positive``, ``integer``, ``number``, ``text``,
    ``json-object``, ``json-list``, ``json-text-list``); ``datasets`` maps dataset paths (``{hook}``
    as above) to a :class:`Rows` shape rule; ``validate(file, path)`` checks the
    rest, raising :class:`~saetool.errors.ArtifactError`. All run when a file
    is opened, so readers can trust what they read.
    """

    name: str
    schema_version: int
    description: str
    required_datasets: tuple[str, ...] = field(default_factory=tuple)
    required_attrs: tuple[str, ...] = field(default_factory=tuple)
    attrs: Mapping[str, str] = field(default_factory=dict)
    datasets: Mapping[str, Rows] = field(default_factory=dict)
    validate: "Callable[[h5py.File, Path], None] | None" = None


def get_kind(name: str) -> ArtifactKind:
    """The registered kind ``name``, or a clear error for an unknown one."""
    kinds = host().collect("artifact_kinds")
    if not isinstance(name, str) or name not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise ArtifactError(
            f"unknown artifact kind {name!r}",
            hint=f"this saetool knows {known}; a plugin may provide it, or the file is from a newer saetool",
        )
    return kinds[name].obj
