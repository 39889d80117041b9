"""The artifact layer every stage reads and writes: HDF5 files with a kind,
a schema version and provenance, written atomically."""

from saetool.artifacts.kinds import ArtifactKind, get_kind
from saetool.artifacts.manifest import emit_manifest, resolve_input
from saetool.artifacts.provenance import build_provenance, file_sha256
from saetool.artifacts.store import Artifact, ArtifactWriter, open_artifact

__all__ = [
    "Artifact",
    "ArtifactKind",
    "ArtifactWriter",
    "build_provenance",
    "emit_manifest",
    "file_sha256",
    "get_kind",
    "open_artifact",
    "resolve_input",
]
