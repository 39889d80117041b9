"""Full disks and failing writes: nothing marked complete, one line, exit 2.

The stage tests write into a real, small tmpfs mounted for the test (root only;
skipped otherwise), so the disk really fills up mid-run; the other writers get
an injected ``ENOSPC`` at their root (:mod:`saetool.artifacts.files`).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.artifacts import ArtifactWriter, open_artifact
from saetool.artifacts import files
from saetool.artifacts.files import atomic_file, claim_temporary, write_atomic, write_error
from saetool.errors import ArtifactError

HOOK = "blocks.1.hook_resid_post"
FULL = "no space left on device writing"


def _mount(path: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    """``small_fs(size)``: a fresh tmpfs of ``size`` (e.g. ``"1m"``); unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (and mount)")
    mounted: list[Path] = []

    def make(size: str, name: str = "disk") -> Path:
        d = tmp_path / name
        d.mkdir()
        try:
            _mount(d, size)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.strip()}")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def files_in(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def assert_full_disk(proc: subprocess.CompletedProcess, output: Path) -> None:
    line = assert_clean_error(proc, FULL)
    assert line == f"error: no space left on device writing {output}; free space or choose another --output"
    assert proc.stdout == ""  # no success manifest
    assert proc.returncode == 2


# -- the stages, on a real full disk ----------------------------------------------------------------
@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_extract_on_a_full_disk_stops_and_so_does_the_pipe(small_fs, tiny_gpt2_dir, tmp_path):
    disk = small_fs("1m")
    out = disk / "acts.h5"
    args = ["extract", "--model", str(tiny_gpt2_dir), "--corpus", "kjv", "-n", "20000", "--layers", "0,1", "-o", str(out)]
    assert_full_disk(run_cli(*args), out)
    assert files_in(disk) == []  # no artifact, no partial, no lock

    # the pipe: extract | train -- the downstream stage stops with exit 2 too
    extract = subprocess.Popen([sys.executable, "-m", "saetool", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    train = subprocess.run([sys.executable, "-m", "saetool", "train", "-o", str(tmp_path / "sae.h5")], stdin=extract.stdout, capture_output=True, text=True)
    extract.stdout.close()
    extract.wait(timeout=300)
    assert extract.returncode == 2, extract.stderr.read()
    assert_clean_error(train, "stdin was empty")
    assert not (tmp_path / "sae.h5").exists()


@pytest.fixture
def acts(tmp_path) -> Path:
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    x, _ = sparse_dictionary_data(4000, 64, 128, active=4, seed=0)
    return write_activations(tmp_path / "acts.h5", {HOOK: x}, context_size=20)


TRAIN = ["--arch", "topk", "--d-sae", "2048", "--k", "8", "--steps", "30", "--batch-size", "64"]


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_train_on_a_full_disk(small_fs, acts):
    disk = small_fs("300k")  # not even one checkpoint fits
    out = disk / "sae.h5"
    proc = run_cli("train", str(acts), *TRAIN, "--checkpoint-every", "10", "-o", str(out))
    assert_full_disk(proc, Path(f"{out}.checkpoints"))
    assert files_in(disk) == []


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_train_keeps_its_checkpoints_when_the_artifact_does_not_fit_and_resumes(small_fs, acts):
    disk = small_fs("7m")  # the final checkpoints (~6 MB) fit, the 1 MB artifact after them does not
    out = disk / "sae.h5"
    proc = run_cli("train", str(acts), *TRAIN, "-o", str(out))
    assert_full_disk(proc, out)
    assert files_in(disk) == ["sae.h5.checkpoints"]  # no artifact, partial, history CSV or lock
    assert "--resume" in proc.stderr
    subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)  # free space
    proc = run_cli("train", str(acts), *TRAIN, "--resume", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with open_artifact(out, "sae") as art:
        assert bool(art.attrs["complete"])
    assert (disk / "sae.h5.history.csv").read_text().startswith("step,")


def test_interpret_on_a_full_disk(small_fs, acts, tmp_path):
    from saetool.train import TrainConfig, train_sae

    sae = tmp_path / "sae.h5"
    train_sae(TrainConfig(arch="topk", d_sae=256, k=4, batch_size=64, steps=5), [acts], sae, progress=False)
    disk = small_fs("200k")
    out = disk / "features.h5"
    assert_full_disk(run_cli("interpret", str(acts), "--sae", str(sae), "-o", str(out)), out)
    assert files_in(disk) == []


@pytest.fixture(scope="module")
def big_sae(tmp_path_factory):
    """A 1 MB topk SAE (2,048 features over d 64), trained two steps."""
    from saetool.train import TrainConfig, train_sae
    from saetool.train.synthetic import sparse_dictionary_data, write_activations

    d = tmp_path_factory.mktemp("big_sae")
    x, _ = sparse_dictionary_data(600, 64, 128, active=4, seed=0)
    acts = write_activations(d / "acts.h5", {HOOK: x}, context_size=20)
    train_sae(TrainConfig(arch="topk", d_sae=2048, k=4, batch_size=64, steps=2), [acts], d / "sae.h5", progress=False)
    return d / "sae.h5"


@pytest.mark.slow  # trains a 1 MB SAE, then three CLI runs (about 6 s)
@pytest.mark.parametrize("fmt", ["saelens", "sparsify", "dictionary-learning"])
def test_export_on_a_full_disk_names_the_output(fmt, small_fs, big_sae):
    """Every export format on a real full disk: one line naming the folder the user gave (not the
    staging folder inside it), exit 2, nothing left. torch.save (dictionary-learning's ae.pt) loses
    the errno of a failed write, so saetool saves into memory and writes the bytes itself."""
    disk = small_fs("256k")
    out = disk / "exported"
    assert_full_disk(run_cli("export", str(big_sae), "--format", fmt, "-o", str(out)), out)
    assert files_in(disk) == []


# -- the root mechanism, with injected errors --------------------------------------------------------
def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_is_one_line_naming_the_output():
    err = write_error(OSError(errno.ENOSPC, "No space left on device"), "out.h5")
    assert err.one_line() == "no space left on device writing out.h5; free space or choose another --output"
    h5 = RuntimeError("Can't close dataset (file write failed: ..., errno = 28, error message = 'No space left on device')")
    assert "no space left" in write_error(h5, "x").one_line()
    rust = Exception('Error while serializing: IoError(Os { code: 122, kind: QuotaExceeded, message: "Disk quota exceeded" })')
    assert write_error(rust, "x").one_line().startswith("disk quota exceeded writing x")
    assert "check the disk" in write_error(OSError(errno.EIO, "I/O"), "x").one_line()
    assert write_error(ValueError("bad"), "x") is None
    assert write_error(OSError(errno.ENOENT, "missing"), "x") is None


def test_atomic_file_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_text("old\n")
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(ArtifactError, match=f"{FULL} {target}"):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n" and files_in(tmp_path) == ["report.md"]


def test_atomic_file_on_a_full_disk(small_fs):
    disk = small_fs("64k")
    with pytest.raises(ArtifactError, match=FULL):
        with atomic_file(disk / "big.csv") as fh:
            for _ in range(200):
                fh.write("x" * 1000 + "\n")
    assert files_in(disk) == []


def test_a_full_disk_names_the_option_of_the_output_it_hit(tmp_path):
    """A failed write inside a sweep's --output-dir or at a --report says which option to change;
    a path no command named keeps --output."""
    from saetool.artifacts.outputs import check_outputs

    check_outputs({"--output-dir": tmp_path / "runs", "--report": tmp_path / "r.md"}, folders=["--output-dir"])
    check_outputs({"--output": tmp_path / "runs" / "tiny" / "cells" / "c.h5"})  # the cell's own writer checks it too
    full = OSError(errno.ENOSPC, "No space left on device")
    for path, option in ((tmp_path / "runs" / "tiny" / "cells" / "c.h5", "--output-dir"), (tmp_path / "r.md", "--report"), (tmp_path / "other.h5", "--output")):
        assert write_error(full, path).one_line() == f"no space left on device writing {path}; free space or choose another {option}"


def test_an_artifact_whose_close_fails_is_never_committed(tmp_path, monkeypatch):
    """A late write error (here at fsync, after HDF5 closed the file) leaves nothing marked complete."""
    import saetool.artifacts.store as store

    monkeypatch.setattr(store, "fsync_path", enospc)
    out = tmp_path / "v.h5"
    with pytest.raises(ArtifactError, match=f"{FULL} {out}"):
        with ArtifactWriter(out, "activations", {}) as w:
            w.file["x"] = np.zeros(10)
    assert files_in(tmp_path) == []


def test_errors_h5py_can_only_report_while_freeing_an_object_are_raised(tmp_path):
    """h5py reports a write that fails as it frees a dataset through sys.unraisablehook
    ("Exception ignored") and goes on; the writer raises it instead of committing."""
    out = tmp_path / "v.h5"
    with pytest.raises(ArtifactError, match=f"{FULL} {out}"):
        with ArtifactWriter(out, "activations", {}) as w:
            w.file["x"] = np.zeros(10)
            hook_args = type("U", (), {"exc_type": RuntimeError, "exc_value": RuntimeError("Can't close dataset (errno = 28, 'No space left on device')"),
                                       "exc_traceback": None, "err_msg": "Exception ignored in", "object": "h5py._objects.ObjectID.__dealloc__"})
            sys.unraisablehook(hook_args)
    assert files_in(tmp_path) == []
    assert "DeferredErrors" not in repr(sys.unraisablehook) and "DeferredErrors" not in repr(sys.excepthook)
    # The writer left the file open for good (HDF5 would crash closing a file it failed
    # to write); this one only had a simulated error, so close it and keep pytest alive.
    assert len(files._ABANDONED) == 1
    files._ABANDONED.pop().close()


def test_an_artifact_on_a_full_disk(small_fs):
    disk = small_fs("256k")
    out = disk / "a.h5"
    with pytest.raises(ArtifactError, match=f"{FULL} {out}"):
        with ArtifactWriter(out, "activations", {}, keep_partial_on_error=True) as w:
            ds = w.file.create_dataset("x", shape=(0, 64), maxshape=(None, 64), chunks=(256, 64), dtype="float32")
            for _ in range(50):
                n = ds.shape[0]
                ds.resize(n + 256, axis=0)
                ds[n:] = np.random.rand(256, 64)
                w.flush()
    assert files_in(disk) == []  # a failed write is not kept for --resume: its rows cannot be trusted


@pytest.mark.parametrize("writer", ["checkpoint", "export-saelens", "sweep-csv", "plot", "table"])
def test_other_writers_turn_enospc_into_one_line(writer, tmp_path, monkeypatch):
    """Each non-HDF5 writer, with ENOSPC injected where it writes: one line, nothing left."""
    monkeypatch.chdir(tmp_path)
    if writer == "checkpoint":
        from saetool.train import checkpoint
        from saetool.train.checkpoint import CheckpointDir

        monkeypatch.setattr(checkpoint, "save_file", enospc)
        with pytest.raises(ArtifactError, match=f"{FULL} ckpt"):
            CheckpointDir("ckpt").save("step_000001", {"w": torch.zeros(3)}, {"step": 1})
        assert list(Path("ckpt").iterdir()) == []
    elif writer == "export-saelens":
        from saetool.sae.config import SAEConfig
        from saetool.sae.formats import saelens
        from saetool.sae.formats.saelens import export_saelens
        from saetool.sae.model import SAE

        monkeypatch.setattr(saelens, "save_file", enospc)
        with pytest.raises(ArtifactError, match=f"{FULL} out"):
            export_saelens(SAE(SAEConfig(arch="relu", d_in=4, d_sae=8, hook="blocks.0.hook_resid_post")), "out")
        assert files_in(tmp_path) == []
    elif writer in ("sweep-csv", "table"):
        import pandas as pd

        from saetool.analysis.select import export_table

        monkeypatch.setattr(os, "fsync", enospc)
        with pytest.raises(ArtifactError, match=f"{FULL} t.csv"):
            export_table(pd.DataFrame({"a": [1, 2]}), "t.csv")
        assert files_in(tmp_path) == []
    else:
        import pandas as pd

        from saetool.steer.plots import plot_tradeoff

        monkeypatch.setattr(os, "fsync", enospc)
        summary = pd.DataFrame({
            "status": ["ok"] * 2, "split": ["harm_test", "benign"], "layer": [1, 1], "intervention": ["add", "add"],
            "alpha": [1.0, 1.0], "refusal_rate": [0.5, 0.1], "helpfulness_rate": [0.5, 0.9], "helpfulness_drop": [0.1, 0.1],
        })
        with pytest.raises(ArtifactError, match=f"{FULL} t.png"):
            plot_tradeoff(summary, Path("t.png"))
        assert files_in(tmp_path) == []


def test_the_cli_turns_any_stray_enospc_into_one_line(tmp_path, monkeypatch, capsys):
    """The error boundary: an OSError(ENOSPC) no stage converted is still one line, exit 2."""
    from saetool.cli import main as cli_main

    class Command:
        def main(self, *a, **k):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.bin"))

    monkeypatch.setattr(cli_main.typer.main, "get_command", lambda app: Command())
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["inspect", "x"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: no space left on device writing {tmp_path / 'x.bin'}; free space or choose another --output"


# -- symbolic links where saetool makes its own files ---------------------------------------------
def test_claim_temporary_refuses_a_link_and_clears_a_stale_file(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "a.partial").symlink_to(victim)
    with pytest.raises(ArtifactError, match="is a symbolic link where saetool keeps its"):
        claim_temporary(tmp_path / "a.partial")
    (tmp_path / "b.partial").write_text("stale")
    claim_temporary(tmp_path / "b.partial")
    assert not (tmp_path / "b.partial").exists() and victim.read_text() == "precious"


def test_link_refusal_names_the_option_that_named_the_output(tmp_path):
    """The hint names the option the output came from (--report, --html), not always --output;
    a path no option named gets "choose another path"."""
    from saetool.artifacts.outputs import check_outputs
    from saetool.locking import FileLock

    victim = tmp_path / "victim"
    victim.write_text("precious")
    check_outputs({"--report": tmp_path / "r.txt", "--html": tmp_path / "p.html"}, overwrite=True)
    for name in ("r.txt.partial", "p.html.lock", "free.txt.partial"):
        (tmp_path / name).symlink_to(victim)
    with pytest.raises(ArtifactError) as report:
        write_atomic(tmp_path / "r.txt", "x")
    with pytest.raises(ArtifactError) as html:
        FileLock(tmp_path / "p.html.lock", lambda: ArtifactError("busy")).acquire()
    with pytest.raises(ArtifactError) as free:
        write_atomic(tmp_path / "free.txt", "x")
    assert str(report.value).endswith("saetool will not write through it; remove the link, or choose another --report")
    assert str(html.value).endswith("keeps its lock file; saetool will not write through it; remove the link, or choose another --html")
    assert str(free.value).endswith("remove the link, or choose another path")
    assert victim.read_text() == "precious"


def test_links_at_any_outputs_partial_or_lock_file_are_refused_before_work(tmp_path):
    """check_outputs runs before a command writes anything: a link planted at the partial or
    lock file of its second output (interpret's --report after -o) stops it there, so the first
    output is never written either."""
    from saetool.artifacts.outputs import check_outputs

    victim = tmp_path / "victim"
    victim.write_text("precious")
    outputs = {"-o": tmp_path / "f.h5", "--report": tmp_path / "r.md"}
    check_outputs(outputs)  # nothing planted: fine
    for planted, what in (("r.md.partial", "partial output"), ("r.md.lock", "lock file")):
        (tmp_path / planted).symlink_to(victim)
        with pytest.raises(ArtifactError, match=f"r.md.{planted.rsplit('.', 1)[1]} is a symbolic link where saetool keeps its {what}.*another --report"):
            check_outputs(outputs)
        (tmp_path / planted).unlink()
    assert victim.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["victim"]


def test_hdf5_partial_link_is_refused(tmp_path):
    victim = tmp_path / "victim.h5"
    with h5py.File(victim, "w") as fh:
        fh["keep"] = [1, 2, 3]
    before = victim.read_bytes()
    (tmp_path / "out.h5.partial").symlink_to(victim)
    for resume in (False, True):
        with pytest.raises(ArtifactError, match="symbolic link"):
            with ArtifactWriter(tmp_path / "out.h5", "activations", {}, resume=resume) as w:
                w.file["x"] = [1]
    assert victim.read_bytes() == before and (tmp_path / "out.h5.partial").is_symlink()
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.h5.lock").exists()
