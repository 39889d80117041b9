"""Built-in corpus sources."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_corpus_sources(register):
    from saetool.corpus.sources import BUILTIN_SOURCES

    for source in BUILTIN_SOURCES:
        register(source)
