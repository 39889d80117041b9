"""Code shipped in a model folder (``auto_map``) never runs unless ``--trust-remote-code``.

The folder's ``evil.py`` writes a marker file when imported: the tests check that
it is never written without the opt-in, that transformers' "Do you wish to run
the custom code?" prompt never appears (off a terminal it landed on stdout), and,
as a control, that the opt-in really does run it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers import REPO, assert_clean_error, run_cli

EVIL = """open({marker!r}, "w").write("ran")
from transformers import GPT2Config, GPT2LMHeadModel


class EvilConfig(GPT2Config):
    model_type = "evilgpt"


class EvilModel(GPT2LMHeadModel):
    config_class = EvilConfig
"""


def evil_folder(tiny: Path, dest: Path, marker: Path, *, model_type: str = "evilgpt") -> Path:
    """The tiny GPT-2 folder with ``auto_map`` pointing at ``evil.py`` (and ``model_type``)."""
    shutil.copytree(tiny, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["model_type"] = model_type
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (dest / "config.json").write_text(json.dumps(cfg))
    (dest / "evil.py").write_text(EVIL.format(marker=str(marker)))
    return dest


def test_a_folder_that_needs_its_own_code_is_refused_and_it_never_runs(tiny_gpt2_dir, tmp_path):
    marker = tmp_path / "CODE_RAN"
    model = evil_folder(tiny_gpt2_dir, tmp_path / "evil", marker)
    proc = run_cli("extract", "--model", str(model), "-n", "32", "-o", str(tmp_path / "out.h5"), cwd=tmp_path, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert_clean_error(proc, "needs to run Python code it ships (auto_map in its config)", "--trust-remote-code")
    assert proc.stdout == "" and "Do you wish" not in proc.stderr
    assert not marker.exists(), "the model folder's code ran"
    assert not (tmp_path / "out.h5").exists()


def test_the_opt_in_runs_the_code(tiny_gpt2_dir, tmp_path):
    """Control: with --trust-remote-code transformers imports evil.py (so the test above can fail)."""
    marker = tmp_path / "CODE_RAN"
    model = evil_folder(tiny_gpt2_dir, tmp_path / "evil", marker)
    run_cli("extract", "--model", str(model), "-n", "32", "-o", str(tmp_path / "out.h5"), "--trust-remote-code", cwd=tmp_path, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert marker.exists()


def test_a_native_model_type_with_auto_map_loads_with_the_built_in_code(tiny_gpt2_dir, tmp_path):
    """auto_map beside a model_type transformers knows: the built-in GPT-2 code is used, the folder's never."""
    from saetool.models.registry import load_model

    marker = tmp_path / "CODE_RAN"
    model = load_model(str(evil_folder(tiny_gpt2_dir, tmp_path / "evil", marker, model_type="gpt2")))
    assert model.n_layers == 2 and type(model.model).__module__.startswith("transformers.")
    assert not marker.exists()


def test_the_python_api_refuses_too_and_the_flag_is_per_command(tiny_gpt2_dir, tmp_path):
    from saetool.cli.main import main
    from saetool.errors import ModelError
    from saetool.models.registry import remote_code_trusted, resolve_model

    marker = tmp_path / "CODE_RAN"
    folder = evil_folder(tiny_gpt2_dir, tmp_path / "evil", marker)
    # an in-process command with the flag (it fails on a missing file) leaves the next call untrusted
    with pytest.raises(SystemExit):
        main(["extract", "--model", str(folder), "--corpus", "files:" + str(tmp_path / "missing.txt"), "-n", "8", "-o", str(tmp_path / "o.h5"), "--trust-remote-code"])
    assert not remote_code_trusted()
    with pytest.raises(ModelError, match="--trust-remote-code"):
        resolve_model(str(folder)).load_hf()
    assert not marker.exists()


LOADERS = r"\b(?:AutoModel\w*|AutoTokenizer|AutoConfig|AutoProcessor)\.(?:from_pretrained|from_config)\(|boot_transformers\("


def test_every_load_in_the_source_passes_trust_remote_code():
    """Every from_pretrained / from_config / boot_transformers call names trust_remote_code explicitly."""
    missing = []
    for path in sorted((REPO / "saetool").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(LOADERS, text):
            depth, end = 1, m.end()
            while depth and end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            if "trust_remote_code=" not in text[m.end():end]:
                missing.append(f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}")
    assert missing == []
