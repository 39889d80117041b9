"""The plugin module saetool loads through the ``saetool`` entry-point group.

It registers one corpus source, ``csv``: ``--corpus csv:path/to/file.csv``
reads one document per row from the column named by ``--text-column``
(default ``text``). The delimiter follows the file suffix: ``.csv`` is
comma-separated, ``.tsv``/``.tab`` tab-separated (optionally compressed, e.g.
``.csv.gz``). The file is read in chunks, so it is never held in memory whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from saetool.corpus.base import CorpusSource
from saetool.errors import CorpusError
from saetool.hookspecs import hookimpl

DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst"}
CHUNK_ROWS = 10_000


def delimiter_for(path: Path) -> str:
    """The field delimiter for ``path``, from its suffix (compression suffixes skipped)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in DELIMITERS:
        raise CorpusError(
            f"cannot tell the delimiter of {str(path)!r} from its suffix {suffix or '(none)'!r}",
            hint=f"name the file with one of: {', '.join(DELIMITERS)}",
        )
    return DELIMITERS[suffix]


class CsvSource(CorpusSource):
    """Rows of a CSV/TSV file, one document per row (arg: the file's path)."""

    name = "csv"
    description = "rows of a CSV/TSV file, one document per row (arg: a path; column from --text-column)"

    def _path(self, arg: str | None) -> Path:
        if arg is None or not arg.strip():
            raise CorpusError("the csv corpus needs a path", hint="give --corpus csv:path/to/file.csv")
        path = Path(os.path.expanduser(arg.strip()))
        if not path.is_file():
            raise CorpusError(f"no such CSV file: {str(path)!r}", hint="check the path after csv:")
        return path

    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        path = self._path(arg)
        sep = delimiter_for(path)
        column = text_column or "text"
        columns = self._read(path, sep, encoding, nrows=0).columns
        if column not in columns:
            raise CorpusError(
                f"{str(path)!r} has no column {column!r} (it has: {', '.join(map(str, columns)) or 'none'})",
                hint="choose one with --text-column",
            )
        return self._rows(path, sep, column, encoding)

    def _rows(self, path: Path, sep: str, column: str, encoding: str | None) -> Iterator[str]:
        chunks = self._read(
            path, sep, encoding, usecols=[column], dtype={column: str}, keep_default_na=False, chunksize=CHUNK_ROWS
        )
        with chunks as reader:
            while True:
                try:
                    chunk = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    raise self._decode_error(path, encoding, exc) from exc
                except Exception as exc:  # pandas ParserError and friends
                    raise CorpusError(
                        f"cannot parse {str(path)!r} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
                        hint="check that the file is well-formed CSV/TSV",
                    ) from exc
                for value in chunk[column]:
                    text = value.strip() if isinstance(value, str) else ""
                    if text:
                        yield text

    @staticmethod
    def _decode_error(path: Path, encoding: str | None, exc: UnicodeDecodeError) -> CorpusError:
        return CorpusError(
            f"cannot decode {str(path)!r} as {encoding or 'utf-8'} ({exc.reason} at byte {exc.start})",
            hint="give its encoding, e.g. --encoding latin-1",
        )

    def _read(self, path: Path, sep: str, encoding: str | None, **kwargs):
        import pandas as pd

        try:
            return pd.read_csv(path, sep=sep, encoding=encoding or "utf-8", **kwargs)
        except UnicodeDecodeError as exc:
            raise self._decode_error(path, encoding, exc) from exc
        except LookupError:
            raise CorpusError(f"unknown text encoding {encoding!r}", hint="use e.g. --encoding latin-1") from None
        except pd.errors.EmptyDataError:
            raise CorpusError(f"{str(path)!r} is empty (no header row)", hint="give a CSV file with a header row") from None
        except Exception as exc:
            raise CorpusError(
                f"cannot parse {str(path)!r} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
                hint="check that the file is well-formed CSV/TSV",
            ) from exc

    def describe(self, arg: str | None) -> str:
        if arg is None or not arg.strip():
            return self.name
        return f"{self.name}:{Path(os.path.expanduser(arg.strip())).resolve()}"


@hookimpl
def register_corpus_sources(register):
    register(CsvSource())
