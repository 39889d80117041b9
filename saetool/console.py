"""The stderr console: everything human goes here, stdout carries data."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# Deferred imports: rich (about 0.1 s) loads with the first message; `saetool --version`, shell completion and library use print none.

_state = {"quiet": False, "verbose": False, "debug": False}


def configure(*, quiet: bool | None = None, verbose: bool | None = None, debug: bool | None = None) -> None:
    """Set the global verbosity flags (from the CLI's top-level options)."""
    for key, value in (("quiet", quiet), ("verbose", verbose), ("debug", debug)):
        if value is not None:
            _state[key] = value


def is_quiet() -> bool:
    return _state["quiet"]


def is_verbose() -> bool:
    return _state["verbose"]


def is_debug() -> bool:
    return _state["debug"] or os.environ.get("SAETOOL_DEBUG", "") not in ("", "0")


def no_color() -> bool:
    """``NO_COLOR`` is set to a non-empty value (https://no-color.org)."""
    return os.environ.get("NO_COLOR", "") != ""


@lru_cache(maxsize=1)
def stderr() -> "Console":
    """A rich console on stderr.

    With ``NO_COLOR`` set it writes no ANSI styling at all (no colour, and no
    bold or italic either), even when ``FORCE_COLOR`` is set too; otherwise rich
    decides from the terminal (and ``FORCE_COLOR``).
    """
    from rich.console import Console

    if no_color():
        return Console(stderr=True, highlight=False, no_color=True, color_system=None)
    return Console(stderr=True, highlight=False)


def log(message: str) -> None:
    """A status line on stderr, suppressed by ``--quiet``."""
    if not is_quiet():
        stderr().print(message)


def debug(message: str) -> None:
    """A line on stderr shown with ``--verbose`` or ``--debug`` only."""
    if is_verbose() or is_debug():
        stderr().print(f"[dim]{message}[/dim]")


def warn(message: str) -> None:
    """A warning on stderr (shown even with ``--quiet``)."""
    stderr().print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
