"""Built-in interpret command, features artifact kind."""

from __future__ import annotations

from saetool.hookspecs import hookimpl  # noqa: F401
