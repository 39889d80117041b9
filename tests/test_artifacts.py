"""The artifact layer: atomic writes, validation on read, locks, manifests, provenance."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from saetool.artifacts import ArtifactWriter, build_provenance, emit_manifest, open_artifact, resolve_input
from saetool.artifacts.arrays import append_rows, create_rows_dataset, from_storage, to_storage
from saetool.artifacts.manifest import read_manifests
from saetool.artifacts.provenance import command_line, file_sha256
from saetool.artifacts.store import partial_path
from saetool.errors import ArtifactError, SaetoolError
from saetool.train.synthetic import write_activations


def write_sample(path, **kw):
    prov = build_provenance(model="m", backend="b", hooks=["blocks.0.hook_resid_post"], corpus="c", argv=["saetool", "x"])
    with ArtifactWriter(path, "activations", prov, **kw) as w:
        w.file.attrs["hooks"] = json.dumps(["blocks.0.hook_resid_post"])
        w.file.attrs["n_tokens"] = 3
        w.file.attrs["context_size"] = 4
        for name in ("tokens/token_ids", "tokens/seq_index", "tokens/position"):
            w.file.create_dataset(name, data=np.arange(3))
        w.file.create_dataset("sequences/token_ids", data=np.arange(4).reshape(1, 4))
        w.file.create_dataset("activations/blocks.0.hook_resid_post", data=np.zeros((3, 2), np.float32))
    return path


def test_write_then_read_roundtrip(tmp_path):
    out = write_sample(tmp_path / "a.h5")
    assert out.exists() and not partial_path(out).exists()
    assert not (tmp_path / "a.h5.lock").exists()
    with open_artifact(out, kind="activations") as art:
        assert art.kind == "activations"
        assert art.schema_version == 1
        assert art.attrs["complete"]
        prov = art.provenance
    assert prov["model"] == "m" and prov["hooks"] == ["blocks.0.hook_resid_post"]
    assert prov["command"] == "saetool x"
    assert prov["saetool_version"]
    assert prov["created"].endswith("+00:00")


def test_parent_hash_recorded(tmp_path):
    parent = write_sample(tmp_path / "p.h5")
    prov = build_provenance(parents=[parent], argv=["saetool"])
    assert prov["parents"][0]["sha256"] == file_sha256(parent)
    assert prov["parents"][0]["kind"] == "activations"
    assert len(prov["parents"][0]["sha256"]) == 64


def test_parent_hash_is_read_once_and_follows_a_changed_file(tmp_path, monkeypatch):
    import saetool.artifacts.provenance as provenance

    parent = tmp_path / "p.bin"
    parent.write_bytes(b"a" * 100)
    calls = []
    monkeypatch.setattr(provenance, "file_sha256", lambda p: calls.append(p) or str(Path(p).read_bytes()[:1]))
    first = [build_provenance(parents=[parent])["parents"][0]["sha256"] for _ in range(3)]
    assert first == ["b'a'"] * 3 and len(calls) == 1
    parent.write_bytes(b"b" * 100)  # same size, new content (a new mtime)
    os.utime(parent, ns=(parent.stat().st_atime_ns, parent.stat().st_mtime_ns + 1_000_000))
    assert build_provenance(parents=[parent])["parents"][0]["sha256"] == "b'b'" and len(calls) == 2


def test_existing_output_refused_without_overwrite(tmp_path):
    out = write_sample(tmp_path / "a.h5")
    with pytest.raises(ArtifactError, match="already exists"):
        write_sample(out)
    write_sample(out, overwrite=True)


def test_user_error_inside_writer_leaves_nothing(tmp_path):
    out = tmp_path / "a.h5"
    with pytest.raises(SaetoolError):
        with ArtifactWriter(out, "activations", {}, keep_partial_on_error=True):
            raise SaetoolError("bad input")
    assert not out.exists() and not partial_path(out).exists()


def test_crash_keeps_partial_for_resume_only_when_resumable(tmp_path):
    out = tmp_path / "a.h5"
    with pytest.raises(RuntimeError):
        with ArtifactWriter(out, "activations", {}, keep_partial_on_error=True):
            raise RuntimeError("crash")
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(RuntimeError):
        with ArtifactWriter(tmp_path / "b.h5", "activations", {}):
            raise RuntimeError("crash")
    assert not partial_path(tmp_path / "b.h5").exists()


def test_unknown_kind_newer_schema_wrong_kind_refused(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as fh:
        fh.attrs["saetool_kind"] = "martian"
        fh.attrs["schema_version"] = 1
    with pytest.raises(ArtifactError, match="unknown artifact kind 'martian'"):
        open_artifact(p)
    with h5py.File(p, "w") as fh:
        fh.attrs["saetool_kind"] = "activations"
        fh.attrs["schema_version"] = 99
    with pytest.raises(ArtifactError, match="newer than this saetool reads"):
        open_artifact(p)
    good = write_sample(tmp_path / "g.h5")
    with pytest.raises(ArtifactError, match="but this needs 'sae'"):
        open_artifact(good, kind="sae")


def test_not_hdf5_truncated_and_foreign_refused(tmp_path):
    txt = tmp_path / "t.h5"
    txt.write_text("hello")
    with pytest.raises(ArtifactError, match="not an HDF5 file"):
        open_artifact(txt)
    good = write_sample(tmp_path / "g.h5")
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupt|truncated|not an HDF5"):
        open_artifact(cut)
    foreign = tmp_path / "f.h5"
    with h5py.File(foreign, "w") as fh:
        fh["x"] = [1, 2]
    with pytest.raises(ArtifactError, match="not a saetool artifact"):
        open_artifact(foreign)
    with pytest.raises(ArtifactError, match="does not exist"):
        open_artifact(tmp_path / "missing.h5")


def test_missing_required_dataset_refused(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as fh:
        fh.attrs["saetool_kind"] = "activations"
        fh.attrs["schema_version"] = 1
    with pytest.raises(ArtifactError, match="has no dataset"):
        open_artifact(p)


def test_second_writer_is_refused_by_lock(tmp_path):
    out = tmp_path / "a.h5"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from saetool.artifacts import ArtifactWriter
        with ArtifactWriter({str(out)!r}, "activations", {{}}):
            print("locked", flush=True)
            sys.stdin.readline()
            raise SystemExit(3)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ArtifactError, match="another saetool process is writing"):
            with ArtifactWriter(out, "activations", {}):
                pass
        assert partial_path(out).exists()  # the first writer's file is untouched
    finally:
        proc.communicate("\n", timeout=60)
    assert not out.exists()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_tensor_storage_roundtrip(tmp_path, dtype):
    t = torch.randn(5, 7).to(getattr(torch, dtype))
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        ds = create_rows_dataset(fh, "a", 7, dtype)
        append_rows(ds, to_storage(t[:2], dtype))
        append_rows(ds, to_storage(t[2:], dtype))
        back = from_storage(ds[:], ds.attrs["saetool_dtype"])
    assert back.dtype == getattr(torch, dtype)
    assert torch.equal(back, t)


def test_manifest_roundtrip_and_resolve_input(tmp_path, capsys):
    (tmp_path / "a.h5").write_bytes(b"")
    record = emit_manifest(tmp_path / "a.h5", "activations", force=True, n_tokens=3)
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert json.loads(line) == record
    assert record["path"] == str((tmp_path / "a.h5").resolve())
    stream = io.StringIO("\n" + line)
    assert read_manifests(stream)[0]["kind"] == "activations"
    assert str(resolve_input("-", stream=io.StringIO(line))) == record["path"]
    assert str(resolve_input(tmp_path / "b.h5")) == str(tmp_path / "b.h5")
    with pytest.raises(SaetoolError, match="not a saetool manifest"):
        resolve_input(None, stream=io.StringIO("garbage\n"))
    with pytest.raises(SaetoolError, match="stdin was empty"):
        resolve_input(None, stream=io.StringIO(""))
    # the manifest is strict JSON: a figure that is NaN or infinite is null (json.dumps would write NaN / Infinity)
    emit_manifest(tmp_path / "a.h5", "activations", force=True, fvu=float("nan"), lift=[float("inf"), 2.0])
    line = capsys.readouterr().out
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}")) == {
        "path": str((tmp_path / "a.h5").resolve()), "kind": "activations", "fvu": None, "lift": [None, 2.0]}


@pytest.mark.parametrize(
    "line, why",
    [
        ('{"path": 123}', "'path' is 123, not a file path"),
        ("null", "a JSON null, not an object"),
        ("[1, 2]", "a JSON list, not an object"),
        ('"a.h5"', "a JSON string, not an object"),
        ('{"kind": "sae"}', "no 'path'"),
        ('{"path": ""}', "not a file path"),
        ('{"path": "ACTS", "kind": false}', "'kind' is false"),
        ('{"path": "ACTS", "kind": ""}', "'kind' is \"\""),
        ('{"path": "ACTS", "kind": "sae"}', "it says kind 'sae', but"),
        ('{"path": "MISSING"}', "MISSING does not exist"),
    ],
)
def test_a_malformed_upstream_manifest_is_one_clear_error(tmp_path, line, why):
    acts = tmp_path / "acts.h5"
    write_activations(acts, {"h": torch.zeros(4, 2)}, context_size=2)
    gone = str(tmp_path / "gone.h5")
    with pytest.raises(SaetoolError) as info:
        resolve_input(None, stream=io.StringIO(line.replace("ACTS", str(acts)).replace("MISSING", gone) + "\n"))
    assert info.value.message.startswith("the upstream manifest on stdin is malformed (")
    assert why.replace("MISSING", gone) in info.value.message


def test_command_line_redacts_secrets():
    line = command_line(["/usr/bin/saetool", "interpret", "--api-key", "sk-123", "--token=abc", "--hf_token", "hf_x", "--layers", "3"])
    assert "sk-123" not in line and "abc" not in line and "hf_x" not in line
    assert line.startswith("saetool interpret --api-key '***'")
    assert "--layers 3" in line


@pytest.mark.parametrize("name", ["--api-key", "--api-keys", "--token", "--hf-token", "--access-tokens", "--hfToken", "--accesstoken", "accessToken", "OPENAI_API_KEY", "--password", "--auth-header"])
def test_secret_names(name):
    from saetool.artifacts.provenance import command_line, is_secret_name

    assert is_secret_name(name)
    assert "s3cr3t" not in command_line(["saetool", "interpret", "--labeler-option", f"{name.lstrip('-')}=s3cr3t"])
    if name.startswith("--"):
        assert "s3cr3t" not in command_line(["saetool", "interpret", name, "s3cr3t"]) + command_line(["saetool", "interpret", f"{name}=s3cr3t"])


def test_command_line_keeps_token_counts_so_it_reruns():
    argv = ["saetool", "extract", "--num-tokens", "8192", "--skip-tokens=4096", "--max-new-tokens", "16", "--token-ids", "ids.npy", "--dead-tokens", "100", "--exclude-tokens", "1,2"]
    assert command_line(argv) == " ".join(argv)


def test_command_line_redacts_credentials_in_urls_and_key_value_options():
    line = command_line([
        "saetool", "interpret", "--labeler-option", "url=https://me:pw1@api.example.com:8443/v1?token=tk2#frag",
        "--labeler-option", "api_key=sk-3", "--labeler-option", "model=gpt-4o", "--corpus", "hub:https://h.example/d?sig=s4",
    ])
    for secret in ("pw1", "tk2", "sk-3", "s4", "frag"):
        assert secret not in line, secret
    assert "url=https://api.example.com:8443/v1" in line and "model=gpt-4o" in line and "'api_key=***'" in line


def test_text_arrays_store_nul_as_a_visible_symbol(tmp_path):
    import h5py

    from saetool.artifacts.arrays import NUL_SHOWN, text_array

    with h5py.File(tmp_path / "t.h5", "w") as fh:
        fh.create_dataset("t", data=text_array(["a\x00b", "", "ü"]), dtype=h5py.string_dtype())
        assert [v.decode() for v in fh["t"][()]] == [f"a{NUL_SHOWN}b", "", "ü"]


def test_check_not_being_written_probes_the_writer_lock_without_taking_it(tmp_path):
    from saetool.artifacts.store import check_not_being_written
    from saetool.locking import FileLock

    out = tmp_path / "f.h5"
    check_not_being_written(out)  # no lock file: free, and none is made
    assert not (tmp_path / "f.h5.lock").exists()
    lock = FileLock(tmp_path / "f.h5.lock", lambda: ArtifactError("busy"))
    with lock:
        with pytest.raises(ArtifactError, match=f"another saetool process is writing {out}"):
            check_not_being_written(out)
        assert (tmp_path / "f.h5.lock").read_text() == str(os.getpid())  # the owner's file untouched
    (tmp_path / "f.h5.lock").write_text("123")  # a killed owner's leftover: free
    check_not_being_written(out)


def test_resume_check_names_what_changed_and_compares_as_stored():
    from saetool.artifacts.resume import changed_settings, check_resumable
    from saetool.errors import SaetoolError

    before = {"lr": 0.001, "hooks": ["blocks.3.hook_resid_post"], "seed": 0}
    assert changed_settings(before, {"lr": 0.001, "hooks": ("blocks.3.hook_resid_post",), "seed": 0}) == []
    assert changed_settings(before, {"lr": 0.002, "hooks": ["x"], "seed": 0}) == ["hooks", "lr"]
    assert changed_settings(before, {"lr": 0.002, "hooks": ["x"]}, keys=["seed", "lr"]) == ["seed", "lr"]
    check_resumable(before, dict(before), "run.h5")
    with pytest.raises(SaetoolError, match=r"cannot resume run\.h5: it was made with different lr, steps") as info:
        check_resumable(before, {**before, "lr": 0.1}, "run.h5", keys=["lr", "seed"], also_changed=["steps"], hint="do this")
    assert info.value.hint == "do this"


def test_a_complete_attribute_that_is_not_true_or_false_is_refused(tmp_path):
    """Every kind's ``complete`` flag is checked when a file is opened (issue 16, class 5): an array there
    made `audit` raise "truth value of an array ... is ambiguous" (an internal error)."""
    path = write_activations(tmp_path / "a.h5", {"blocks.0.hook_resid_post": torch.randn(8, 4)}, context_size=4)
    with h5py.File(path, "r+") as fh:
        fh.attrs["complete"] = np.array([1, 2])
    with pytest.raises(ArtifactError, match=r"attribute 'complete' is array\(\[1, 2\]\), not true or false"):
        open_artifact(path).close()
