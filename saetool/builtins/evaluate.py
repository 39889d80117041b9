"""Built-in SAE-quality metrics, and the ``evaluate`` and ``check`` commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_sae_metrics(register):
    from saetool.evaluate.metrics import BUILTIN_SAE_METRICS

    for metric in BUILTIN_SAE_METRICS:
        register(metric)


@hookimpl
def register_commands(register):
    from saetool.cli import check_cmd, evaluate_cmd

    register(evaluate_cmd.evaluate, name="evaluate")
    register(check_cmd.check, name="check")
