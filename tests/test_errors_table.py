"""The bad-input table of ``docs/errors.md``: every row is run through the real CLI.

Each case runs ``saetool ARGS`` in a folder holding the files below and checks
what the user sees: one line (``error: ...``), exit code 2, no traceback, and the
folder listing unchanged (no output, partial or lock file left behind). The line
must equal the row's "what you see" column in ``docs/errors.md``, and the doc must
list exactly these cases, so the page and the tests cannot drift apart.

Rows with exit code 0 are warnings (a misbehaving plugin, an SAE from another
model): the command still runs. To print the rows after changing a message:
``ERRORS_TABLE_OUT=rows.md pytest tests/test_errors_table.py`` writes them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import pytest

from helpers import REPO, assert_clean_error, run_cli
from test_sweep import TINY, tiny_config

DOC = REPO / "docs" / "errors.md"
HOOK = "blocks.1.hook_resid_post"
LONG = "x" * 300


@dataclass
class Case:
    id: str
    input: str  # the bad input, in words (the doc's second column)
    command: str  # saetool arguments; MODEL stands for a small local model folder, LONG for 300 x's
    needles: tuple[str, ...]
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    code: int = 2


def _sweep(text: str) -> Callable[[Path], None]:
    return lambda d: tiny_config(d, text).rename(d / "sweep.yaml")


def _link(name: str, target: str) -> Callable[[Path], None]:
    """A symbolic link ``name`` -> ``target`` planted in the folder beforehand."""
    return lambda d: (d / name).symlink_to(target)


def _file(name: str) -> Callable[[Path], None]:
    """A file ``name`` (its folder made) planted in the folder beforehand."""
    def make(d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text("{}")

    return make


def _plugin(body: str) -> Callable[[Path], None]:
    """An installed third-party plugin named ``bad`` (a dist-info entry point) in ``d/site``."""

    def make(d: Path) -> None:
        site = d / "site"
        (site / "bad_plugin-0.1.dist-info").mkdir(parents=True)
        (site / "bad_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 0.1\n")
        (site / "bad_plugin-0.1.dist-info" / "entry_points.txt").write_text("[saetool]\nbad = bad_plugin\n")
        (site / "bad_plugin.py").write_text(body)

    return make


def _model_with_code(d: Path) -> None:
    """A model folder whose config.json asks transformers to import its evil.py (which would write CODE_RAN)."""
    from saetool.models.embedded import SMOLLM2

    folder = d / "evil"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (SMOLLM2.cache_path() / name).exists():
            shutil.copy(SMOLLM2.cache_path() / name, folder / name)
    config = {"model_type": "evilgpt", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 49152,
              "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text("open('CODE_RAN', 'w').write('ran')\n")


RAISES = "from saetool.hookspecs import hookimpl\n\n@hookimpl\ndef register_commands(register):\n    raise RuntimeError('boom')\n"
IMPORT_FAILS = "raise ImportError('bad_plugin needs a package that is not installed')\n"
PLUGIN_ENV = {"PYTHONPATH": "site", "SAETOOL_LOAD_PLUGINS": "bad"}

CASES: list[Case] = [
    # artifacts given as input
    Case("truncated-hdf5", "an artifact cut short (half its bytes)", "inspect trunc.h5", ("corrupt or truncated",)),
    Case("corrupt-hdf5", "an .h5 file of random bytes", "train garbage.h5 -o out.h5", ("not an HDF5 file",)),
    Case("not-an-artifact", "an HDF5 file no saetool stage wrote", "inspect plain.h5", ("not a saetool artifact",)),
    Case("wrong-kind", "an `sae` artifact where activations are needed", "train sae.h5 -o out.h5", ("is a 'sae' artifact", "needs 'activations'")),
    Case("newer-schema", "an artifact with a newer schema version", "train newer.h5 -o out.h5", ("newer than this saetool reads", "upgrade")),
    Case("missing-input", "an input file that does not exist", "train nope.h5 -o out.h5", ("does not exist",)),
    Case("input-too-long", "an input path longer than the file system allows", "inspect LONG.h5", ("file name too long",)),
    Case("stdin-not-manifest", "text that is not a manifest piped into a stage", "train -o out.h5", ("not a saetool manifest",), stdin="garbage\n"),
    Case("manifest-path-number", "a manifest whose path is a number", "train -o out.h5", ("upstream manifest on stdin is malformed", "'path' is 123"), stdin='{"path": 123}\n'),
    Case("manifest-null", "a manifest that is JSON null", "train -o out.h5", ("upstream manifest on stdin is malformed", "null"), stdin="null\n"),
    Case("manifest-false-kind", "a manifest whose kind is false", "train -o out.h5", ("upstream manifest on stdin is malformed", "'kind' is false"), stdin='{"path": "acts.h5", "kind": false}\n'),
    Case("manifest-missing-file", "a manifest naming a file that does not exist", "train -o out.h5", ("upstream manifest on stdin is malformed", "does not exist"), stdin='{"path": "gone.h5", "kind": "activations"}\n'),
    # SAEs
    Case("sae-d-in", "an SAE whose d_in differs from the activations", "train acts12.h5 --init-from sae.h5 -o out.h5", ("expects d_in=64", "d=12")),
    Case("sae-hook", "an SAE trained at another hook", "train other_hook.h5 --init-from sae.h5 -o out.h5", ("reads blocks.1.hook_resid_post", "blocks.0.hook_resid_post")),
    Case("vector-d-model", "a vector whose dimension differs from the model's", "steer vec12.txt --layer 1 --prompts p.txt --model MODEL -o out.h5", ("dimension 12", "d=64")),
    Case("sae-model", "an SAE trained on another model of the same width (a warning: fine-tuning across models is legitimate)", "train other_model.h5 --init-from sae.h5 --steps 2 --batch-size 64 -o out.h5", ("trained on model 'synthetic'", "'gpt2'"), code=0),
    Case("sae-feature", "a feature index past the SAE's width", "vector from-sae sae.h5 --feature 999 -o out.h5", ("feature 999 is out of range",)),
    Case("not-an-sae", "a folder that holds no SAE", "export emptydir -o out", ("not an SAE saetool can read",)),
    # activations
    Case("nan-rows", "activations with NaN/inf rows", "train nan.h5 -o out.h5", ("NaN/inf", "2 row(s): 5, 1234")),
    Case("empty-activations", "an activations file with 0 tokens", "train empty.h5 -o out.h5", ("holds no activations",)),
    Case("empty-activations-check", "an activations file with 0 tokens, checked (it said SCALE UP)", "check sae.h5 empty.h5 --no-model", ("holds no activations",)),
    Case("nan-rows-evaluate", "activations with NaN/inf rows, evaluated", "evaluate sae.h5 nan.h5 --no-model", ("NaN/inf", "2 row(s): 5, 1234")),
    Case("nan-rows-interpret", "activations with NaN/inf rows, interpreted", "interpret nan.h5 --sae sae.h5 -o out.h5", ("NaN/inf", "2 row(s): 5, 1234")),
    # files that lie or are malformed (every artifact is checked when opened)
    Case("lying-n-tokens", "an `n_tokens` attribute of 1e9 over 2,000 stored rows", "train lie_n.h5 -o out.h5", ("'n_tokens' says 1000000000 rows", "has 2000")),
    Case("negative-n-tokens", "a negative `n_tokens` attribute", "train neg_n.h5 -o out.h5", ("'n_tokens' is -5",)),
    Case("huge-dataset", "datasets that declare 1e10 rows but store 2,000", "train huge.h5 -o out.h5", ("declares 10000000000 rows but stores data for fewer",)),
    Case("dangling-link", "a dangling soft link in place of a dataset", "train soft.h5 -o out.h5", ("soft link", "no links")),
    Case("external-link", "an external link to /etc/passwd", "inspect external.h5", ("external link to /etc/passwd", "no links")),
    Case("lying-dtype", "a `saetool_dtype` attribute of bfloat16 on float32 data", "train lie_dtype.h5 -o out.h5", ("says saetool_dtype 'bfloat16' but is stored as float32",)),
    Case("bad-provenance", "a `provenance` attribute that is not JSON", "inspect bad_prov.h5", ("'provenance' is not valid JSON",)),
    Case("bad-hooks", "a `hooks` attribute that is not JSON", "train bad_hooks.h5 -o out.h5", ("'hooks' is not valid JSON",)),
    Case("schema-not-integer", "a `schema_version` that is not an integer", "inspect bad_schema.h5", ("'schema_version' is 'one', not an integer",)),
    Case("string-activations", "activations stored as strings", "train str_acts.h5 -o out.h5", ("holds object values, not floating-point numbers",)),
    Case("sae-negative-d-in", "an SAE config with d_in -64", "vector from-sae neg_d_in.h5 --feature 0 -o out.h5", ("SAE config field d_in is -64",)),
    Case("sae-d-sae-zero", "an SAE config with d_sae 0", "vector from-sae zero_d_sae.h5 --feature 0 -o out.h5", ("SAE config field d_sae is 0",)),
    Case("saelens-disagree", "an SAELens folder whose cfg.json says d_in 32 over weights for 64", "vector from-sae saelens_bad --feature 0 -o out.h5", ("cfg.json and the weights disagree",)),
    Case("sae-nan-weights", "an SAE whose weights hold NaN, evaluated", "evaluate nan_sae.h5 acts.h5 --no-model", ("weight W_enc holds 1 NaN/inf value(s)", "pass another SAE")),
    Case("sae-nan-init-from", "an SAE whose weights hold NaN, as --init-from", "train acts.h5 --init-from nan_sae.h5 -o out.h5", ("weight W_enc holds 1 NaN/inf value(s)", "pass another SAE")),
    Case("sae-nan-vector", "an SAE whose weights hold NaN, as a vector source", "vector from-sae nan_sae.h5 --feature 0 -o out.h5", ("weight W_enc holds 1 NaN/inf value(s)",)),
    Case("sae-string-weights", "SAE weights stored as strings", "vector from-sae str_weights.h5 --feature 0 -o out.h5", ("weights/b_dec holds object values",)),
    # corpora and prompts
    Case("empty-corpus", "an empty corpus folder", "extract --model MODEL --corpus emptydir -n 32 -o out.h5", ("holds no",)),
    Case("empty-corpus-file", "an empty corpus text file", "extract --model MODEL --corpus empty.txt -n 32 -o out.h5", ("has no documents",)),
    Case("corpus-device", "a corpus path that is /dev/zero", "extract --model MODEL --corpus /dev/zero -n 32 -o out.h5", ("is a character device, not a regular file",)),
    Case("prompts-fifo", "a prompt file that is a FIFO", "steer vec12.txt --layer 1 --prompts fifo -o out.h5", ("prompt file fifo is a FIFO, not a regular file",), setup=lambda d: os.mkfifo(d / "fifo")),
    Case("empty-prompts", "an empty prompt file", "vector diff-means --positive empty.txt --negative p.txt --layer 1 --model MODEL -o out.h5", ("has no prompts",)),
    Case("missing-prompts", "a prompt file that does not exist", "steer vec12.txt --layer 1 --prompts nope.txt -o out.h5", ("does not exist",)),
    # model folders
    Case("model-remote-code", "a model folder whose config.json asks to run its own code (`auto_map`)", "extract --model evil -n 32 -o out.h5", ("needs to run Python code it ships", "--trust-remote-code"), setup=_model_with_code),
    # sizes past the model's limits (MODEL takes 256 positions)
    Case("context-size-too-long", "--context-size beyond the model's positions", "extract --model MODEL --corpus p.txt -n 32 --context-size 1000 -o out.h5", ("--context-size 1000", "at most 256")),
    Case("max-new-tokens-too-many", "more new tokens than the model's positions", "steer vec64.txt --layer 1 --prompts p.txt --model MODEL -t 100000 -o out.h5", ("--max-new-tokens 100000", "at most 256")),
    Case("sweep-max-new-tokens", "a sweep generating more tokens than the model's positions", "sweep sweep.yaml --output-dir runs", ("generation.max_new_tokens 100000000", "at most 8192"), setup=_sweep(TINY.replace("max_new_tokens: 3", "max_new_tokens: 100000000"))),
    # sweep configs
    Case("invalid-yaml", "a sweep config that is not valid YAML", "sweep sweep.yaml --output-dir runs", ("not valid YAML",), setup=_sweep("name: x\nlayers: [1, 2\n")),
    Case("unknown-config-key", "a misspelt key in a sweep config", "sweep sweep.yaml --output-dir runs", ("unknown key 'layer'", "did you mean 'layers'"), setup=_sweep(TINY.replace("layers:", "layer:"))),
    Case("duplicate-config-key", "a key given twice in a sweep config", "sweep sweep.yaml --output-dir runs", ("key 'alphas' appears twice",), setup=_sweep(TINY + "alphas: [0, 2.0]\n")),
    Case("unknown-config-metric", "an unknown metric in a sweep config", "sweep sweep.yaml --output-dir runs", ("unknown metric 'refusel'",), setup=_sweep(TINY.replace("metrics: [refusal,", "metrics: [refusel,"))),
    # names that plugins provide
    Case("unknown-arch", "an unknown SAE architecture", "train acts.h5 --arch nope -o out.h5", ("unknown sae architecture 'nope'", "topk")),
    Case("unknown-metric", "an unknown steering metric", "steer vec12.txt --layer 1 --prompts p.txt --metrics nope -o out.h5", ("unknown metric 'nope'", "refusal")),
    Case("unknown-intervention", "an unknown intervention", "steer vec12.txt --layer 1 --prompts p.txt -i nope -o out.h5", ("unknown intervention 'nope'", "add")),
    Case("unknown-corpus", "an unknown corpus source", "extract --model MODEL --corpus nope:thing -n 32 -o out.h5", ("unknown corpus 'nope'",)),
    Case("unknown-model", "an unknown embedded model", "models install nope", ("unknown embedded model 'nope'",)),
    Case("plugin-raises", "a plugin that raises while registering", "inspect acts.h5", ("raised while registering commands",), env=PLUGIN_ENV, setup=_plugin(RAISES), code=0),
    Case("plugin-import-fails", "a plugin that fails to import", "inspect acts.h5", ("failed to load and was skipped",), env=PLUGIN_ENV, setup=_plugin(IMPORT_FAILS), code=0),
    Case("plugin-not-installed", "SAETOOL_LOAD_PLUGINS naming a plugin that is not installed", "inspect acts.h5", ("which no installed package provides",), env={"SAETOOL_LOAD_PLUGINS": "nope"}, code=0),
    # outputs and disk paths
    Case("output-exists", "an output that exists", "train acts.h5 -o sae.h5", ("already exists", "--overwrite")),
    Case("output-is-folder", "an output that is a folder", "train acts.h5 -o emptydir", ("is a directory",)),
    Case("output-folder-is-file", "an export folder that is a file", "export sae.h5 -o p.txt", ("exists and is not a folder",)),
    Case("output-under-file", "an output under a regular file", "train acts.h5 -o file.txt/out.h5", ("cannot create folder file.txt",)),
    Case("output-not-writable", "an output in a folder no one can write (even root)", "train acts.h5 -o /proc/out.h5", ("cannot write to /proc",)),
    Case("output-too-long", "an output name longer than the file system allows", "train acts.h5 -o LONG.h5", ("too long", "shorter")),
    Case("partial-symlink", "a symbolic link planted where saetool writes its partial output", "vector from-sae sae.h5 --feature 1 -o out.h5", ("out.h5.partial is a symbolic link",), setup=_link("out.h5.partial", "file.txt")),
    Case("lock-symlink", "a symbolic link planted where saetool keeps its lock file", "vector from-sae sae.h5 --feature 1 -o out.h5", ("out.h5.lock is a symbolic link",), setup=_link("out.h5.lock", "file.txt")),
    Case("checkpoints-symlink", "a symbolic link planted where training keeps its checkpoints", "train acts.h5 --steps 2 --batch-size 64 -o out.h5", ("out.h5.checkpoints is a symbolic link",), setup=_link("out.h5.checkpoints", "emptydir")),
    Case("history-partial-symlink", "a symbolic link planted where training writes its history CSV", "train acts.h5 --steps 2 --batch-size 64 -o out.h5", ("out.h5.history.csv.partial is a symbolic link",), setup=_link("out.h5.history.csv.partial", "file.txt")),
    Case("output-is-input", "an output that is the input (with --overwrite)", "train acts.h5 --overwrite -o ./acts.h5", ("is also an input",)),
    Case("report-is-input", "a --report path that is the input activations", "interpret acts.h5 --sae sae.h5 --report acts.h5 --overwrite", ("--report acts.h5 is also an input",)),
    Case("html-is-output", "--html and -o naming the same file", "interpret acts.h5 --sae sae.h5 --html f.h5 -o f.h5", ("name the same file",)),
    Case("report-exists", "a --report file that exists (without --overwrite)", "interpret acts.h5 --sae sae.h5 --report p.txt", ("already exists", "--report")),
    Case("json-dir-exists", "a --json-dir whose interpretations file exists (without --overwrite)", "interpret acts.h5 --sae sae.h5 --json-dir jdir", ("jdir/layer_1_interpretations.json already exists", "--json-dir"), setup=_file("jdir/layer_1_interpretations.json")),
    Case("export-holds-input", "an export folder that holds the input SAE (with --overwrite)", "export sae.h5 -o . --overwrite", ("holds the input",)),
    Case("sweep-best-from-itself", "a sweep whose `best_from` names its own run (it would replace the best.json it reads)", "sweep sweep.yaml --output-dir runs", ("best_from runs/tiny/best.json", "another best_from"),
         setup=lambda d: (_sweep(TINY.replace("layers: [15]", "layers: best\nbest_from: tiny"))(d), _file("runs/tiny/best.json")(d))),
    Case("resume-nothing", "--resume with nothing to resume", "train acts.h5 --resume -o out.h5", ("nothing to resume",)),
    # usage
    Case("unknown-option", "an unknown option", "train acts.h5 --stpes 5", ("no such option: --stpes", "--steps")),
    Case("bad-option-value", "an option value out of range", "train acts.h5 --steps 0 -o out.h5", ("--steps must be at least 1",)),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The files the cases read (d_in 64 like the tiny model, hook blocks.1.hook_resid_post)."""
    import torch

    from saetool.train import TrainConfig, train_sae
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    d = tmp_path_factory.mktemp("inputs")
    x, _ = sparse_dictionary_data(2000, 64, 32, active=3, seed=1)
    write_activations(d / "acts.h5", {HOOK: x}, context_size=20)
    write_activations(d / "acts12.h5", {HOOK: torch.randn(500, 12)}, context_size=20)
    write_activations(d / "other_hook.h5", {"blocks.0.hook_resid_post": x[:500]}, context_size=20)
    write_activations(d / "other_model.h5", {HOOK: x[:500]}, context_size=20, model="gpt2")
    y = x.clone()
    y[5, 3], y[1234, 0] = float("nan"), float("inf")
    write_activations(d / "nan.h5", {HOOK: y}, context_size=20)
    write_activations(d / "empty.h5", {HOOK: x[:0]}, context_size=20)
    train_sae(TrainConfig(arch="topk", d_sae=32, k=3, batch_size=64, steps=5), [d / "acts.h5"], d / "sae.h5", progress=False)
    shutil.rmtree(d / "sae.h5.checkpoints")
    (d / "sae.h5.history.csv").unlink()
    _lying_files(d)
    whole = (d / "acts.h5").read_bytes()
    (d / "trunc.h5").write_bytes(whole[: len(whole) // 2])
    (d / "garbage.h5").write_bytes(bytes(range(256)) * 16)
    shutil.copy(d / "acts.h5", d / "newer.h5")
    with h5py.File(d / "newer.h5", "r+") as fh:
        fh.attrs["schema_version"] = 99
    with h5py.File(d / "plain.h5", "w") as fh:
        fh["x"] = [1, 2, 3]
    (d / "vec12.txt").write_text(" ".join(str(i) for i in range(1, 13)))
    (d / "vec64.txt").write_text(" ".join(str(i % 7 - 3) for i in range(64)))
    (d / "p.txt").write_text("Hello there.\nName a fruit.\n")
    (d / "empty.txt").write_text("")
    (d / "file.txt").write_text("a regular file\n")
    (d / "emptydir").mkdir()
    return d


def _edit(d: Path, src: str, dst: str, change: Callable[[h5py.File], None]) -> None:
    shutil.copy(d / src, d / dst)
    with h5py.File(d / dst, "r+") as fh:
        change(fh)


def _replace(name: str, value: object) -> Callable[[h5py.File], None]:
    def change(fh: h5py.File) -> None:
        del fh[name]
        fh[name] = value

    return change


def _sae_config(**fields: object) -> Callable[[h5py.File], None]:
    def change(fh: h5py.File) -> None:
        fh.attrs["config"] = json.dumps({**json.loads(fh.attrs["config"]), **fields})

    return change


def _grow(fh: h5py.File) -> None:
    for name in ("tokens/token_ids", "tokens/seq_index", "tokens/position", f"activations/{HOOK}"):
        fh[name].resize(10**10, axis=0)
    fh.attrs["n_tokens"] = 10**10


def _lying_files(d: Path) -> None:
    """Copies of acts.h5 and sae.h5 whose attributes, links or datasets lie."""
    _edit(d, "acts.h5", "lie_n.h5", lambda fh: fh.attrs.__setitem__("n_tokens", 10**9))
    _edit(d, "acts.h5", "neg_n.h5", lambda fh: fh.attrs.__setitem__("n_tokens", -5))
    _edit(d, "acts.h5", "huge.h5", _grow)
    _edit(d, "acts.h5", "soft.h5", _replace("tokens/position", h5py.SoftLink("/nowhere")))
    _edit(d, "acts.h5", "external.h5", _replace("tokens/position", h5py.ExternalLink("/etc/passwd", "/")))
    _edit(d, "acts.h5", "lie_dtype.h5", lambda fh: fh[f"activations/{HOOK}"].attrs.__setitem__("saetool_dtype", "bfloat16"))
    _edit(d, "acts.h5", "bad_prov.h5", lambda fh: fh.attrs.__setitem__("provenance", "{not json"))
    _edit(d, "acts.h5", "bad_hooks.h5", lambda fh: fh.attrs.__setitem__("hooks", "blocks.1"))
    _edit(d, "acts.h5", "bad_schema.h5", lambda fh: fh.attrs.__setitem__("schema_version", "one"))
    _edit(d, "acts.h5", "str_acts.h5", _replace(f"activations/{HOOK}", [["a"] * 4] * 2000))
    _edit(d, "sae.h5", "neg_d_in.h5", _sae_config(d_in=-64))
    _edit(d, "sae.h5", "zero_d_sae.h5", _sae_config(d_sae=0))
    _edit(d, "sae.h5", "str_weights.h5", _replace("weights/b_dec", ["x"] * 3))
    _edit(d, "sae.h5", "nan_sae.h5", lambda fh: fh["weights/W_enc"].__setitem__((0, 0), float("nan")))
    from saetool.sae.formats.saelens import export_saelens
    from saetool.sae.io import load_sae

    export_saelens(load_sae(d / "sae.h5"), d / "saelens_bad")
    cfg = json.loads((d / "saelens_bad" / "cfg.json").read_text())
    (d / "saelens_bad" / "cfg.json").write_text(json.dumps({**cfg, "d_in": 32}))


def listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def doc_rows() -> dict[str, tuple[str, str, str]]:
    """``case id -> (input, command, what you see)`` from the tables in docs/errors.md."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `([a-z0-9-]+)` \|(.*)\|\s*$", line)
        if m:
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", m.group(2))]
            if len(cells) == 3 and cells[1].startswith("`` saetool "):  # a bad-input row (other tables have other shapes)
                rows[m.group(1)] = tuple(_unspan(c) for c in cells)
    return rows


def _unspan(cell: str) -> str:
    m = re.fullmatch(r"``? (.*) ``?|`([^`]*)`", cell)
    return (m.group(1) if m.group(1) is not None else m.group(2)) if m else cell


def _span(text: str) -> str:
    return "`` " + text.replace("|", "\\|") + " ``"


def format_row(case: Case, seen: str) -> str:
    return f"| `{case.id}` | {case.input} | {_span('saetool ' + case.command)} | {_span(seen)} |"


def test_the_doc_lists_exactly_these_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    documented = doc_rows()
    assert sorted(documented) == sorted(ids), set(documented) ^ set(ids)
    for case in CASES:
        assert documented[case.id][:2] == (case.input, "saetool " + case.command), case.id


@pytest.mark.slow  # about 80 CLI processes, each importing torch
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, inputs, tmp_path, tiny_gpt2_dir):
    work = tmp_path / "work"
    shutil.copytree(inputs, work)
    if case.setup:
        case.setup(work)
    before = listing(work)
    args = [str(tiny_gpt2_dir) if a == "MODEL" else a.replace("LONG", LONG) for a in shlex.split(case.command)]
    env = {**case.env}
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join([str(work / env["PYTHONPATH"]), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = run_cli(*args, input=case.stdin, env=env, cwd=work)
    if case.code == 0:  # a warning; the command still works
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("warning:") and case.needles[0] in line]  # this case's warning (a short run adds its own)
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        seen = lines[0]
        for needle in case.needles:
            assert needle in seen, (needle, seen)
    else:
        seen = assert_clean_error(proc, *case.needles, code=case.code)
        assert proc.stdout == ""
        assert listing(work) == before  # no output, no partial, no lock
    seen = re.sub("x{40,}", "LONG", " ".join(seen.split()))
    if os.environ.get("ERRORS_TABLE_OUT"):
        with open(os.environ["ERRORS_TABLE_OUT"], "a", encoding="utf-8") as fh:
            fh.write(format_row(case, seen) + "\n")
        return
    documented = doc_rows().get(case.id)
    assert documented is not None, f"docs/errors.md has no row for {case.id}; add:\n{format_row(case, seen)}"
    assert documented[2] == seen, f"docs/errors.md is out of date for {case.id}; the row is now:\n{format_row(case, seen)}"


def test_debug_shows_the_traceback(inputs, tmp_path):
    proc = run_cli("--debug", "inspect", str(inputs / "garbage.h5"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error:")
