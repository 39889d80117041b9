"""Turning a ``--corpus`` spec into a registered source and its argument."""

from __future__ import annotations

import os
from typing import Iterator

from saetool.corpus.base import CorpusSource
from saetool.corpus.sources import FILE_EXTENSIONS
from saetool.errors import CorpusError
from saetool.plugins import host

__all__ = ["resolve_corpus", "iter_documents", "describe_corpus", "corpus_names"]


def _sources() -> dict[str, CorpusSource]:
    return {name: reg.obj for name, reg in host().collect("corpus_sources").items()}


def corpus_names() -> list[str]:
    """The names of every registered corpus source, sorted."""
    return sorted(_sources())


def resolve_corpus(spec: str) -> tuple[CorpusSource, str | None]:
    """``NAME``, ``NAME:ARG`` or a local path -> ``(source, arg)``.

    A registered name wins over a local path of the same name (write
    ``./NAME`` or ``files:NAME`` for the path). An empty argument
    (``NAME:``) is the same as none.
    """
    if spec is None or not str(spec).strip():
        raise CorpusError("empty --corpus", hint=f"give one of: {', '.join(corpus_names())}, or a path")
    spec = str(spec).strip()
    sources = _sources()
    name, sep, arg = spec.partition(":")
    if name in sources:
        return sources[name], (arg if sep and arg else None)
    if os.path.exists(os.path.expanduser(spec)):
        if "files" not in sources:
            raise CorpusError(f"cannot read path {spec!r}: no corpus source named 'files' is registered")
        return sources["files"], spec
    choices = ", ".join(sorted(sources)) or "none"
    if _looks_like_path(spec):
        raise CorpusError(
            f"no such file or folder: {spec!r}",
            hint=f"check the path, or choose a corpus: {choices}",
        )
    raise CorpusError(
        f"unknown corpus {name!r}",
        hint=f"choose one of: {choices} (as NAME or NAME:ARG), or give a path to local files",
    )


def _looks_like_path(spec: str) -> bool:
    lowered = spec.lower()
    return (
        "/" in spec
        or os.sep in spec
        or spec.startswith(("~", "."))
        or any(lowered.endswith(ext) for ext in (*FILE_EXTENSIONS, ".csv", ".tsv"))
    )


def iter_documents(spec: str, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
    """The documents of ``spec``, in the source's fixed order.

    Problems with the spec itself (unknown name, missing path, bad category)
    are raised by this call, before the first document is read.
    """
    source, arg = resolve_corpus(spec)
    return iter(source.documents(arg, text_column=text_column, encoding=encoding))


def describe_corpus(spec: str) -> str:
    """A short, stable description of ``spec`` for provenance (e.g. ``bbc-news:tech``)."""
    source, arg = resolve_corpus(spec)
    return source.describe(arg)
