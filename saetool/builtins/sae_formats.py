"""The ``sae`` artifact kind, SAE file formats and the ``export`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl
