"""The interfaces of an SAE file format: a reader (``register_sae_readers``)
and an exporter (``register_exporters``). saetool's own formats implement them
and are registered through those hooks like a plugin's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from saetool.sae.model import SAE


def format_folder(path: Path, filenames: tuple[str, ...]) -> Path:
    """The folder a path of a folder format names: itself, or the parent of one of its ``filenames``."""
    return path.parent if path.name in filenames and path.is_file() else path


class SAEReader:
    """Reads SAEs of one format: ``load_sae`` (every ``--sae``) asks each reader's
    :meth:`can_read` in turn and reads with the first that says yes."""

    name: str = ""
    #: What it reads, e.g. "SAELens folder (cfg.json + sae_weights.safetensors)";
    #: listed when no reader can read a path.
    description: str = ""

    def can_read(self, path: Path) -> bool:
        """Whether ``path`` is in this format; cheap (names, headers), loads no weights.
        ``path`` need not exist (a reader may resolve names of its own)."""
        raise NotImplementedError

    def read(self, path: Path, device: str) -> "SAE":
        """The inference SAE at ``path`` on ``device``; a one-line
        :class:`saetool.errors.SaetoolError` when it is corrupt or unsupported."""
        raise NotImplementedError


@dataclass(frozen=True)
class ExportSettings:
    """What ``saetool export`` passes to every exporter."""

    device: str = "cpu"  # where to load the SAE while converting
    model_name: str | None = None  # the model id to record, when the format has one
    set_name: str | None = None  # a name for the set this SAE belongs to (Neuronpedia's sae_set), when the format has one


class SAEExporter:
    """Writes an SAE (any path :func:`saetool.sae.io.load_sae` reads) as a folder
    in one format, for ``saetool export --format NAME``."""

    name: str = ""
    description: str = ""

    def check(self, sae: Path) -> None:
        """Refuse an input this format cannot take, before anything loads
        (one-line :class:`saetool.errors.SaetoolError`); accepts all by default."""

    def export(self, sae: Path, out: Path, settings: ExportSettings) -> str:
        """Write the folder ``out`` (it does not exist yet; saetool moves it into
        place once this returns) and return a short summary for the log."""
        raise NotImplementedError
