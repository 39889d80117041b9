"""Built-in corpus sources."""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_corpus_sources(register):
    from saetool.corpus.sources import BUILTIN_SOURCES

    for source in BUILTIN_SOURCES:
        register(source)
