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

    A :class:`saetool.models.registry.ModelSpec` maps a short name (e.g.
    ``smollm2-135m``) to a way of building a Hugging Face model and tokenizer,
    plus the family and hub id TransformerLens knows it by. Built-ins: the
    embedded ``smollm2-135m`` and ``gemma3-270m``.
    """


@hookspec
def register_sae_architectures(register: Register) -> None:
    """Add SAE architectures: ``register(architecture)`` (used by ``train``)."""


@hookspec
def register_labelers(register: Register) -> None:
    """Add feature labelers: ``register(labeler)`` (used by ``interpret``)."""


@hookspec
def register_scorers(register: Register) -> None:
    """Add label scorers: ``register(scorer)`` (used by ``interpret --scorers``).

    A :class:`saetool.interpret.scoring.Scorer` asks a labeler's judge
    questions about a feature's windows and returns a balanced accuracy with
    its chance level and confidence interval. Built-ins: ``detection``,
    ``fuzzing``.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Add metrics: ``register(metric)`` (used by ``evaluate`` and ``sweep``)."""


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


@hookspec(firstresult=True)
def load_sae(path: str, device: str) -> Any:
    """Load an SAE stored at ``path`` in a foreign format, or return ``None``.

    The first plugin that recognises the path returns an inference SAE; saetool
    tries this hook before its own formats.
    """
