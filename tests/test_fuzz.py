"""Property-based tests (hypothesis): artifact round-trips and CLI argument parsing.

The numbers of examples are recorded in docs/errors.md ("Fuzzing"); keep them in
step when changing ``max_examples`` (a test below checks).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import REPO
from saetool.artifacts import ArtifactWriter, open_artifact
from saetool.artifacts.arrays import append_rows, create_rows_dataset, from_storage, to_storage
from saetool.artifacts.manifest import read_manifests
from saetool.artifacts.store import partial_path
from saetool.errors import SaetoolError

EXAMPLES = {"tensors": 200, "integers": 100, "provenance": 200, "completions": 150, "cli": 600, "manifests": 300, "write-failures": 80, "outputs": 300,
            "lying-activations": 250, "lying-saes": 150, "lying-features": 150, "lying-selections": 100, "lying-vectors": 100}
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

FLOAT_DTYPES = ["float32", "float16", "bfloat16"]


def required_layout(w: ArtifactWriter) -> None:
    """The (empty) datasets and attributes an ``activations`` artifact must have, so open_artifact accepts it."""
    w.file.attrs.update({"hooks": "[]", "n_tokens": 0, "context_size": 4})
    create_rows_dataset(w.file, "tokens/token_ids", None, "int32")
    create_rows_dataset(w.file, "tokens/seq_index", None, "int64")
    create_rows_dataset(w.file, "tokens/position", None, "int32")
    create_rows_dataset(w.file, "sequences/token_ids", 4, "int32")


def bits(t: torch.Tensor) -> np.ndarray:
    """Exact bit patterns (NaN-safe equality)."""
    view = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}[t.dtype]
    return t.contiguous().view(view).numpy()


floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, -0.0, 1e38, -3.4e38, 65504.0, 1e-45, 6e-8])


@st.composite
def tensors(draw):
    rows = draw(st.integers(0, 40))
    width = draw(st.integers(1, 6))
    values = draw(st.lists(floats, min_size=rows * width, max_size=rows * width))
    return torch.tensor(values, dtype=torch.float32).reshape(rows, width)


@settings(max_examples=EXAMPLES["tensors"], **FAST)
@given(x=tensors(), dtype=st.sampled_from(FLOAT_DTYPES), split=st.floats(0, 1))
def test_tensor_rows_roundtrip_bit_exact(tmp_path_factory, x, dtype, split):
    """Rows appended in two parts and read back are bit-identical to the cast tensor
    (zero rows, inf, nan, -0.0, subnormals, values that overflow float16)."""
    path = tmp_path_factory.mktemp("t") / "a.h5"
    cut = int(split * len(x))
    with ArtifactWriter(path, "activations", {"fuzz": True}) as w:
        required_layout(w)
        ds = create_rows_dataset(w.file, "rows", x.shape[1], dtype)
        for part in (x[:cut], x[cut:]):
            if len(part):
                append_rows(ds, to_storage(part, dtype))
    assert not partial_path(path).exists()
    with open_artifact(path) as art:
        ds = art["rows"]
        back = from_storage(ds[()], ds.attrs["saetool_dtype"])
    expected = x.to(getattr(torch, dtype))
    assert back.dtype == expected.dtype and tuple(back.shape) == tuple(x.shape)
    assert np.array_equal(bits(back), bits(expected))


@settings(max_examples=EXAMPLES["integers"], **FAST)
@given(dtype=st.sampled_from(["int32", "int64", "uint16", "int8"]), data=st.data())
def test_integer_rows_roundtrip(tmp_path_factory, dtype, data):
    info = np.iinfo(dtype)
    values = data.draw(st.lists(st.integers(int(info.min), int(info.max)), max_size=300))
    path = tmp_path_factory.mktemp("i") / "a.h5"
    with ArtifactWriter(path, "activations", {}) as w:
        required_layout(w)
        ds = create_rows_dataset(w.file, "ids", None, dtype)
        append_rows(ds, np.asarray(values, dtype=dtype))
    with open_artifact(path) as art:
        back = from_storage(art["ids"][()], art["ids"].attrs["saetool_dtype"])
    assert back.numpy().dtype == np.dtype(dtype) and back.tolist() == values


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=EXAMPLES["provenance"], **FAST)
@given(provenance=st.dictionaries(st.text(max_size=10), json_values, max_size=6), note=st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_provenance_and_text_attributes_roundtrip(tmp_path_factory, provenance, note):
    """Any JSON provenance (unicode, empty strings, NUL, huge ints) and any text
    attribute (HDF5 attributes cannot hold NUL) come back unchanged."""
    path = tmp_path_factory.mktemp("p") / "a.h5"
    with ArtifactWriter(path, "vector", provenance) as w:
        w.file["vector"] = np.zeros(3, dtype="float32")
        w.file.attrs.update({"hook": "blocks.0.hook_resid_post", "method": "import", "d": 3})
        w.file.attrs["note"] = note
    with open_artifact(path, kind="vector") as art:
        assert art.provenance == json.loads(json.dumps(provenance))
        got = art.attrs["note"]
        assert (got.decode() if isinstance(got, bytes) else got) == note


@settings(max_examples=EXAMPLES["completions"], **FAST)
@given(
    rows=st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30), st.floats(width=64)), max_size=6),
    split=st.one_of(st.none(), st.text(max_size=5)),
)
def test_completions_roundtrip(tmp_path_factory, rows, split):
    """Prompts and completions of any unicode (a generated NUL is stored as U+2400),
    and any metric value (nan, inf, huge) round-trip through a completions artifact."""
    from saetool.artifacts.arrays import NUL_SHOWN
    from saetool.steer.completions import read_completions, write_completions

    path = tmp_path_factory.mktemp("c") / "c.h5"
    prompts = [r[0] for r in rows]
    texts = {"baseline": [r[1] for r in rows], "steered": [r[1][::-1] for r in rows]}
    values = [r[2] for r in rows]
    write_completions(path, prompts=prompts, splits=[split] * len(rows), texts=texts, metrics={"steered": {"m": values}}, provenance={}, error="bad\x00")
    back = read_completions(path)
    shown = lambda xs: [x.replace("\x00", NUL_SHOWN) for x in xs]  # noqa: E731
    assert back.prompts == shown(prompts)
    assert back.texts == {k: shown(v) for k, v in texts.items()}
    got = back.metrics["steered"]["m"]
    assert len(got) == len(values) and all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, values))


# -- the command line ----------------------------------------------------------------------
COMMANDS = [
    ["extract"], ["train"], ["export"], ["steer"], ["sweep"], ["inspect"], ["models"], ["plugins"],
    ["vector", "from-sae"], ["vector", "diff-means"], ["vector", "words"], ["vector", "import"], ["vector"],
]


def _options() -> dict[str, list[str]]:
    from saetool.cli.reference import context, root_command

    root = root_command()
    found = {}
    for path in COMMANDS:
        cmd, ctx = root, context(root, "saetool")
        for name in path:
            cmd = cmd.get_command(ctx, name)
            ctx = context(cmd, name, ctx)
        found[" ".join(path)] = sorted({o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")})
    return found


OPTIONS = _options()
VALUES = st.sampled_from(
    ["0", "-1", "1", "3", "99999999999999999999", "1e309", "nan", "-inf", "0.5", "", " ", "-", "--", "all", "none", "float8",
     "cuda:9", "mps", "blocks.99.hook_nope", "topk", "nope", "x" * 300, "é😀", "a,b,,c", "2-1", "-3--1",
     "missing.h5", "garbage.h5", "emptydir", "file.txt/sub.h5", "/proc/x.h5", "{}", "[", "key: [1"]
) | st.text(max_size=12)


@st.composite
def argv(draw):
    path = draw(st.sampled_from(COMMANDS))
    names = OPTIONS[" ".join(path)] + ["--help", "--nope", "-Z", "--debug", "-q", "-v"]
    args: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            args += [draw(st.sampled_from(names)), draw(VALUES)]
        elif kind == 1:
            args.append(draw(st.sampled_from(names)))
        else:
            args.append(draw(VALUES))
    # a missing input for every stage that would otherwise run: parsing and validation are fuzzed, never a model
    guard = {"train": ["missing.h5"], "export": ["missing.h5"], "inspect": ["missing.h5"], "steer": ["--prompts", "missing.txt"],
             "sweep": ["missing.yaml"], "vector from-sae": ["missing.h5"], "vector import": ["missing.npy"],
             "vector diff-means": ["--positive", "missing.txt", "--negative", "missing.txt"]}
    return [*path, *args, *guard.get(" ".join(path), [])]


class ModelLoadingDisabled(Exception):
    pass


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Run in a folder with a few bad files; loading a model or installing a package is refused."""
    import saetool.models.registry as registry
    from saetool.errors import SaetoolError

    (tmp_path / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nothing piped in

    def refuse(*a, **k):
        raise SaetoolError("fuzz: model loading is disabled")

    monkeypatch.setattr(registry, "load_model", refuse)
    return tmp_path


@pytest.mark.slow  # 600 hypothesis examples through the whole CLI
def test_cli_arguments_never_crash(sandbox):
    from saetool.cli.main import main
    from saetool.console import _state

    seen = {"runs": 0, "codes": {}}

    @settings(max_examples=EXAMPLES["cli"], **FAST)
    @given(args=argv())
    def check(args):
        _state.update(quiet=False, verbose=False, debug=False)
        if "plugins" in args and "new" in args:
            return
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main([a for a in args if a != "--debug"])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        text = err.getvalue()
        seen["runs"] += 1
        seen["codes"][code] = seen["codes"].get(code, 0) + 1
        assert "Traceback" not in text, (args, text)
        assert "internal error" not in text, (args, text)
        assert code in (0, 2), (args, code, text)
        if code == 2:
            lines = [line for line in text.splitlines() if line.strip()]
            assert lines and lines[-1].startswith("error:"), (args, text)
            assert sum(line.startswith("error:") for line in lines) == 1, (args, text)

    check()
    assert seen["runs"] >= EXAMPLES["cli"] // 2 and seen["codes"].get(2, 0) > 0, seen


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def manifests(draw):
    """A manifest line: mostly an object with a (maybe bad) path and kind, sometimes any JSON at all."""
    if draw(st.integers(0, 4)) == 0:
        return json.dumps(draw(json_values))
    record = draw(st.dictionaries(st.sampled_from(["hooks", "n_tokens", "model"]), json_values, max_size=2))
    path = draw(st.sampled_from(["ACTS", "MISSING", "DIR", "", "/dev/null", "x" * 300]) | json_values)
    if draw(st.booleans()) or path == "ACTS":
        record["path"] = path
    if draw(st.booleans()):
        record["kind"] = draw(st.sampled_from(["activations", "sae", "saelens", "", "nope"]) | json_values)
    return json.dumps(record)


def test_malformed_manifests_are_one_clear_error(tmp_path):
    """Whatever JSON arrives on stdin, a stage either follows a manifest naming an
    existing path of the kind it says, or stops with one of two one-line errors."""
    from saetool.train.synthetic import write_activations

    acts = tmp_path / "acts.h5"
    write_activations(acts, {"h": torch.zeros(4, 2)}, context_size=2)
    names = {"ACTS": str(acts), "MISSING": str(tmp_path / "gone.h5"), "DIR": str(tmp_path)}
    seen = {"ok": 0, "refused": 0}

    @settings(max_examples=EXAMPLES["manifests"], **FAST)
    @given(line=manifests())
    def check(line):
        for key, value in names.items():
            line = line.replace(f'"{key}"', json.dumps(value))
        try:
            records = read_manifests(io.StringIO(line + "\n"))
        except SaetoolError as exc:
            seen["refused"] += 1
            assert "\n" not in exc.one_line()
            assert exc.message.startswith(("the upstream manifest on stdin is malformed (", "stdin is not a saetool manifest")), exc.message
            return
        seen["ok"] += 1
        (record,) = records
        assert isinstance(record["path"], str) and os.path.exists(record["path"])
        assert record.get("kind", "activations") == "activations" or record["path"] != str(acts)

    check()
    assert seen["ok"] and seen["refused"], seen


WRITE_FAILURES = ["write", "flush", "freed", "fsync"]


@settings(max_examples=EXAMPLES["write-failures"], **FAST)
@given(batches=st.integers(1, 6), fail_at=st.integers(0, 6), how=st.sampled_from(WRITE_FAILURES), keep=st.booleans())
def test_a_failed_write_is_never_committed(tmp_path_factory, monkeypatch, batches, fail_at, how, keep):
    """ENOSPC at any point of an artifact's life (a write, a flush, an error h5py can only
    report while freeing an object, the final fsync): one line naming the output, nothing left."""
    import errno
    import os
    import sys

    import saetool.artifacts.store as store
    from saetool.artifacts import files
    from saetool.errors import ArtifactError

    d = tmp_path_factory.mktemp("wf")
    out = d / "a.h5"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    hooks = (sys.unraisablehook, sys.excepthook)

    def fail_fsync(path):
        raise full

    fails = how == "fsync" or fail_at < batches
    with monkeypatch.context() as m:
        if how == "fsync":
            m.setattr(store, "fsync_path", fail_fsync)
        try:
            with ArtifactWriter(out, "activations", {}, keep_partial_on_error=keep) as w:
                required_layout(w)
                ds = create_rows_dataset(w.file, "rows/h", 4, "float32")
                for i in range(batches):
                    if i == fail_at and how == "write":
                        raise OSError(errno.ENOSPC, "Can't synchronously write data (errno = 28)")
                    if i == fail_at and how == "freed":
                        u = type("U", (), {"exc_type": RuntimeError, "exc_value": RuntimeError("Can't close dataset (file write failed: errno = 28)"), "exc_traceback": None, "err_msg": None, "object": "h5py._objects.ObjectID.__dealloc__"})
                        sys.unraisablehook(u)
                    if i == fail_at and how == "flush":
                        m.setattr(type(w.file).__mro__[1], "flush", lambda self: (_ for _ in ()).throw(full))
                    append_rows(ds, np.ones((3, 4), np.float32))
                    w.flush()
        except ArtifactError as exc:
            assert fails, exc
            assert exc.one_line() == f"no space left on device writing {out}; free space or choose another --output"
        else:
            assert not fails
    while files._ABANDONED:  # a simulated error: the file itself is fine to close
        files._ABANDONED.pop().close()
    assert (sys.unraisablehook, sys.excepthook) == hooks
    names = sorted(p.name for p in d.iterdir())
    assert names == ([] if fails else ["a.h5"]), names
    if not fails:
        with open_artifact(out) as art:
            assert art["rows/h"].shape == (3 * batches, 4)


ALIASES = ["a", "./a", "sub/../a", "link", "hard", "b", "new", "./new", "sub/../new", "other"]


@pytest.fixture(scope="module")
def alias_dir(tmp_path_factory):
    import os

    d = tmp_path_factory.mktemp("aliases")
    (d / "a").write_text("a")
    (d / "b").write_text("b")
    (d / "sub").mkdir()
    (d / "link").symlink_to("a")
    os.link(d / "a", d / "hard")
    return d


def _identity(d, name):
    """What a name really is: the inode of an existing file, else its normalised path."""
    import os

    p = os.path.join(d, name)
    return os.stat(p).st_ino if os.path.exists(p) else os.path.normpath(p)


@settings(max_examples=EXAMPLES["outputs"], **FAST)
@given(outs=st.lists(st.sampled_from(ALIASES), min_size=1, max_size=4), ins=st.lists(st.sampled_from(["a", "b", "./b", "link", None, "-", "kjv"]), max_size=3))
def test_outputs_never_name_an_input_or_each_other(alias_dir, outs, ins):
    """Any mix of spellings of the same file (./, .., a symlink, a hard link): refused
    exactly when an output is an input or two outputs are one file."""
    from saetool.artifacts.outputs import check_outputs
    from saetool.errors import ArtifactError

    d = alias_dir
    in_ids = {_identity(d, i) for i in ins if i not in (None, "-", "kjv")}
    out_ids = [_identity(d, o) for o in outs]
    clash = any(o in in_ids for o in out_ids) or len(set(out_ids)) < len(out_ids)
    try:
        check_outputs([(f"-o{k}", d / o) for k, o in enumerate(outs)], [None if i in (None, "-", "kjv") else d / i for i in ins] + ["kjv"], overwrite=True)
    except ArtifactError as exc:
        assert clash, exc
        assert ("is also an input" in str(exc)) or ("name the same file" in str(exc))
    else:
        assert not clash, (outs, ins)


HOOK = "blocks.1.hook_resid_post"
ACT_ATTRS = ["n_tokens", "n_sequences", "context_size", "hooks", "config", "provenance", "schema_version", "saetool_kind", "complete"]
ACT_DATASETS = ["tokens/token_ids", "tokens/seq_index", "tokens/position", "sequences/token_ids", f"activations/{HOOK}"]
attr_values = (
    st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([0, -1, 10**9, 10**10, 1e9, float("nan"), float("inf"), True, "", "one", "[]", "{}", "null", "[1, 2]", f'["{HOOK}"]', '{"model": 1}', "not json{"])
    | st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)  # h5py cannot store NUL in a string attribute
    | st.lists(st.integers(-3, 3), min_size=1, max_size=3).map(np.array)
)


@st.composite
def arrays(draw):
    """An array of any rank (0-3), small sizes (0 included) and any of several dtypes, strings too."""
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    dtype = draw(st.sampled_from(["float32", "float16", "int32", "int64", "uint16", "bool", "S3"]))
    return np.zeros(shape, dtype=dtype) if dtype != "S3" else np.full(shape, b"abc", dtype="S3")


@st.composite
def mutations(draw, attrs, datasets):
    """1-3 changes to a valid artifact: an attribute set to anything, a dataset replaced by
    any array, a soft, dangling or external link, a lying ``saetool_dtype``, a dataset
    resized to 1e10 rows, or a weight full of NaN."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["attr", "array", "link", "dtype", "grow", "nan"]))
        if what == "attr":
            out.append(("attr", draw(st.sampled_from(attrs)), draw(attr_values)))
        elif what == "link":
            target = draw(st.sampled_from([h5py.SoftLink("/nowhere"), h5py.SoftLink("/" + datasets[0]), h5py.ExternalLink("/etc/passwd", "/"), h5py.ExternalLink("other.h5", "/x")]))
            out.append(("link", draw(st.sampled_from(datasets)), target))
        elif what == "dtype":
            out.append(("dtype", draw(st.sampled_from(datasets)), draw(st.sampled_from(["bfloat16", "float16", "int8", "", "nope"]))))
        else:
            out.append((what, draw(st.sampled_from(datasets)), draw(arrays()) if what == "array" else None))
    return out


def mutate(path, changes) -> None:
    with h5py.File(path, "r+") as fh:
        for what, name, value in changes:
            if what == "attr":
                fh.attrs[name] = value
            elif name not in fh or not isinstance(fh.get(name, getlink=True), h5py.HardLink) or not isinstance(fh[name], h5py.Dataset):
                continue
            elif what in ("array", "link"):
                del fh[name]
                fh[name] = value
            elif what == "dtype":
                fh[name].attrs["saetool_dtype"] = value
            elif what == "grow" and fh[name].maxshape[:1] == (None,):
                fh[name].resize(10**10, axis=0)
            elif what == "nan" and fh[name].dtype.kind == "f" and fh[name].size <= 10**6:  # never fill a grown (1e10-row) dataset
                fh[name][...] = np.nan


def expect_clean(read, path, changes) -> str:
    """``read(path)`` either works or raises one SaetoolError; any other exception is a crash."""
    try:
        read(path)
    except SaetoolError as exc:
        assert "\n" not in exc.one_line(), (changes, exc.one_line())
        return "refused"
    return "read"


def _read_activations(path) -> None:
    from saetool.artifacts.activations import ActivationsFile

    with ActivationsFile(path) as acts:
        rows = 0
        for hook in acts.hooks:
            for chunk in acts.iter_chunks(hook, chunk_rows=16):
                assert chunk.ndim == 2 and chunk.dtype.is_floating_point
                rows += len(chunk)
        assert rows == acts.n_tokens * len(acts.hooks)
        assert len(acts.token_ids()) == len(acts.seq_index()) == len(acts.positions()) == acts.n_tokens
        assert acts.sequences().shape[1] == acts.context_size


def test_lying_activations_are_refused_or_read_within_the_data(tmp_path):
    """Any mix of malformed attributes, shapes, dtypes, links and oversized datasets in an
    activations file: opening and reading it all either works (every loop bounded by the
    rows really there) or stops with one SaetoolError line, never another exception."""
    from saetool.train.synthetic import write_activations

    good = tmp_path / "good.h5"
    write_activations(good, {HOOK: torch.randn(40, 4)}, context_size=8)
    seen = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES["lying-activations"], **FAST)
    @given(changes=mutations(ACT_ATTRS, ACT_DATASETS))
    def check(changes):
        path = tmp_path / "x.h5"
        path.write_bytes(good.read_bytes())
        mutate(path, changes)
        seen[expect_clean(_read_activations, path, changes)] += 1

    check()
    assert seen["refused"] and seen["read"], seen


def test_lying_saes_are_refused_or_load(tmp_path):
    """Malformed SAE configs (any value for d_in, d_sae, d_out, k, activation, dtype),
    weights of any shape or dtype, NaN weights, links: load_sae works or stops with one line."""
    from saetool.sae.io import load_sae
    from saetool.train import TrainConfig, train_sae
    from saetool.train.synthetic import write_activations

    write_activations(tmp_path / "acts.h5", {HOOK: torch.randn(200, 4)}, context_size=8)
    good = tmp_path / "good.h5"
    train_sae(TrainConfig(arch="topk", d_sae=6, k=2, batch_size=32, steps=2), [tmp_path / "acts.h5"], good, progress=False)
    fields = ["d_in", "d_sae", "d_out", "k", "activation", "dtype", "hook", "apply_b_dec_to_input", "options"]
    weights = ["weights/W_enc", "weights/W_dec", "weights/b_enc", "weights/b_dec"]
    seen = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES["lying-saes"], **FAST)
    @given(changes=mutations(["config", "training", "provenance"], weights), field=st.sampled_from(fields), value=attr_values.filter(lambda v: not isinstance(v, np.ndarray)))
    def check(changes, field, value):
        path = tmp_path / "x.h5"
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as fh:
            config = json.loads(fh.attrs["config"])
            config[field] = value
            fh.attrs["config"] = json.dumps(config)
        if changes[0][0] != "attr":  # keep some files with only the config changed
            mutate(path, changes)
        seen[expect_clean(load_sae, path, changes)] += 1

    check()
    assert seen["refused"], seen


FEATURE_ATTRS = ["d_sae", "n_tokens", "hook", "settings", "summary", "model", "sae_sha256", "schema_version", "provenance"]
FEATURE_DATASETS = ["features/index", "stats/count", "stats/density", "histogram/edges", "histogram/counts", "common/top_token_ids", "neighbours/index",
                    "neighbours/cosine", "decoder/directions", "examples/top/values", "examples/top/row", "examples/top/position", "examples/held_out/token_ids",
                    "examples/intervals/edges", "examples/negatives/token_values", "labels/score", "labels/text", "vocab/ids", "vocab/text"]


def _read_features(path) -> None:
    from saetool.interpret.store import FeaturesFile

    with FeaturesFile(path) as ff:
        records = ff.records()
        assert [r.index for r in records] == ff.index.tolist()
        assert len(ff.stats()["count"]) == ff.d_sae and ff.summary().d_sae >= 0
        assert ff.directions(ff.index.tolist()[:2]).ndim == 2


@pytest.mark.slow  # interprets the tiny model's activations first (about 4 s)
def test_lying_features_are_refused_or_read_within_the_data(tiny_acts, tiny_sae, tmp_path):
    """A ``features`` artifact with attributes set to anything, datasets of any shape and dtype
    (dropped too), links or NaN: reading every record either works or stops with one line."""
    from saetool.interpret.api import InterpretConfig, interpret

    good = tmp_path / "good.h5"
    config = InterpretConfig(top=6, examples=4, held_out=2, negatives=2, context=6, bins=4, neighbours=3, labeler=None, logit_tokens=0)
    interpret(config, tiny_acts, tiny_sae, good, progress=False)
    seen = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES["lying-features"], **FAST)
    @given(changes=mutations(FEATURE_ATTRS, FEATURE_DATASETS), drop=st.sampled_from([None, *FEATURE_DATASETS]))
    @example(changes=[("link", "features/index", h5py.SoftLink("/features/index"))], drop="features/index")  # a link to itself, then dropped
    def check(changes, drop):
        path = tmp_path / "x.h5"
        path.write_bytes(good.read_bytes())
        mutate(path, changes)
        if drop is not None:
            with h5py.File(path, "r+") as fh:
                try:
                    del fh[drop]  # unlinks without following it: pop() reads it first, which a link to itself cannot
                except KeyError:
                    pass
        seen[expect_clean(_read_features, path, (changes, drop))] += 1

    check()
    assert seen["refused"] and seen["read"], seen


@pytest.mark.slow  # 100 hypothesis examples (about 2.5 s)
def test_lying_selections_are_refused_or_read_within_the_data(tmp_path):
    """A ``selection`` table whose columns disagree in length or type, or are links: read whole or refused in one line."""
    import pandas as pd

    from saetool.analysis.select import COLUMNS, read_selection, write_selection

    good = tmp_path / "good.h5"
    n = 5
    table = pd.DataFrame({"name": [f"L1-{i}" for i in range(n)], **{c: np.arange(n, dtype=np.float64) for c in COLUMNS[1:]}})
    write_selection(good, table, attrs={"unit": "token", "layers": "[1]", "saes": "[]", "d_sae": 8}, provenance={})
    seen = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES["lying-selections"], **FAST)
    @given(changes=mutations(["unit", "layers", "saes", "d_sae", "schema_version"], list(COLUMNS)))
    def check(changes):
        path = tmp_path / "x.h5"
        path.write_bytes(good.read_bytes())
        mutate(path, changes)
        seen[expect_clean(lambda p: len(read_selection(p)), path, changes)] += 1

    check()
    assert seen["refused"] and seen["read"], seen


@pytest.mark.slow  # 100 hypothesis examples (about 1.2 s)
def test_lying_vectors_are_refused_or_read_within_the_data(tmp_path):
    """A steering ``vector`` whose attributes (``d``, ``layer``, ``norm``, ``resid_norm_mean``, ...) are anything
    or whose datasets are of any shape, links or NaN: ``read_vector`` and its description work or stop with one line."""
    from saetool.steer.vectors import SteeringVector, read_vector, write_vector

    good = tmp_path / "good.h5"
    write_vector(good, SteeringVector(torch.randn(6), HOOK, model="m", resid_norm_mean=3.0, positive_mean=torch.randn(6), negative_mean=torch.randn(6)), provenance={})
    seen = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES["lying-vectors"], **FAST)
    @given(changes=mutations(["d", "layer", "norm", "resid_norm_mean", "hook", "model", "method", "details", "schema_version"], ["vector", "means/positive", "means/negative"]))
    def check(changes):
        path = tmp_path / "x.h5"
        path.write_bytes(good.read_bytes())
        mutate(path, changes)
        seen[expect_clean(lambda p: read_vector(p).describe(), path, changes)] += 1

    check()
    assert seen["refused"] and seen["read"], seen


def test_the_table_kinds_check_the_columns_their_writers_write():
    """builtins.analysis lists the selection and token-association columns without importing
    their (torch-loading) modules; the lists must stay those modules' COLUMNS."""
    from saetool.analysis import select, token_stats
    from saetool.artifacts.kinds import get_kind

    assert set(get_kind("selection").datasets) == set(select.COLUMNS + select.OPTIONAL_COLUMNS)
    assert set(get_kind("token-associations").datasets) == set(token_stats.COLUMNS)


def test_docs_record_the_numbers_of_cases():
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    for name, n in EXAMPLES.items():
        assert re.search(rf"\| `{name}` \| {n} \|", text), f"docs/errors.md must record {n} {name} examples"
