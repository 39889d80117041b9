"""Steering vectors out and back in: llama.cpp control-vector GGUF, repeng, .npy, .pt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.errors import SaetoolError
from saetool.steer.vector_formats import export_vectors, import_control_vector, read_control_vector
from saetool.steer.vectors import SteeringVector, import_vector, read_vector, write_vector

PROV = {"saetool_version": "test", "command": "pytest"}


def sv(layer: int, d: int = 16, seed: int = 0, site: str = "hook_resid_post") -> SteeringVector:
    v = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return SteeringVector(vector=v, hook=f"blocks.{layer}.{site}", model="smollm2-135m", method="diff-means")


def test_gguf_is_what_llama_cpp_reads(tmp_path):
    """Read with the gguf package's own reader: arch, model hint, layer count, direction.L names, shapes, values."""
    import gguf

    vecs = [sv(3, seed=1), sv(6, seed=2), sv(5, seed=3, site="hook_resid_pre")]  # resid_pre 5 == resid_post 4
    export_vectors(vecs, tmp_path / "cv.gguf", "gguf")
    r = gguf.GGUFReader(str(tmp_path / "cv.gguf"))
    text = lambda key: bytes(r.get_field(key).parts[-1]).decode()  # noqa: E731
    assert text("general.architecture") == "controlvector"
    assert text("controlvector.model_hint") == "smollm2-135m"
    assert int(r.get_field("controlvector.layer_count").parts[-1][0]) == 3
    tensors = {t.name: t for t in r.tensors}
    assert sorted(tensors) == ["direction.3", "direction.4", "direction.6"]
    for name, v in (("direction.3", vecs[0]), ("direction.6", vecs[1]), ("direction.4", vecs[2])):
        t = tensors[name]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and [int(n) for n in t.shape] == [16]
        np.testing.assert_array_equal(np.asarray(t.data), v.vector.numpy())


@pytest.mark.parametrize("fmt", ["gguf", "repeng", "npy", "pt"])
def test_round_trip(tmp_path, fmt):
    v = sv(7, seed=4)
    write_vector(tmp_path / "v.h5", v, provenance=PROV)
    out = tmp_path / f"v.{'gguf' if fmt in ('gguf', 'repeng') else fmt}"
    export_vectors([read_vector(tmp_path / "v.h5")], out, fmt)
    if fmt in ("gguf", "repeng"):
        back = import_control_vector(out)
        assert (back.hook, back.model, back.method) == (v.hook, v.model, v.method)
    else:
        back = import_vector(out, v.hook)
    assert torch.equal(back.vector, v.vector)


def test_repeng_hint_and_a_foreign_file(tmp_path):
    """repeng records the model_type; a GGUF without saetool's keys (as repeng or llama.cpp's
    cvector-generator write it) imports at blocks.L.hook_resid_post."""
    import gguf

    export_vectors([sv(2)], tmp_path / "r.gguf", "repeng")
    assert read_control_vector(tmp_path / "r.gguf")[1]["model_hint"] == "llama"  # SmolLM2 is a llama
    w = gguf.GGUFWriter(str(tmp_path / "foreign.gguf"), "controlvector")
    w.add_string("controlvector.model_hint", "mistral")
    w.add_uint32("controlvector.layer_count", 2)
    dirs = {10: np.arange(8, dtype=np.float32), 11: -np.arange(8, dtype=np.float32)}
    for layer, a in dirs.items():
        w.add_tensor(f"direction.{layer}", a)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    with pytest.raises(SaetoolError, match="holds 2 layers"):
        import_control_vector(tmp_path / "foreign.gguf")
    got = import_control_vector(tmp_path / "foreign.gguf", layer=11, model="mistral-7b")
    assert (got.hook, got.model) == ("blocks.11.hook_resid_post", "mistral-7b")
    assert torch.equal(got.vector, torch.from_numpy(dirs[11]))


def test_what_has_no_control_vector_equivalent_is_refused(tmp_path):
    with pytest.raises(SaetoolError, match="no llama.cpp/repeng equivalent"):
        export_vectors([sv(3, site="hook_mlp_out")], tmp_path / "x.gguf", "gguf")
    with pytest.raises(SaetoolError, match="never steers"):
        export_vectors([sv(0)], tmp_path / "x.gguf", "gguf")
    with pytest.raises(SaetoolError, match="two vectors for llama.cpp layer 4"):
        export_vectors([sv(4), sv(5, site="hook_resid_pre")], tmp_path / "x.gguf", "gguf")
    with pytest.raises(SaetoolError, match="holds one vector"):
        export_vectors([sv(3), sv(4)], tmp_path / "x.npy", "npy")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_vector_export_and_import_cli(tmp_path):
    write_vector(tmp_path / "v.h5", sv(9, seed=5), provenance=PROV)
    proc = run_cli("vector", "export", str(tmp_path / "v.h5"), "--format", "gguf", "-o", str(tmp_path / "v.gguf"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "vector-gguf"
    proc = run_cli("vector", "import", str(tmp_path / "v.gguf"), "-o", str(tmp_path / "back.h5"))
    assert proc.returncode == 0, proc.stderr
    back = read_vector(tmp_path / "back.h5")
    assert back.hook == "blocks.9.hook_resid_post" and torch.equal(back.vector, sv(9, seed=5).vector)
    assert_clean_error(run_cli("vector", "export", str(tmp_path / "v.h5"), "--format", "onnx"), "unknown vector format 'onnx'")
