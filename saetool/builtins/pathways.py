"""Built-in pathways and transitions commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl  # noqa: F401
