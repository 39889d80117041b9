"""The ``sae`` artifact kind, SAE file formats and the ``export`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind

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
        )
    )


@hookimpl
def register_commands(register):
    from saetool.cli import export_cmd

    register(export_cmd.export, name="export")
