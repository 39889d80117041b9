"""The ``sae`` and ``sae-set`` artifact kinds, SAE readers and exporters (saetool, SAELens, sparsify, Gemma Scope 1 and 2,
Llama Scope, dictionary_learning) and the ``export`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind, Rows
    from saetool.sae.io import validate_sae_file
    from saetool.sae.sets import validate_sae_set_file

    register(
        ArtifactKind(
            name="sae",
            schema_version=1,
            description="A trained SAE: config, weights, training settings and per-step history",
            required_datasets=(
                "weights/W_enc",
                "weights/W_dec",
                "weights/b_enc",
                "weights/b_dec",
            ),
            required_attrs=("config",),
            attrs={"config": "json-object", "training": "json-object"},
            datasets={"weights/{name}": Rows(ndim=None, dtype="float"), "history/{column}": Rows(ndim=1, dtype="number")},
            validate=validate_sae_file,
        )
    )
    register(
        ArtifactKind(
            name="sae-set",
            schema_version=1,
            description="An index of several SAEs, one per hook (saetool train --hooks)",
            required_attrs=("saes", "hooks"),
            attrs={"saes": "json-list", "hooks": "json-text-list"},
            validate=validate_sae_set_file,
        )
    )


@hookimpl
def register_sae_readers(register):
    from saetool.sae.formats.dictionary_learning import DictionaryLearningReader
    from saetool.sae.formats.gemmascope import GemmaScope2Reader, GemmaScopeReader
    from saetool.sae.formats.llamascope import LlamaScopeReader
    from saetool.sae.formats.saelens import SAELensReader
    from saetool.sae.formats.sparsify import SparsifyReader
    from saetool.sae.io import SAEArtifactReader
    from saetool.sae.registry import PretrainedReader

    register(SAEArtifactReader())
    register(SAELensReader())
    register(SparsifyReader())
    register(GemmaScopeReader())
    register(GemmaScope2Reader())
    register(LlamaScopeReader())
    register(DictionaryLearningReader())
    register(PretrainedReader())  # last: a path that exists is always read as a path


@hookimpl
def register_exporters(register):
    from saetool.sae.formats.dictionary_learning import DictionaryLearningExporter
    from saetool.sae.formats.saelens import SAELensExporter
    from saetool.sae.formats.sparsify import SparsifyExporter

    register(SAELensExporter())
    register(SparsifyExporter())
    register(DictionaryLearningExporter())


@hookimpl
def register_commands(register):
    from saetool.cli import export_cmd, sae_cmd

    register(export_cmd.export, name="export")
    register(sae_cmd.app, name="sae")
