"""Built-in artifact kinds (their layout is specified in docs/artifacts.md)."""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind

    register(
        ArtifactKind(
            name="activations",
            schema_version=1,
            description="Model activations at one or more hooks for a stream of corpus tokens",
            required_datasets=(
                "tokens/token_ids",
                "tokens/seq_index",
                "tokens/position",
                "sequences/token_ids",
            ),
            required_attrs=("context_size", "hooks", "n_tokens"),
        )
    )
