"""Tests for the saetool-csv example plugin (run from this folder; no install needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    import saetool_csv  # noqa: F401  (installed)
except ImportError:  # running from a checkout: use the package next to these tests
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saetool.corpus.base import CorpusSource
from saetool.errors import CorpusError
from saetool_csv import plugin
from saetool_csv.plugin import CsvSource, delimiter_for


@pytest.fixture
def source() -> CsvSource:
    return CsvSource()


def test_hook_registers_a_csv_corpus_source():
    from saetool.plugins import PluginHost

    host = PluginHost(load_entry_points=False)
    host.register_plugin(plugin, name="csv")
    regs = host.collect("corpus_sources")
    assert regs["csv"].plugin == "csv"
    assert isinstance(regs["csv"].obj, CorpusSource)
    assert "bbc-news" in regs  # built-ins still there


def test_reads_one_document_per_row(source, tmp_path):
    import pandas as pd

    path = tmp_path / "rows.csv"
    pd.DataFrame({"id": [1, 2, 3, 4], "text": ["first, with comma", "  ", "NA", "line\nbreak"]}).to_csv(path, index=False)
    assert list(source.documents(str(path))) == ["first, with comma", "NA", "line\nbreak"]
    assert list(source.documents(str(path))) == list(source.documents(str(path)))


def test_tsv_and_text_column(source, tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text("title\tbody\nA\tone, two\nB\tthree\n", encoding="utf-8")
    assert list(source.documents(str(path), text_column="body")) == ["one, two", "three"]
    assert delimiter_for(Path("x.tsv.gz")) == "\t"
    assert delimiter_for(Path("x.CSV")) == ","


def test_compressed_and_chunked(source, tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setattr(plugin, "CHUNK_ROWS", 3)
    path = tmp_path / "many.csv.gz"
    texts = [f"row {i}" for i in range(10)]
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    assert list(source.documents(str(path))) == texts


def test_missing_column_names_existing_ones(source, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("title,body\nA,x\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        source.documents(str(path))
    text = info.value.one_line()
    assert "'text'" in text and "title" in text and "body" in text and "--text-column" in text


def test_bad_encoding_suggests_latin1(source, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text\ncaf\u00e9 \u00a33\n".encode("latin-1"))
    with pytest.raises(CorpusError) as info:
        list(source.documents(str(path)))
    assert "latin.csv" in info.value.one_line() and "--encoding latin-1" in info.value.one_line()
    assert list(source.documents(str(path), encoding="latin-1")) == ["caf\u00e9 \u00a33"]


def test_path_errors(source, tmp_path):
    with pytest.raises(CorpusError, match="needs a path"):
        source.documents(None)
    with pytest.raises(CorpusError, match="no such CSV file"):
        source.documents(str(tmp_path / "missing.csv"))
    odd = tmp_path / "rows.dat"
    odd.write_text("text\nx\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="delimiter"):
        source.documents(str(odd))
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="empty"):
        source.documents(str(empty))
