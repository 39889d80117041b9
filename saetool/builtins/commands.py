"""Built-in CLI commands, registered through the ``register_commands`` hook."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_commands(register):
    from saetool.cli import artifacts_cmd, doctor_cmd, extract_cmd, models_cmd, plugins_cmd

    register(extract_cmd.extract, name="extract")
    register(artifacts_cmd.inspect, name="inspect")
    register(models_cmd.app, name="models")
    register(plugins_cmd.app, name="plugins")
    register(doctor_cmd.doctor, name="doctor")
