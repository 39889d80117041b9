"""Built-in bench evals, the ``bench`` artifact kind and the ``bench`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_bench_evals(register):
    from saetool.bench.core import CoreEval
    from saetool.bench.stability import StabilityEval

    register(CoreEval())
    register(StabilityEval())


@hookimpl
def register_artifact_kinds(register):
    from saetool.bench.store import artifact_kind

    register(artifact_kind())


@hookimpl
def register_commands(register):
    from saetool.cli import bench_cmd

    register(bench_cmd.bench, name="bench")
