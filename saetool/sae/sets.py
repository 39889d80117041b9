"""SAE sets: one ``sae-set`` index artifact that lists several SAEs (one per hook).

``saetool train --hooks ...`` writes a folder with one ``sae`` artifact per hook
and the index ``sae-set.h5`` beside them (``docs/artifacts.md``). Every command
that takes several SAEs expands a set (the index file or its folder) into its
members, in the index's order (:func:`expand_sae_paths`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py

from saetool.artifacts.store import ArtifactWriter, open_artifact, read_header
from saetool.artifacts.validate import json_attr
from saetool.errors import ArtifactError

KIND = "sae-set"
INDEX_NAME = "sae-set.h5"


@dataclass
class SetMember:
    """One SAE of a set: its hook (and layer), its file, shape and architecture."""

    hook: str
    path: Path
    arch: str
    d_in: int
    d_sae: int
    layer: int | None = None

    def to_record(self, folder: Path) -> dict[str, Any]:
        """The JSON record stored in the index (``path`` relative to the index's folder when inside it)."""
        record = asdict(self)
        p = Path(self.path).resolve()
        try:
            record["path"] = str(p.relative_to(folder.resolve()))
        except ValueError:
            record["path"] = str(p)
        return record


def member_file_name(arch: str, hook: str) -> str:
    """The file of one set member in the set's folder: ``sae-ARCH-HOOK.h5``, as a one-hook ``train`` names its output."""
    return f"sae-{arch}-{hook}.h5"


def write_sae_set(index: str | Path, members: Sequence[SetMember], *, model: str | None, provenance: dict[str, Any], overwrite: bool = False) -> Path:
    """Write the ``sae-set`` index ``index`` listing ``members`` (atomically)."""
    index = Path(index)
    records = [m.to_record(index.parent) for m in members]
    with ArtifactWriter(index, KIND, provenance, overwrite=overwrite) as writer:
        assert writer.file is not None
        writer.file.attrs.update({"saes": json.dumps(records), "hooks": json.dumps([m.hook for m in members]), "model": model or "", "n_saes": len(members)})
    return index


def index_of(path: str | Path) -> Path | None:
    """The ``sae-set`` index ``path`` names (the file itself, or ``DIR/sae-set.h5`` for a folder), or ``None``."""
    p = Path(path)
    candidate = p / INDEX_NAME if p.is_dir() else p
    if not candidate.is_file():
        return None

    try:
        return candidate if h5py.is_hdf5(candidate) and read_header(candidate)["saetool_kind"] == KIND else None
    except Exception:  # not an artifact at all
        return None


def read_sae_set(path: str | Path) -> list[SetMember]:
    """The members of the set at ``path`` (index file or folder), absolute paths, in stored order."""
    index = index_of(path)
    if index is None:
        raise ArtifactError(f"{path} is not an sae-set (no {INDEX_NAME} index)", hint="pass the folder `saetool train --hooks` wrote, or its sae-set.h5")
    with open_artifact(index, KIND) as art:
        records = json_attr(art.attrs["saes"], index, "saes", list)
    members = []
    for r in records:
        try:
            p = Path(r["path"])
            members.append(SetMember(hook=str(r["hook"]), path=p if p.is_absolute() else index.parent / p, arch=str(r["arch"]), d_in=int(r["d_in"]), d_sae=int(r["d_sae"]), layer=r.get("layer")))
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"{index}: an entry of `saes` is malformed ({str(r)[:80]})", hint="re-create the set with saetool train --hooks") from None
    return members


def expand_sae_paths(paths: Iterable[str | Path]) -> list[Path]:
    """``paths`` with every sae-set (index or folder) replaced by its members' files, in order."""
    out: list[Path] = []
    for p in paths:
        if index_of(p) is not None:
            out.extend(m.path for m in read_sae_set(p))
        else:
            out.append(Path(p))
    return out


def validate_sae_set_file(fh: Any, path: Path) -> None:
    """The ``saes`` attribute is a list of records naming hook, path, arch, d_in and d_sae."""
    records = json_attr(fh.attrs["saes"], path, "saes", list)
    for r in records:
        if not isinstance(r, dict) or not {"hook", "path", "arch", "d_in", "d_sae"} <= set(r):
            raise ArtifactError(f"{path}: an entry of `saes` lacks hook, path, arch, d_in or d_sae", hint="re-create the set with saetool train --hooks")
