"""Built-in artifact kinds (their layout is specified in docs/artifacts.md)."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.activations import validate_activations_file
    from saetool.artifacts.kinds import ArtifactKind, Rows

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
            attrs={"n_tokens": "count", "n_sequences": "count", "context_size": "positive", "hooks": "json-text-list", "config": "json-object"},
            datasets={
                "tokens/token_ids": Rows("n_tokens", 1, "int"),
                "tokens/seq_index": Rows("n_tokens", 1, "int"),
                "tokens/position": Rows("n_tokens", 1, "int"),
                "sequences/token_ids": Rows("n_sequences", 2, "int"),
                "activations/{hook}": Rows("n_tokens", 2, "float"),
            },
            validate=validate_activations_file,
        )
    )
