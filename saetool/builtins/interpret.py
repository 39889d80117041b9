"""Built-in interpret command, features command group, features artifact kind, Neuronpedia exporter."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_artifact_kinds(register):
    from saetool.interpret.store import artifact_kind

    register(artifact_kind())


@hookimpl
def register_commands(register):
    from saetool.cli import features_cmd, interpret_cmd

    register(interpret_cmd.interpret, name="interpret")
    register(features_cmd.app, name="features")


@hookimpl
def register_exporters(register):
    from saetool.interpret.neuronpedia import NeuronpediaExporter

    register(NeuronpediaExporter())
