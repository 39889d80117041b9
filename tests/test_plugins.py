"""The plugin host: built-ins through hooks, failure isolation, duplicates, docs coverage."""

from __future__ import annotations

import inspect as pyinspect
import re
from pathlib import Path

import pytest

from saetool import hookspecs
from saetool.errors import PluginError
from saetool.hookspecs import hookimpl
from saetool.plugins import BUILTIN_PLUGINS, CATEGORIES, PluginHost

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [name for name, fn in vars(hookspecs).items() if pyinspect.isfunction(fn) and hasattr(fn, "saetool_spec")]


def test_every_category_has_a_hook_and_every_hook_a_category_or_firstresult():
    names = set(hook_names())
    assert set(CATEGORIES.values()) <= names
    assert names - set(CATEGORIES.values()) == {"load_sae"}


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


def test_firstresult_load_sae_hook():
    h = PluginHost(load_entry_points=False)
    h.register_plugin(Extra(), "extra")
    assert h.load_sae("x.extra", "cpu") == ("extra", "x.extra")
    assert h.load_sae("x.other", "cpu") is None


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
