"""Built-in bench evals, the ``bench`` artifact kind and the ``bench`` command."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_bench_evals(register):
    from saetool.bench.absorption import AbsorptionEval
    from saetool.bench.autointerp import AutointerpEval
    from saetool.bench.core import CoreEval
    from saetool.bench.probing import ProbingEval
    from saetool.bench.stability import StabilityEval

    register(CoreEval())
    register(StabilityEval())
    register(ProbingEval())
    register(AbsorptionEval())
    register(AutointerpEval())


@hookimpl
def register_probe_datasets(register):
    from saetool.bench.probe_data import BbcNewsTopics
    from saetool.bench.sae_probes_data import builtin_tasks

    register(BbcNewsTopics())
    for task in builtin_tasks():
        register(task)


@hookimpl
def register_artifact_kinds(register):
    from saetool.bench.store import artifact_kind

    register(artifact_kind())


@hookimpl
def register_commands(register):
    from saetool.cli import bench_cmd

    register(bench_cmd.bench, name="bench")
