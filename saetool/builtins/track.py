"""Built-in track command and its ``tracks`` artifact kind."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_commands(register):
    from saetool.cli import track_cmd

    register(track_cmd.track, name="track")


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind

    def validate(fh, path):
        from saetool.track.store import validate_tracks_file

        validate_tracks_file(fh, path)

    register(
        ArtifactKind(
            name="tracks",
            schema_version=1,
            description="SAE features linked across layers: tracks (one feature per layer), their events, and per-layer counts",
            required_datasets=("tracks/id", "tracks/features", "members/track", "members/layer", "members/feature", "events/kind", "layers/layer"),
            required_attrs=("mode", "layers", "settings", "summary"),
            attrs={"layers": "json-list", "settings": "json-object", "summary": "json-object"},
            validate=validate,
        )
    )
