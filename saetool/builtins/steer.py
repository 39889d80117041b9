"""Built-in steering interventions, completion metrics, and the ``steer``/``sweep`` commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_interventions(register):
    from saetool.steer.interventions import BUILTIN_INTERVENTIONS

    for intervention in BUILTIN_INTERVENTIONS:
        register(intervention)


@hookimpl
def register_completion_metrics(register):
    from saetool.steer.metrics import BUILTIN_METRICS

    for metric in BUILTIN_METRICS:
        register(metric)


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind, Rows

    register(
        ArtifactKind(
            name="vector",
            schema_version=1,
            description="A steering vector at one hook, with how it was made and the activation norm there",
            required_datasets=("vector",),
            required_attrs=("hook", "method", "d"),
            attrs={"d": "positive", "hook": "text", "method": "text", "details": "json-object", "model": "text", "layer": "integer", "norm": "number", "resid_norm_mean": "number"},
            datasets={"vector": Rows("d", 1, "float"), "means/{which}": Rows("d", 1, "float")},
        )
    )
    register(
        ArtifactKind(
            name="completions",
            schema_version=1,
            description="Prompts with baseline and/or steered completions, per-completion metrics and settings",
            required_datasets=("prompts", "completions/{condition}"),
            required_attrs=("conditions", "settings"),
        )
    )


@hookimpl
def register_commands(register):
    from saetool.cli import steer_cmd, sweep_cmd

    register(steer_cmd.steer, name="steer")
    register(steer_cmd.vector_app, name="vector")
    register(sweep_cmd.sweep, name="sweep")
