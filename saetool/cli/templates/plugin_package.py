'''The files of a new plugin package (``saetool plugins new NAME``).

Keys are paths inside the package folder, values the files' text. In both,
these placeholders are replaced (see ``saetool.cli.scaffold``):

``__NAME__``     the plugin's name (entry point, corpus source), e.g. ``my-corpus``
``__DIST__``     the distribution's name, e.g. ``saetool-my-corpus``
``__PACKAGE__``  the import package, e.g. ``saetool_my_corpus``
``__CLASS__``    a class-name stem, e.g. ``MyCorpus``
``__SAETOOL__``  the saetool requirement, e.g. ``saetool>=0.1``
'''

FILES: dict[str, str] = {}

FILES["pyproject.toml"] = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "A saetool plugin: the `__NAME__` corpus source (one document per line of a text file)."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["__SAETOOL__"]

[project.optional-dependencies]
test = ["pytest>=8"]

# saetool finds the plugin through this entry point. Its name (`__NAME__`) is the
# plugin's name in `saetool plugins` and in SAETOOL_LOAD_PLUGINS.
[project.entry-points.saetool]
__NAME__ = "__PACKAGE__.plugin"

[tool.setuptools]
packages = ["__PACKAGE__"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""

FILES["README.md"] = """\
# __DIST__

A [saetool](https://pypi.org/project/saetool/) plugin. It adds one corpus
source, `__NAME__`, that reads a text file with one document per non-empty
line:

```bash
pip install -e .                 # in this folder
saetool plugins                  # lists the plugin `__NAME__` and its corpus source
saetool extract --corpus __NAME__:notes.txt --layers 15 --num-tokens 4096 -o acts.h5
```

`--encoding` sets the file's text encoding (default UTF-8).

## How it plugs in

`pyproject.toml` declares the entry point saetool looks for:

```toml
[project.entry-points.saetool]
__NAME__ = "__PACKAGE__.plugin"
```

and `__PACKAGE__/plugin.py` implements the `register_corpus_sources` hook.
Change it, or add other hooks (one per interface: `register_model_backends`,
`register_models`, `register_sae_architectures`, `register_sae_readers`,
`register_exporters`, `register_feature_labelers`, `register_position_labelers`,
`register_scorers`, `register_sae_metrics`, `register_completion_metrics`,
`register_interventions`, `register_artifact_kinds`, `register_commands`):
saetool's plugin author's guide (`docs/plugins.md`) describes every one.
`SAETOOL_LOAD_PLUGINS=__NAME__` loads only this plugin,
`SAETOOL_LOAD_PLUGINS=""` none.

## Tests

```bash
python -m pytest                 # in this folder; works before `pip install` too
```
"""

FILES[".gitignore"] = """\
__pycache__/
*.egg-info/
build/
dist/
.pytest_cache/
"""

FILES["__PACKAGE__/__init__.py"] = '''\
"""__DIST__: a saetool plugin adding the ``__NAME__`` corpus source."""

__version__ = "0.1.0"
'''

FILES["__PACKAGE__/plugin.py"] = '''\
"""The module saetool loads through the ``saetool`` entry-point group.

It registers one corpus source, ``__NAME__``: ``--corpus __NAME__:path/to/notes.txt``
reads a text file and yields one document per non-empty line, in file order
(the same order every time, which ``saetool extract --resume`` relies on).

Keep imports of heavy libraries (torch, transformers) inside functions:
``saetool --help`` imports every plugin module and must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from saetool.corpus.base import CorpusSource
from saetool.errors import CorpusError
from saetool.hookspecs import hookimpl


class __CLASS__Source(CorpusSource):
    """One document per non-empty line of a text file (arg: the file's path)."""

    name = "__NAME__"
    description = "one document per non-empty line of a text file (arg: its path)"

    def documents(self, arg: str | None, *, text_column: str = "text", encoding: str | None = None) -> Iterator[str]:
        # Check the argument now, so a bad one fails before any model is loaded.
        if arg is None or not arg.strip():
            raise CorpusError("the __NAME__ corpus needs a path", hint="give --corpus __NAME__:path/to/file.txt")
        path = Path(arg.strip()).expanduser()
        if not path.is_file():
            raise CorpusError(f"no such file: {str(path)!r}", hint="check the path after __NAME__:")
        try:
            "".encode(encoding or "utf-8")
        except LookupError:
            raise CorpusError(f"unknown text encoding {encoding!r}", hint="use e.g. --encoding latin-1") from None
        return self._lines(path, encoding or "utf-8")

    @staticmethod
    def _lines(path: Path, encoding: str) -> Iterator[str]:
        try:
            with path.open(encoding=encoding) as f:
                for line in f:
                    text = line.strip()
                    if text:
                        yield text
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"cannot decode {str(path)!r} as {encoding} ({exc.reason} at byte {exc.start})",
                hint="give its encoding, e.g. --encoding latin-1",
            ) from exc

    def describe(self, arg: str | None) -> str:
        """What provenance records: the file's absolute path."""
        if arg is None or not arg.strip():
            return self.name
        return f"{self.name}:{Path(arg.strip()).expanduser().resolve()}"


@hookimpl
def register_corpus_sources(register):
    register(__CLASS__Source())
'''

FILES["tests/test_plugin.py"] = '''\
"""Tests for __DIST__. Run `python -m pytest` in the package folder (no install needed)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from __PACKAGE__ import plugin
from __PACKAGE__.plugin import __CLASS__Source
from saetool.corpus.base import CorpusSource
from saetool.errors import CorpusError
from saetool.plugins import PluginHost, reset_host


def test_the_hook_registers_the_corpus_source():
    host = PluginHost(load_entry_points=False)
    host.register_plugin(plugin, name="__NAME__")
    regs = host.collect("corpus_sources")
    assert regs["__NAME__"].plugin == "__NAME__"
    assert isinstance(regs["__NAME__"].obj, CorpusSource)
    assert "bbc-news" in regs  # saetool's built-in sources are still there


def test_one_document_per_non_empty_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("first line\\n\\n  second line  \\nthird\\n", encoding="utf-8")
    source = __CLASS__Source()
    assert list(source.documents(str(path))) == ["first line", "second line", "third"]
    assert list(source.documents(str(path))) == list(source.documents(str(path)))  # same order every time
    assert source.describe(str(path)) == f"__NAME__:{path.resolve()}"


def test_encoding(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\\u00e9\\n".encode("latin-1"))
    source = __CLASS__Source()
    with pytest.raises(CorpusError, match="--encoding latin-1"):
        list(source.documents(str(path)))
    assert list(source.documents(str(path), encoding="latin-1")) == ["caf\\u00e9"]
    with pytest.raises(CorpusError, match="unknown text encoding"):
        source.documents(str(path), encoding="no-such-encoding")


def test_bad_arguments_are_one_line_errors(tmp_path):
    source = __CLASS__Source()
    with pytest.raises(CorpusError, match="needs a path"):
        source.documents(None)
    with pytest.raises(CorpusError, match="no such file") as info:
        source.documents(str(tmp_path / "missing.txt"))
    assert "\\n" not in info.value.one_line()


def test_saetool_loads_it_through_the_entry_point_once_installed(tmp_path, monkeypatch):
    found = [ep for ep in entry_points(group="saetool") if ep.name == "__NAME__"]
    if not found:
        pytest.skip("not installed: run `pip install -e .` to test the entry point")
    assert found[0].value == "__PACKAGE__.plugin"
    monkeypatch.delenv("SAETOOL_LOAD_PLUGINS", raising=False)
    reset_host()
    try:
        from saetool.corpus.resolve import iter_documents

        path = tmp_path / "two.txt"
        path.write_text("hello\\nworld\\n", encoding="utf-8")
        assert list(iter_documents(f"__NAME__:{path}")) == ["hello", "world"]
    finally:
        reset_host()
'''
