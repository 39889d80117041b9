"""The plugin host: built-ins through hooks, failure isolation, duplicates, docs coverage."""

from __future__ import annotations

import inspect as pyinspect
import re
from pathlib import Path

import pytest

from saetool import hookspecs
from saetool.errors import PluginError
from saetool.hookspecs import hookimpl
from saetool.plugins import BUILTIN_PLUGINS, CATEGORIES, DEPRECATED_HOOKS, LOAD_SAE_HOOK, PluginHost

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [name for name, fn in vars(hookspecs).items() if pyinspect.isfunction(fn) and hasattr(fn, "saetool_spec")]


def test_every_category_has_a_hook_and_every_other_hook_is_deprecated():
    names = set(hook_names())
    assert set(CATEGORIES.values()) <= names
    assert names - set(CATEGORIES.values()) == set(DEPRECATED_HOOKS) | {LOAD_SAE_HOOK}


def test_builtins_register_through_the_hooks():
    h = PluginHost(load_entry_points=False)
    commands = h.collect("commands")
    assert {"extract", "inspect", "models", "plugins"} <= set(commands)
    assert all(reg.plugin in BUILTIN_PLUGINS for reg in commands.values())
    assert {"transformers", "transformer-lens"} <= set(h.collect("model_backends"))
    assert {"smollm2-135m", "gemma3-270m"} <= set(h.collect("models"))
    assert {"bbc-news", "kjv", "files", "hub"} <= set(h.collect("corpus_sources"))
    assert "activations" in h.collect("artifact_kinds")


class Broken:
    @hookimpl
    def register_corpus_sources(self, register):
        raise RuntimeError("boom")


class Extra:
    name = "extra-source"

    @hookimpl
    def register_corpus_sources(self, register):
        register(self)
        register(self, name="bbc-news")  # a duplicate of a built-in

    @hookimpl
    def load_sae(self, path, device):
        return ("extra", path) if path.endswith(".extra") else None


def test_a_raising_plugin_is_named_and_the_rest_still_work(capsys):
    h = PluginHost(load_entry_points=False)
    h.register_plugin(Broken(), "broken")
    h.register_plugin(Extra(), "extra")
    sources = h.collect("corpus_sources")
    err = capsys.readouterr().err
    assert "broken" in err and "boom" in err
    assert "extra-source" in sources and sources["extra-source"].plugin == "extra"
    assert sources["bbc-news"].plugin == "saetool.builtins.corpora"  # first registration kept
    assert "already provides" in err
    assert h.plugins["broken"].error == "RuntimeError: boom"


def test_sae_formats_are_registered_through_the_hooks():
    h = PluginHost(load_entry_points=False)
    readers = h.collect("sae_readers")
    assert list(readers) == ["checkpoint", "saetool", "saelens", "sparsify", "gemma-scope", "gemma-scope-2", "llama-scope", "dictionary-learning", "pretrained"]  # the order load_sae asks them
    assert all(reg.plugin in BUILTIN_PLUGINS and reg.description for reg in readers.values())
    assert set(h.collect("exporters")) == {"saelens", "sparsify", "dictionary-learning", "neuronpedia", "samples"}


def test_the_deprecated_load_sae_hook_becomes_a_reader(capsys):
    h = PluginHost(load_entry_points=False)
    h.register_plugin(Extra(), "extra")
    reader = h.collect("sae_readers")["extra:load_sae"].obj
    assert reader.read(Path("x.extra"), "cpu") == ("extra", "x.extra")
    assert reader.read(Path("x.other"), "cpu") is None
    assert "implements the deprecated hook load_sae" in capsys.readouterr().err


class OldStyle:
    """A plugin written for the hooks that served two interfaces each."""

    class Sae:
        name, scope = "old-sae-metric", "sae"

    class Completion:
        name = "old-completion-metric"  # no scope: a completion metric, as before

    class Positions:
        name, target = "old-positions", "positions"

    class Features:
        name = "old-features"

    class Odd:
        name, scope = "odd-metric", "tokens"

    @hookimpl
    def register_metrics(self, register):
        register(self.Sae())
        register(self.Completion())
        register(self.Odd())

    @hookimpl
    def register_labelers(self, register):
        register(self.Positions())
        register(self.Features())


def test_deprecated_hooks_are_split_by_scope_and_target_with_one_warning_each(capsys):
    h = PluginHost(load_entry_points=False)
    h.register_plugin(OldStyle(), "old")
    assert "old-sae-metric" in h.collect("sae_metrics") and "old-sae-metric" not in h.collect("completion_metrics")
    assert h.collect("completion_metrics")["old-completion-metric"].plugin == "old"
    assert "refusal" in h.collect("completion_metrics") and "mse" in h.collect("sae_metrics")
    assert set(h.collect("position_labelers")) >= {"old-positions"} and "old-positions" not in h.collect("feature_labelers")
    assert "old-features" in h.collect("feature_labelers") and "odd-metric" not in {**h.collect("sae_metrics"), **h.collect("completion_metrics")}
    err = capsys.readouterr().err
    assert err.count("deprecated hook register_metrics") == 1 and err.count("deprecated hook register_labelers") == 1
    assert "register_completion_metrics or register_sae_metrics" in err
    assert "register_feature_labelers or register_position_labelers" in err
    assert "scope='tokens'" in err  # neither interface: named and skipped


def test_unknown_name_lists_choices():
    h = PluginHost(load_entry_points=False)
    with pytest.raises(PluginError, match=r"unknown model backend 'nope'.*transformers"):
        h.get("model_backends", "nope")


def test_docs_document_every_hook():
    text = DOCS.read_text()
    for name in hook_names():
        assert re.search(rf"^##+ `{name}", text, re.M), f"docs/plugins.md has no section for hook {name}"


def test_docs_specify_every_artifact_kind():
    text = (Path(__file__).resolve().parents[1] / "docs" / "artifacts.md").read_text()
    for name, reg in PluginHost(load_entry_points=False).collect("artifact_kinds").items():
        assert re.search(rf"^### `{re.escape(name)}` \(schema {reg.obj.schema_version}\)", text, re.M), f"docs/artifacts.md does not specify kind {name}"
