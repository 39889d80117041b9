"""What a corpus source provides: an ordered stream of text documents."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator


class CorpusSource(ABC):
    """A registered corpus source, addressed on the CLI as ``--corpus NAME[:ARG]``.

    ``documents`` must yield the same documents in the same order every time
    it is called with the same arguments (``--resume`` relies on it).
    """

    name: str
    description: str

    @abstractmethod
    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        """Yield documents for ``arg`` (the part after ``NAME:``, or ``None``)."""

    def describe(self, arg: str | None) -> str:
        """A short description recorded in provenance."""
        return self.name if arg is None else f"{self.name}:{arg}"
