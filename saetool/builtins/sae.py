"""Built-in SAE architectures and the ``train`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl
