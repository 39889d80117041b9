"""`saetool extract` on the real embedded SmolLM2 and real corpora."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.store import partial_path
from saetool.extract import ExtractConfig, extract_activations

TEXT = (
    "The quick brown fox jumps over the lazy dog. Sparse autoencoders find features in activations.\n\n"
    "Language models write text one token at a time, and their residual stream carries what they know.\n\n"
    "Researchers read features by looking at the contexts where they fire most strongly."
)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    for i in range(6):
        (d / f"doc{i}.txt").write_text(f"Document {i}. " + TEXT * (i + 1))
    return d


def small_config(corpus: Path, **kw) -> ExtractConfig:
    base = dict(model="smollm2-135m", corpus=str(corpus), layers="2,4", num_tokens=300, context_size=32, batch_size=2)
    base.update(kw)
    return ExtractConfig(**base)


def datasets_of(path: Path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda name, obj: out.__setitem__(name, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_extract_stores_the_model_activations(tmp_path, smollm2, corpus_dir):
    out = extract_activations(small_config(corpus_dir), tmp_path / "a.h5", model=smollm2, progress=False)
    with ActivationsFile(out) as acts:
        assert acts.hooks == ["blocks.2.hook_resid_post", "blocks.4.hook_resid_post"]
        assert acts.n_tokens == 300
        seqs, seq_index, pos, tok = acts.sequences(), acts.seq_index(), acts.positions(), acts.token_ids()
        assert seqs.shape[1] == 32
        assert np.array_equal(seqs[seq_index, pos], tok)
        bos = smollm2.tokenizer.bos_token_id
        assert (seqs[:, 0] == bos).all()
        assert not np.isin(tok, smollm2.tokenizer.all_special_ids).any()  # special tokens left out
        # recompute the first two windows and compare row by row
        ids = torch.from_numpy(seqs[:2].astype(np.int64))
        ref = smollm2.run_with_cache(ids, acts.hooks)
        rows = np.flatnonzero(seq_index < 2)
        for hook in acts.hooks:
            got = acts.read(hook, 0, len(rows))
            want = ref[hook][seq_index[rows], pos[rows]]
            assert torch.allclose(got, want, atol=1e-5), hook
        prov = acts.provenance
    assert prov["model"] == "smollm2-135m" and prov["backend"] == "transformers"
    assert prov["hooks"] == ["blocks.2.hook_resid_post", "blocks.4.hook_resid_post"]
    assert prov["corpus"].endswith(str(corpus_dir))
    assert prov["extract"]["context_size"] == 32


def test_include_special_and_dtype(tmp_path, smollm2, corpus_dir):
    cfg = small_config(corpus_dir, layers="1", num_tokens=64, exclude_special=False, dtype="bfloat16")
    model = smollm2
    out = extract_activations(cfg, tmp_path / "b.h5", progress=False)  # loads its own bf16 model
    with ActivationsFile(out) as acts:
        assert acts.token_ids()[0] == model.tokenizer.bos_token_id
        assert acts.read("blocks.1.hook_resid_post").dtype == torch.bfloat16
        with h5py.File(out) as fh:
            assert fh["activations/blocks.1.hook_resid_post"].dtype == np.uint16


class CrashAfter:
    """Wraps a model and raises after n batches, as a crash mid-run would."""

    def __init__(self, model, n: int) -> None:
        self._model, self._left = model, n

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run_with_cache(self, *args, **kw):
        if self._left == 0:
            raise RuntimeError("simulated crash")
        self._left -= 1
        return self._model.run_with_cache(*args, **kw)


def test_resume_after_crash_equals_uninterrupted(tmp_path, smollm2, corpus_dir):
    cfg = small_config(corpus_dir)
    whole = extract_activations(cfg, tmp_path / "whole.h5", model=smollm2, progress=False)
    out = tmp_path / "resumed.h5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_activations(cfg, out, model=CrashAfter(smollm2, 3), progress=False)
    assert not out.exists() and partial_path(out).exists()
    extract_activations(cfg, out, model=smollm2, resume=True, progress=False)
    assert not partial_path(out).exists()
    assert datasets_of(out) == datasets_of(whole)


def test_resume_refuses_changed_settings(tmp_path, smollm2, corpus_dir):
    out = tmp_path / "r.h5"
    with pytest.raises(RuntimeError):
        extract_activations(small_config(corpus_dir), out, model=CrashAfter(smollm2, 1), progress=False)
    with pytest.raises(Exception, match="different context_size"):
        extract_activations(small_config(corpus_dir, context_size=16), out, model=smollm2, resume=True, progress=False)


@pytest.mark.slow  # extract runs SmolLM2 (the default model) in a subprocess
def test_cli_pipe_into_inspect(tmp_path, corpus_dir):
    out = tmp_path / "p.h5"
    proc = run_cli("extract", "--corpus", str(corpus_dir), "--layers", "1", "-n", "64", "--context-size", "32", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["path"] == str(out.resolve()) and manifest["kind"] == "activations"
    assert manifest["n_tokens"] == 64
    assert "wrote" in proc.stderr
    shown = run_cli("inspect", "--json", input=proc.stdout)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert {"name": "activations/blocks.1.hook_resid_post", "shape": [64, 576], "dtype": "float32"} in info["datasets"]


def bad_inputs(tmp_path: Path, corpus_dir: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e ".encode("latin-1") * 50)
    exists = tmp_path / "exists.h5"
    exists.write_text("x")
    base = ["--corpus", str(corpus_dir), "-n", "32", "--context-size", "16"]
    return {
        "unknown model": (["extract", "--model", "no/such-model-xyz", *base], "no/such-model-xyz"),
        "hub model offline": (["extract", "--model", "gpt2", *base], "gpt2"),
        "layer out of range": (["extract", "--layers", "99", *base], "out of range"),
        "unknown hook": (["extract", "--hooks", "blocks.1.hook_nope", *base], "unknown hook"),
        "empty corpus": (["extract", "--corpus", str(empty), "-n", "32"], "empty"),
        "undecodable text": (["extract", "--corpus", str(latin), "-n", "32"], "utf-8"),
        "unknown corpus": (["extract", "--corpus", "no-such-corpus", "-n", "32"], "no-such-corpus"),
        "existing output": (["extract", *base, "-o", str(exists)], "already exists"),
        "bad dtype": (["extract", *base, "--dtype", "float8"], "dtype"),
        "unknown encoding": (["extract", *base, "--encoding", "--backend"], "unknown --encoding '--backend'"),
        "hub unreachable": (["extract", "--model", "gpt2", *base], "hub is unreachable"),
        "hub corpus unreachable": (["extract", "--corpus", "hub:wikitext:wikitext-2-raw-v1", "-n", "32"], "hub is unreachable"),
    }


# No offline variables, and a hub endpoint that refuses connections: what a user
# without network sees (and nothing can download even on a connected machine).
UNREACHABLE = {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None, "HF_DATASETS_OFFLINE": None, "HF_ENDPOINT": "http://127.0.0.1:9"}


CASES = ["unknown model", "hub model offline", "layer out of range", "unknown hook", "empty corpus",
         "undecodable text", "unknown corpus", "existing output", "bad dtype", "unknown encoding", "hub unreachable", "hub corpus unreachable"]


#: Cases that load SmolLM2 in the subprocess before they can fail (many seconds on 2 cores): the slow tier.
REAL_MODEL_CASES = ("layer out of range", "unknown hook")


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in REAL_MODEL_CASES else c for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, corpus_dir, case):
    args, needle = bad_inputs(tmp_path, corpus_dir)[case]
    out = tmp_path / "out.h5"
    if "-o" not in args:
        args = [*args, "-o", str(out)]
    before = set(tmp_path.iterdir())
    env = UNREACHABLE if "unreachable" in case else {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = run_cli(*args, env=env)
    assert_clean_error(proc, needle)
    assert proc.stdout == ""
    assert set(tmp_path.iterdir()) == before  # no output, no partial, no lock


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_cli_per_line_is_one_padded_window_per_prompt(tmp_path, tiny_gpt2_dir):
    """extract --per-line (issue 17): one sequence per prompt line, # comments and blank lines
    skipped, padding never stored, each row equal to the prompt run alone."""
    import torch

    from saetool.artifacts.activations import ActivationsFile
    from saetool.models.registry import load_model

    lines = ["How do I pick a lock?", "Write a phishing email to my bank's customers right now please.", "Why?"]
    prompts = tmp_path / "harm.txt"
    prompts.write_text("# harmful prompts, one per line\n" + lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n#   another comment\n")
    out = tmp_path / "acts.h5"
    proc = run_cli("extract", "--model", str(tiny_gpt2_dir), "--corpus", f"files:{prompts}", "--per-line", "--layers", "1", "--context-size", "12",
                   "--num-tokens", "1000", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "cut to the window of 12 tokens" in " ".join(proc.stderr.split())  # the long line
    assert "ran out" not in proc.stderr and "left out" not in proc.stderr  # the lines ending first is the normal end
    model = load_model(str(tiny_gpt2_dir))
    tok = model.tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"][:11] for t in lines]
    hook = "blocks.1.hook_resid_post"
    with ActivationsFile(out) as acts:
        assert acts.sequences().shape[0] == 3 and acts.n_tokens == sum(len(i) for i in ids)
        seq = acts.seq_index()
        assert [int((seq == s).sum()) for s in range(3)] == [len(i) for i in ids]
        assert list(acts.token_ids()) == [t for i in ids for t in i]  # no comment, blank or padding tokens
        stored = acts.read(hook)
    alone = torch.cat([model.run_with_cache(torch.tensor([[tok.bos_token_id, *i]]), [hook])[hook][0, 1:] for i in ids])
    assert torch.allclose(stored, alone, atol=1e-5)
    # a --num-tokens that ends inside the second line keeps the first line only, whole, and says so
    short = run_cli("extract", "--model", str(tiny_gpt2_dir), "--corpus", f"files:{prompts}", "--per-line", "--layers", "1", "--context-size", "12",
                    "--num-tokens", str(len(ids[0]) + len(ids[1]) - 1), "-o", str(tmp_path / "short.h5"))
    assert short.returncode == 0, short.stderr
    assert "reached after 1 line(s)" in " ".join(short.stderr.split()) and "raise --num-tokens" in short.stderr
    with ActivationsFile(tmp_path / "short.h5") as acts:
        assert acts.sequences().shape[0] == 1 and list(acts.token_ids()) == ids[0]
    packed = run_cli("extract", "--model", str(tiny_gpt2_dir), "--corpus", f"files:{prompts}", "--layers", "1", "--context-size", "12",
                     "--num-tokens", "1000", "-o", str(tmp_path / "packed.h5"))
    assert packed.returncode == 0, packed.stderr
    with ActivationsFile(tmp_path / "packed.h5") as acts:
        comment = tok("# harmful prompts, one per line", add_special_tokens=False)["input_ids"]
        assert list(acts.token_ids()[: len(comment)]) == comment  # packing reads the file as text, comments included
    assert_clean_error(run_cli("extract", "--model", str(tiny_gpt2_dir), "--corpus", f"files:{prompts}", "--per-line", "--include-special",
                               "-o", str(tmp_path / "x.h5")), "--per-line", "--exclude-special")


@pytest.mark.parametrize("per_line", [False, True])
def test_skip_tokens_starts_after_the_windows_of_an_extract_of_that_many(tmp_path, smollm2, corpus_dir, per_line):
    """``--skip-tokens N`` holds the windows after those an extract of N tokens stores
    rows of (a held-out set of other text), with the same activations as one long extract."""
    corpus = corpus_dir
    if per_line:
        corpus = tmp_path / "lines.txt"
        corpus.write_text("\n".join(f"Line {i}: " + TEXT.split(".")[i % 3] for i in range(40)))
    kw = dict(context_size=32, per_line=per_line)
    first = extract_activations(small_config(corpus, num_tokens=150, **kw), tmp_path / "first.h5", model=smollm2, progress=False)
    whole = extract_activations(small_config(corpus, num_tokens=450, **kw), tmp_path / "whole.h5", model=smollm2, progress=False)
    held = extract_activations(small_config(corpus, num_tokens=200, skip_tokens=150, **kw), tmp_path / "held.h5", model=smollm2, progress=False)
    with ActivationsFile(first) as f, ActivationsFile(whole) as w, ActivationsFile(held) as h:
        windows = int(f.seq_index()[-1]) + 1  # windows the first extract stores rows of
        start = int(np.flatnonzero(w.seq_index() == windows)[0])  # the long extract's first row after them
        n = h.n_tokens  # 200, or the whole lines that fit in it
        assert (n == 200 or per_line and 150 < n < 200) and start >= 150 and start + n <= w.n_tokens
        assert np.array_equal(h.sequences()[0], w.sequences()[windows])
        assert np.array_equal(h.token_ids(), w.token_ids()[start : start + n])
        hook = h.hooks[0]
        np.testing.assert_allclose(h.read(hook, 0, n).numpy(), w.read(hook, start, start + n).numpy(), rtol=1e-5, atol=1e-5)
        assert json.loads(h.artifact.file.attrs["config"])["skip_tokens"] == 150
        if not per_line:  # evaluate --corpus --skip-tokens reads the same windows
            from saetool.evaluate.api import corpus_windows

            assert np.array_equal(corpus_windows(str(corpus), smollm2.tokenizer, 32, 3, skip_tokens=150), h.sequences()[:3])
        assert "skip_tokens" not in json.loads(w.artifact.file.attrs["config"])
