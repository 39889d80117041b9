"""Built-in SAE-quality metrics, evaluate and check commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl  # noqa: F401
