"""Pretrained SAEs by name (RELEASE/SAE_ID) through sae-lens' registry, read from a
Hugging Face cache laid out as the hub lays it out (no network: HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.errors import SaetoolError
from saetool.sae import registry
from saetool.sae.io import load_sae

REV = "0123456789abcdef0123456789abcdef01234567"


def hf_cache(cache: Path, repo_id: str, files: dict[str, Path], rev: str = REV) -> Path:
    """``files`` (path in the repo -> a local file) put into ``cache`` as huggingface_hub does:
    ``models--ORG--NAME/blobs/SHA``, ``snapshots/REV/PATH`` -> a relative link to the blob, ``refs/main``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    for rel, src in files.items():
        data = Path(src).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = repo / "snapshots" / rev / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return repo / "snapshots" / rev


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_the_registry_is_read_without_importing_sae_lens():
    import subprocess
    import sys

    code = "import sys; from saetool.sae import registry; registry.lookup('gpt2-small-res-jb/blocks.8.hook_resid_pre'); registry.releases(); print('sae_lens' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    assert registry.registry_files()[0].name == "pretrained_saes.yaml"
    rels = {r.name: r for r in registry.releases(model="gpt2-small")}
    jb = rels["gpt2-small-res-jb"]
    assert (jb.repo_id, jb.format, jb.n_saes) == ("jbloom/GPT2-Small-SAEs-Reformatted", "saelens", 13)
    entry = registry.lookup("gpt2-small-res-jb/blocks.8.hook_resid_pre")
    assert (entry.hook, entry.path, entry.l0, entry.neuronpedia) == ("blocks.8.hook_resid_pre", "blocks.8.hook_resid_pre", 60.0, "gpt2-small/8-res-jb")
    g = registry.lookup("gemma-scope-2b-pt-res/layer_3/width_16k/average_l0_14")
    assert (g.hook, g.width, g.release.format, g.release.model) == ("blocks.3.hook_resid_post", 16384, "gemma-scope", "gemma-2-2b")
    assert all(r.model.lower().endswith("gemma-2-2b") for r in registry.releases(model="google/gemma-2-2b"))


def test_unknown_names_are_one_line_with_the_closest():
    with pytest.raises(SaetoolError, match="unknown pretrained SAE release 'gpt2-small-res-jbb'") as err:
        registry.lookup("gpt2-small-res-jbb/blocks.8.hook_resid_pre")
    assert "gpt2-small-res-jb" in err.value.hint
    with pytest.raises(SaetoolError, match="has no SAE 'blocks.8.hook_resid_px'") as err:
        registry.lookup("gpt2-small-res-jb/blocks.8.hook_resid_px")
    assert "blocks.8.hook_resid_pre" in err.value.hint
    with pytest.raises(SaetoolError, match="does not read"):
        registry.lookup("gpt2-small-hook-z-kk/blocks.0.hook_z").files()


def test_a_cached_release_loads_offline_by_name(tmp_path, offline_cache):
    from test_sae_io import make_sae

    from saetool.sae.formats.saelens import export_saelens

    sae = make_sae("topk")
    export_saelens(sae, tmp_path / "export", model_name="gpt2-small")
    name = "gpt2-small-res-jb/blocks.8.hook_resid_pre"
    with pytest.raises(SaetoolError, match="not in the Hugging Face cache") as err:  # before the files are there
        load_sae(name)
    assert err.value.hint == "fetch it once online: hf download jbloom/GPT2-Small-SAEs-Reformatted --include 'blocks.8.hook_resid_pre/*'"
    snap = hf_cache(offline_cache, "jbloom/GPT2-Small-SAEs-Reformatted", {f"blocks.8.hook_resid_pre/{f}": tmp_path / "export" / f for f in ("cfg.json", "sae_weights.safetensors")})
    assert registry.resolve(name) == snap / "blocks.8.hook_resid_pre"
    got = load_sae(name)
    assert got.cfg.options["pretrained"] == name and got.cfg.model == "gpt2-small"
    x = torch.randn(32, sae.cfg.d_in, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got.encode(x), sae.encode(x), atol=0, rtol=0)
    torch.testing.assert_close(got(x), sae(x), atol=0, rtol=0)


def test_a_gemma_scope_release_takes_its_hook_and_model_from_the_cache_path(tmp_path, offline_cache):
    g = np.random.default_rng(0)
    p = {"W_enc": g.normal(size=(8, 20)), "W_dec": g.normal(size=(20, 8)), "b_enc": g.normal(size=20), "b_dec": g.normal(size=8), "threshold": np.abs(g.normal(size=20))}
    np.savez(tmp_path / "params.npz", **{k: v.astype(np.float32) for k, v in p.items()})
    hf_cache(offline_cache, "google/gemma-scope-2b-pt-res", {"layer_3/width_16k/average_l0_14/params.npz": tmp_path / "params.npz"})
    sae = load_sae("gemma-scope-2b-pt-res/layer_3/width_16k/average_l0_14")
    assert (sae.cfg.hook, sae.cfg.model, sae.cfg.activation, sae.cfg.d_sae) == ("blocks.3.hook_resid_post", "google/gemma-2-2b", "jumprelu", 20)


def test_an_existing_path_wins_over_a_name(tmp_path, monkeypatch, offline_cache):
    from test_sae_io import make_sae

    from saetool.sae.formats.saelens import export_saelens

    monkeypatch.chdir(tmp_path)
    export_saelens(make_sae("relu"), tmp_path / "gpt2-small-res-jb" / "blocks.8.hook_resid_pre")
    assert "pretrained" not in load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre").cfg.options


def test_extra_registry_and_check_by_name_offline(tmp_path, tiny_acts, tiny_sae):
    """The issue's acceptance check: `saetool check RELEASE/ID ACTS` offline against a cached
    release, here one added by SAETOOL_SAE_REGISTRY; `saetool sae list` shows it."""
    from saetool.sae.formats.saelens import export_saelens

    export_saelens(load_sae(tiny_sae), tmp_path / "export")
    cache = tmp_path / "hub"
    hf_cache(cache, "saetool-test/tiny-saes", {f"res/layer_1/{f}": tmp_path / "export" / f for f in ("cfg.json", "sae_weights.safetensors")})
    (tmp_path / "extra.yaml").write_text(
        "tiny-gpt2-res:\n  conversion_func: null\n  model: tiny-gpt2\n  repo_id: saetool-test/tiny-saes\n  saes:\n"
        "  - id: blocks.1.hook_resid_post\n    path: res/layer_1\n    l0: 8\n"
    )
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "SAETOOL_SAE_REGISTRY": str(tmp_path / "extra.yaml")}
    proc = run_cli("check", "tiny-gpt2-res/blocks.1.hook_resid_post", str(tiny_acts), "--no-model", "--json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["verdict"] in ("SCALE UP", "FIX ISSUES FIRST") and (proc.returncode == 0) == (report["verdict"] == "SCALE UP")
    l0 = next(c for c in report["checks"] if "l0" in c["check"].lower())
    assert 0 < l0["value"] <= 8  # the tiny TopK SAE's k: it was this SAE that ran
    listing = run_cli("sae", "list", "--release", "tiny-gpt2-res", "--json", env=env)
    rows = json.loads(listing.stdout)
    assert [(r["sae_id"], r["hook"], r["l0"], r["cached"]) for r in rows] == [("blocks.1.hook_resid_post", "blocks.1.hook_resid_post", 8, True)]
    shutil.rmtree(cache)
    assert_clean_error(run_cli("check", "tiny-gpt2-res/blocks.1.hook_resid_post", str(tiny_acts), "--no-model", env=env), "not in the Hugging Face cache", "hf download saetool-test/tiny-saes")
