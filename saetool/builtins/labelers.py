"""Built-in labelers (tokens, llm)."""

from __future__ import annotations

from saetool.hookspecs import hookimpl  # noqa: F401
