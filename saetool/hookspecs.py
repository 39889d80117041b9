"""Every extension point saetool offers, in one place.

A plugin is a module (or object) with functions named like the hooks below and
decorated with :data:`hookimpl`. Registration hooks receive a ``register``
callback and call it once per thing they add; the object passed must have a
``name`` attribute (a short, unique, CLI-friendly string) unless a name is
given explicitly. saetool's own built-ins are registered through these same
hooks (see ``saetool/builtins/``). Third-party packages expose their plugin
module through the ``saetool`` entry-point group::

    [project.entry-points.saetool]
    my_plugin = "my_package.plugin"

``docs/plugins.md`` documents each hook with an example; a test checks that
every hook here appears there.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("saetool")
hookimpl = pluggy.HookimplMarker("saetool")

Register = Callable[..., None]


@hookspec
def register_model_backends(register: Register) -> None:
    """Add model backends: ``register(backend)``.

    A backend (see :class:`saetool.models.base.ModelBackendType`) turns a
    resolved model source into a :class:`saetool.models.base.HookedModel` that
    can run with TransformerLens-named hooks and generate with hooks applied.
    Built-ins: ``transformers``, ``transformer-lens``.
    """


@hookspec
def register_models(register: Register) -> None:
    """Add named models: ``register(model_spec)``.

    A :class:`saetool.models.source.ModelSpec` maps a short name (e.g.
    ``smollm2-135m``) to a way of building a Hugging Face model and tokenizer,
    plus the family and hub id TransformerLens knows it by. Built-ins: the
    embedded ``smollm2-135m`` and ``gemma3-270m``.
    """


@hookspec
def register_sae_architectures(register: Register) -> None:
    """Add SAE architectures: ``register(architecture)`` (used by ``train``)."""


@hookspec
def register_sae_readers(register: Register) -> None:
    """Add SAE readers: ``register(reader)`` (used by every ``--sae`` and ``export``).

    A :class:`saetool.sae.format_api.SAEReader` says whether it can read a
    path (``can_read(path)``, cheap, no weights loaded) and reads it into an
    inference SAE (``read(path, device)``). Third-party readers are asked before
    the built-ins: ``checkpoint``, ``saetool``, ``saelens``, ``sparsify``,
    ``gemma-scope``, ``gemma-scope-2``, ``llama-scope``, ``dictionary-learning``.
    """


@hookspec
def register_exporters(register: Register) -> None:
    """Add export formats: ``register(exporter)`` (used by ``export --format NAME``).

    A :class:`saetool.sae.format_api.SAEExporter` writes an SAE into a new
    folder. Built-ins: ``saelens``, ``sparsify``, ``dictionary-learning``, ``neuronpedia``
    (a ``features`` artifact as Neuronpedia dashboards), ``samples``.
    """


@hookspec
def register_feature_labelers(register: Register) -> None:
    """Add feature labelers: ``register(labeler)`` (used by ``interpret --labeler``).

    A :class:`saetool.interpret.records.Labeler` labels features from their
    examples. Built-ins: ``tokens``, ``llm``.
    """


@hookspec
def register_position_labelers(register: Register) -> None:
    """Add position labelers: ``register(labeler)`` (used by ``transitions --labeler``).

    A :class:`saetool.analysis.transitions_labelers.PositionLabeler` finds the
    token of a text where something happens. Built-ins: ``transition-words``,
    ``llm-transition``.
    """


@hookspec
def register_scorers(register: Register) -> None:
    """Add label scorers: ``register(scorer)`` (used by ``interpret --scorers``).

    A :class:`saetool.interpret.scoring.Scorer` asks a labeler's judge
    questions about a feature's windows and returns a balanced accuracy with
    its chance level and confidence interval. Built-ins: ``detection``,
    ``fuzzing``.
    """


@hookspec
def register_sae_metrics(register: Register) -> None:
    """Add SAE-quality metrics: ``register(metric)`` (used by ``evaluate`` and ``check``).

    A :class:`saetool.evaluate.metrics.SAEMetric` accumulates over
    reconstruction or language-model batches. Built-ins: ``mse``, ``fvu``,
    ``l0``, ``ce_loss_recovered``, ...
    """


@hookspec
def register_bench_evals(register: Register) -> None:
    """Add bench evals: ``register(eval)`` (used by ``bench --evals``).

    A :class:`saetool.bench.base.BenchEval` measures one SAE at a time and
    describes each number with a metric card. Built-ins: ``core``,
    ``stability``, ``probing``, ``absorption``, ``autointerp``.
    """


@hookspec
def register_probe_datasets(register: Register) -> None:
    """Add labelled text sets for ``bench``'s ``probing`` eval: ``register(dataset)``.

    A :class:`saetool.bench.probe_data.ProbeDataset` yields ``(text, class)``
    pairs; the eval probes each class against the others. Built-ins: ``bbc-news``, and five
    tasks of the ``sae-probes`` package (``sae-probes-spam-is``, ...; :mod:`saetool.bench.sae_probes_data`).
    """


@hookspec
def register_completion_metrics(register: Register) -> None:
    """Add completion metrics: ``register(metric)`` (used by ``steer`` and ``sweep``).

    A :class:`saetool.steer.metrics.Metric` scores generated completions.
    Built-ins: ``refusal``, ``helpfulness``, ``coherence``, ``sentiment``.
    """


@hookspec
def register_interventions(register: Register) -> None:
    """Add steering interventions: ``register(intervention)`` (used by ``steer``)."""


@hookspec
def register_corpus_sources(register: Register) -> None:
    """Add corpus sources: ``register(source)``.

    A :class:`saetool.corpus.base.CorpusSource` yields text documents for a
    ``--corpus NAME[:ARG]`` spec. Built-ins: ``bbc-news`` (default), ``kjv``,
    ``files`` (local .txt/.jsonl/.parquet), ``hub`` (a hub dataset, online).
    """


@hookspec
def register_artifact_kinds(register: Register) -> None:
    """Add artifact kinds: ``register(kind)``.

    An :class:`saetool.artifacts.kinds.ArtifactKind` names a ``saetool_kind``,
    its current ``schema_version`` and the datasets it must hold, so readers
    can validate files of that kind.
    """


@hookspec
def register_commands(register: Register) -> None:
    """Add CLI subcommands: ``register(function_or_typer_app, name=None)``.

    A function becomes ``saetool NAME``; a :class:`typer.Typer` becomes a
    command group. Keep imports inside the command body so ``saetool --help``
    stays fast.
    """


# -- deprecated: still accepted from plugins, with a warning ------------------------
@hookspec
def register_labelers(register: Register) -> None:
    """Deprecated: use :func:`register_feature_labelers` or
    :func:`register_position_labelers`. Each labeler goes where its ``target``
    (``"features"``, the default, or ``"positions"``) says."""


@hookspec
def register_metrics(register: Register) -> None:
    """Deprecated: use :func:`register_sae_metrics` or
    :func:`register_completion_metrics`. Each metric goes where its ``scope``
    (``"completions"``, the default, or ``"sae"``) says."""


@hookspec(firstresult=True)
def load_sae(path: str, device: str) -> Any:
    """Deprecated: use :func:`register_sae_readers`. Return an inference SAE
    for ``path``, or ``None``; asked before the built-in readers."""
