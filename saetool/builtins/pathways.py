"""Built-in pathways and transitions commands, their artifact kinds, and the transition (position) labelers."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_commands(register):
    from saetool.cli import pathways_cmd, transitions_cmd

    register(pathways_cmd.pathways, name="pathways")
    register(transitions_cmd.transitions, name="transitions")


@hookimpl
def register_position_labelers(register):
    from saetool.analysis.transitions_labelers import BUILTIN_POSITION_LABELERS

    for labeler in BUILTIN_POSITION_LABELERS:
        register(labeler)


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind

    register(
        ArtifactKind(
            name="pathways",
            schema_version=1,
            description="Upstream SAE features that drive target features: attribution, predicted and replayed change per edge",
            required_datasets=("edges/source", "edges/target", "edges/predicted", "edges/actual", "targets/name"),
            required_attrs=("settings", "correlation", "saes"),
        )
    )
    register(
        ArtifactKind(
            name="transitions",
            schema_version=1,
            description="Negative-to-positive transition texts, the labeled transition tokens, and SAE features there",
            required_datasets=("texts", "position", "activations", "common/feature", "common/count", "common/share"),
            required_attrs=("metrics", "hook", "labeler", "settings"),
        )
    )
