"""Built-in labelers (tokens, llm)."""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_labelers(register):
    from saetool.interpret.labelers import LLMLabeler, TokensLabeler

    register(TokensLabeler())
    register(LLMLabeler())
