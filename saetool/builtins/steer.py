"""Built-in steering interventions, completion metrics, and the ``steer``/``sweep`` commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl
