"""Built-in SAE architectures, the ``train`` command, the training-checkpoint reader and the samples exporter."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_sae_architectures(register):
    from saetool.train.architectures import BUILTIN_ARCHITECTURES

    for arch in BUILTIN_ARCHITECTURES:
        register(arch)


@hookimpl
def register_commands(register):
    from saetool.cli import train_cmd

    register(train_cmd.train, name="train")


@hookimpl
def register_sae_readers(register):
    from saetool.train.checkpoint import CheckpointReader

    register(CheckpointReader())


@hookimpl
def register_exporters(register):
    from saetool.interpret.samples_view import SamplesExporter

    register(SamplesExporter())
