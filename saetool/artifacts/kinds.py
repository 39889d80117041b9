"""Artifact kinds: what a ``saetool_kind`` means and which schema version is current."""

from __future__ import annotations

from dataclasses import dataclass, field

from saetool.errors import ArtifactError


@dataclass(frozen=True)
class ArtifactKind:
    """A kind of artifact file.

    ``required_datasets`` are HDF5 paths every file of this kind holds (a
    ``{hook}`` placeholder matches any member of that group); ``docs`` points
    to its section of ``docs/artifacts.md``.
    """

    name: str
    schema_version: int
    description: str
    required_datasets: tuple[str, ...] = field(default_factory=tuple)
    required_attrs: tuple[str, ...] = field(default_factory=tuple)


def get_kind(name: str) -> ArtifactKind:
    """The registered kind ``name``, or a clear error for an unknown one."""
    from saetool.plugins import host

    kinds = host().collect("artifact_kinds")
    if name not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise ArtifactError(
            f"unknown artifact kind {name!r}",
            hint=f"this saetool knows {known}; a plugin may provide it, or the file is from a newer saetool",
        )
    return kinds[name].obj
