"""Built-in labelers (tokens, llm) and label scorers (detection, fuzzing)."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_feature_labelers(register):
    from saetool.interpret.labelers import LLMLabeler, TokensLabeler

    register(TokensLabeler())
    register(LLMLabeler())


@hookimpl
def register_scorers(register):
    from saetool.interpret.scoring import DetectionScorer, FuzzingScorer

    register(DetectionScorer())
    register(FuzzingScorer())
