"""Built-in select, tokens and audit commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl  # noqa: F401
