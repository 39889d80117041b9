"""Errors the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class SaetoolError(Exception):
    """A problem with the user's input or environment.

    The message names what is wrong and what to do about it; the CLI prints it
    on one line and exits with :attr:`exit_code`, with no traceback unless
    ``--debug`` is given.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}; {hint}")

    def one_line(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class ConfigError(SaetoolError):
    """A setting of a config dataclass has a bad value.

    The message names settings by field, backticked (``"`sparsity_coeff` must be
    ..."``); a command built from the config (:mod:`saetool.cli.config_options`)
    puts its flags in their place (``--l1-coeff``).
    """


class ArtifactError(SaetoolError):
    """An artifact file is missing, corrupt, of the wrong kind or too new."""


class ModelError(SaetoolError):
    """A model cannot be found, loaded or hooked as asked."""


class CorpusError(SaetoolError):
    """A corpus cannot be read, decoded or is empty."""


class PluginError(SaetoolError):
    """A plugin name is unknown or a plugin is misbehaving."""


def did_you_mean(value: object, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the choice closest to ``value``, or None when none is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else None
