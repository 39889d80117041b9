"""The ``sae`` artifact, load_sae dispatch, sparsify folders and ``saetool export``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.errors import ArtifactError, SaetoolError
from saetool.hookspecs import hookimpl
from saetool.sae.config import SAEConfig
from saetool.sae.io import check_sae_matches, load_sae, read_sae_artifact, write_sae_artifact
from saetool.sae.model import SAE

PROV = {"saetool_version": "test", "command": "pytest"}


def make_sae(activation: str = "relu", *, transcoder: bool = False, apply_b_dec: bool = True, dtype: torch.dtype = torch.float32, seed: int = 0, d_in: int = 16, d_sae: int = 40) -> SAE:
    cfg = SAEConfig(
        arch=activation,
        d_in=d_in,
        d_sae=d_sae,
        hook="blocks.2.hook_resid_mid" if transcoder else "blocks.2.hook_resid_post",
        hook_out="blocks.2.hook_mlp_out" if transcoder else None,
        d_out=12 if transcoder else None,
        activation=activation,
        k=6 if activation == "topk" else None,
        model="smollm2-135m",
        apply_b_dec_to_input=apply_b_dec,
        dtype=str(dtype).removeprefix("torch."),
        options={"note": "test"},
    )
    sae = SAE(cfg, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=gen).to(dtype))
        if activation == "jumprelu":
            sae.threshold.copy_(torch.rand(d_sae, generator=gen).to(dtype))
    return sae


def assert_same_sae(a: SAE, b: SAE, *, atol: float = 0.0) -> None:
    assert a.cfg.to_dict() | {"options": None} == b.cfg.to_dict() | {"options": None}
    assert a.dtype == b.dtype
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    x = torch.randn(32, a.cfg.d_in, generator=torch.Generator().manual_seed(1)).to(a.dtype)
    torch.testing.assert_close(a.encode(x), b.encode(x), atol=atol, rtol=0)
    torch.testing.assert_close(a(x), b(x), atol=atol, rtol=0)


# -- the sae artifact ---------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "topk", "jumprelu"])
@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_round_trip_every_activation(tmp_path, activation, apply_b_dec):
    sae = make_sae(activation, apply_b_dec=apply_b_dec)
    path = write_sae_artifact(tmp_path / "sae.h5", sae, provenance=PROV)
    assert path == tmp_path / "sae.h5" and path.exists()
    assert not (tmp_path / "sae.h5.partial").exists()
    with read_sae_artifact(path) as art:
        assert art.config.activation == activation
        assert art.config.options == {"note": "test"}
        assert art.provenance == PROV
        back = art.sae()
    assert_same_sae(sae, back)
    assert_same_sae(sae, load_sae(path))


def test_round_trip_transcoder(tmp_path):
    sae = make_sae("jumprelu", transcoder=True)
    assert sae.cfg.is_transcoder and sae.cfg.d_out == 12
    back = load_sae(write_sae_artifact(tmp_path / "tc.h5", sae, provenance=PROV))
    assert back.cfg.is_transcoder and back.cfg.hook_out == "blocks.2.hook_mlp_out"
    assert back.W_dec.shape == (40, 12)
    assert_same_sae(sae, back)


def test_round_trip_bfloat16(tmp_path):
    sae = make_sae("topk", dtype=torch.bfloat16)
    path = write_sae_artifact(tmp_path / "bf16.h5", sae, provenance=PROV)
    with read_sae_artifact(path) as art:
        ds = art.file["weights/W_enc"]
        assert ds.dtype == np.uint16 and ds.attrs["saetool_dtype"] == "bfloat16"
        assert art.config.dtype == "bfloat16"
        back = art.sae()
    assert back.dtype == torch.bfloat16
    assert_same_sae(sae, back)


def test_history_training_and_extra(tmp_path):
    history = {
        "step": np.arange(5),
        "loss": np.linspace(2, 1, 5),
        "mse": np.linspace(1.5, 0.5, 5),
        "explained_variance": np.linspace(0.1, 0.9, 5),
        "l0": np.array([30, 20, 12, 9, 8.0]),
        "dead_fraction": np.zeros(5),
        "lr": np.full(5, 4e-4),
    }

    def extra(fh):
        fh.create_group("samples").create_dataset("feature_ids", data=np.arange(3))
        fh["samples"].attrs["n"] = 3

    sae = make_sae()
    path = write_sae_artifact(tmp_path / "h.h5", sae, provenance=PROV, training={"lr": 4e-4, "steps": 5, "path": tmp_path}, history=history, write_extra=extra)
    with read_sae_artifact(path) as art:
        df = art.history
        assert list(df.columns) == list(history)  # the order written, not alphabetical
        for name, values in history.items():
            np.testing.assert_array_equal(df[name].to_numpy(), values)
        assert art.training == {"lr": 4e-4, "steps": 5, "path": str(tmp_path)}
        assert list(art.file["samples/feature_ids"][()]) == [0, 1, 2]
        assert art.file.attrs["complete"]


def test_history_from_dataframe_and_empty(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"step": [0, 10], "loss": [1.0, 0.5]})
    path = write_sae_artifact(tmp_path / "df.h5", make_sae(), provenance=PROV, history=df)
    with read_sae_artifact(path) as art:
        pd.testing.assert_frame_equal(art.history, df)
    path = write_sae_artifact(tmp_path / "none.h5", make_sae(), provenance=PROV)
    with read_sae_artifact(path) as art:
        assert art.history.empty and art.training == {}


def test_bad_history_is_refused_before_writing(tmp_path):
    with pytest.raises(SaetoolError, match="different lengths"):
        write_sae_artifact(tmp_path / "x.h5", make_sae(), provenance=PROV, history={"step": np.arange(3), "loss": np.ones(2)})
    assert list(tmp_path.iterdir()) == []


def test_write_extra_error_leaves_nothing(tmp_path):
    def extra(fh):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_sae_artifact(tmp_path / "x.h5", make_sae(), provenance=PROV, write_extra=extra)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    path = write_sae_artifact(tmp_path / "x.h5", make_sae(seed=0), provenance=PROV)
    with pytest.raises(ArtifactError, match="already exists"):
        write_sae_artifact(path, make_sae(seed=1), provenance=PROV)
    write_sae_artifact(path, make_sae(seed=1), provenance=PROV, overwrite=True)
    assert_same_sae(load_sae(path), make_sae(seed=1))


def test_wrong_kind_and_missing_weights(tmp_path):
    import h5py

    from saetool.artifacts.store import ArtifactWriter

    with ArtifactWriter(tmp_path / "acts.h5", "activations", PROV) as w:
        for name in ("tokens/token_ids", "tokens/seq_index", "tokens/position", "sequences/token_ids"):
            w.file.create_dataset(name, data=np.zeros(1))
    with pytest.raises(ArtifactError, match="'activations' artifact, but this needs 'sae'"):
        load_sae(tmp_path / "acts.h5")

    path = write_sae_artifact(tmp_path / "sae.h5", make_sae(), provenance=PROV)
    with h5py.File(path, "r+") as fh:
        del fh["weights/W_dec"]
    with pytest.raises(ArtifactError, match="has no dataset 'weights/W_dec'"):
        load_sae(path)


def test_sae_kind_is_registered():
    from saetool.artifacts.kinds import get_kind

    kind = get_kind("sae")
    assert kind.schema_version == 1
    assert set(kind.required_datasets) == {"weights/W_enc", "weights/W_dec", "weights/b_enc", "weights/b_dec"}
    assert kind.required_attrs == ("config",)


# -- load_sae dispatch ----------------------------------------------------------------
class FakeFormat:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def load_sae(self, path, device):
        self.calls.append((path, device))
        if path.endswith(".fake") or path.endswith("claimed.h5"):
            return make_sae("topk", seed=7)
        return None


@pytest.fixture
def fake_plugin():
    from saetool.plugins import host, reset_host

    reset_host()
    plugin = FakeFormat()
    host().register_plugin(plugin, "fake-format")
    try:
        yield plugin
    finally:
        reset_host()


def test_plugin_load_sae_hook_wins(tmp_path, fake_plugin):
    assert_same_sae(load_sae("weights.fake"), make_sae("topk", seed=7))  # need not exist on disk
    # the plugin is asked first, even for a path saetool itself can read
    path = write_sae_artifact(tmp_path / "claimed.h5", make_sae("relu"), provenance=PROV)
    assert load_sae(path).cfg.activation == "topk"
    other = write_sae_artifact(tmp_path / "mine.h5", make_sae("relu"), provenance=PROV)
    assert load_sae(other, "cpu").cfg.activation == "relu"
    assert fake_plugin.calls[-1] == (str(other), "cpu")


class NpzFormat:
    """A plugin format through the current hooks: ``.npz`` files read, written by ``export --format npz``."""

    def __init__(self) -> None:
        self.asked: list[Path] = []

    class Reader:
        name, description = "npz", "numpy .npz of the four weights"

        def __init__(self, asked: list[Path]) -> None:
            self.asked = asked

        def can_read(self, path):
            self.asked.append(path)
            return path.suffix == ".npz"

        def read(self, path, device):
            if not path.exists():  # a reader may resolve names of its own
                return make_sae("topk", seed=7)
            sae = make_sae()
            sae.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()})
            return sae

    class Exporter:
        name, description = "npz", "the four weights as one .npz in a folder"

        def check(self, sae):
            if sae.suffix != ".h5":
                raise SaetoolError(f"{sae} is not an .h5 file")

        def export(self, sae, out, settings):
            out.mkdir()
            weights = load_sae(sae, settings.device).state_dict()
            np.savez(out / "weights.npz", **{k: v.numpy() for k, v in weights.items()})
            return f"npz of {sae.name}"

    @hookimpl
    def register_sae_readers(self, register):
        register(self.Reader(self.asked))

    @hookimpl
    def register_exporters(self, register):
        register(self.Exporter())


@pytest.fixture
def npz_plugin():
    from saetool.plugins import host, reset_host

    reset_host()
    plugin = NpzFormat()
    host().register_plugin(plugin, "npz-format")
    try:
        yield plugin
    finally:
        reset_host()


def test_a_plugin_reader_and_exporter_round_trip(tmp_path, npz_plugin, capsys):
    from saetool.cli.export_cmd import export

    src = write_sae_artifact(tmp_path / "sae.h5", make_sae(seed=3), provenance=PROV)
    export(src, "npz", tmp_path / "out", None, "cpu", False)
    assert json.loads(capsys.readouterr().out) == {"path": str((tmp_path / "out").resolve()), "kind": "npz"}
    assert_same_sae(load_sae(tmp_path / "out" / "weights.npz"), make_sae(seed=3))
    assert npz_plugin.asked[0] == tmp_path / "sae.h5"  # asked before the built-in readers, and said no
    assert_same_sae(load_sae("hub/name.npz"), make_sae("topk", seed=7))  # need not exist on disk
    with pytest.raises(SaetoolError, match="is not an .h5 file"):
        export(tmp_path / "out" / "weights.npz", "npz", tmp_path / "again", None, "cpu", False)
    assert not (tmp_path / "again").exists()
    with pytest.raises(SaetoolError, match="not an SAE saetool can read") as exc:
        load_sae(tmp_path / "out")  # a folder holding no SAE a reader takes as a folder
    assert "numpy .npz of the four weights; saetool training checkpoint folder" in exc.value.one_line()


def test_unknown_paths_are_one_line_errors(tmp_path):
    with pytest.raises(SaetoolError, match="does not exist") as exc:
        load_sae(tmp_path / "nope")
    assert "\n" not in exc.value.one_line()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(SaetoolError) as exc:
        load_sae(tmp_path / "empty")
    line = exc.value.one_line()
    assert str(tmp_path / "empty") in line and "SAELens" in line and "sparsify" in line and "plugin" in line
    (tmp_path / "x.bin").write_bytes(b"\0\1")
    with pytest.raises(SaetoolError, match="not an SAE saetool can read"):
        load_sae(tmp_path / "x.bin")


# -- consistency checks -----------------------------------------------------------------
def test_check_sae_matches():
    sae = make_sae()
    check_sae_matches(sae, d_in=16, hook="blocks.2.hook_resid_post", model="smollm2-135m")
    check_sae_matches(sae, model="HuggingFaceTB/SmolLM2-135M-Instruct")  # the embedded model's hub id
    check_sae_matches(sae.cfg, d_in=16)
    with pytest.raises(SaetoolError, match="d_in=16 but the activations have d=32"):
        check_sae_matches(sae, d_in=32)
    with pytest.raises(SaetoolError, match="reads blocks.2.hook_resid_post but the activations are from blocks.3"):
        check_sae_matches(sae, hook="blocks.3.hook_resid_post")
    with pytest.raises(SaetoolError, match="trained on model 'smollm2-135m'"):
        check_sae_matches(sae, model="gemma3-270m")
    sae.cfg.model = None
    check_sae_matches(sae, model="gemma3-270m")  # unknown model: not checked


# -- sparsify ---------------------------------------------------------------------------
# The layout below is EleutherAI sparsify's, from github.com/EleutherAI/sparsify:
# sparsify/sparse_coder.py (SparseCoder.__init__ / save_to_disk / load_from_disk /
# encode / decode), sparsify/fused_encoder.py (FusedEncoder.forward) and
# sparsify/trainer.py (Trainer._checkpoint / save). Each hookpoint folder holds
# cfg.json (the SparseCoderConfig fields plus d_in) and sae.safetensors with
# encoder.weight [num_latents, d_in], encoder.bias [num_latents],
# W_dec [num_latents, d_in], b_dec [d_in]; a run folder holds config.json,
# state.pt, optimizer_0.pt, lr_scheduler_0.pt and one folder per hookpoint.
def sparsify_cfg(d_in: int, k: int, **over) -> dict:
    cfg = {
        "activation": "topk",
        "expansion_factor": 32,
        "normalize_decoder": True,
        "num_latents": 0,
        "k": k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": d_in,
    }
    cfg.update(over)
    return cfg


def write_sparsify(folder: Path, *, d_in: int = 12, num_latents: int = 36, k: int = 4, seed: int = 0, dtype=torch.float32, **cfg_over) -> dict[str, torch.Tensor]:
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors = {
        "encoder.weight": torch.randn(num_latents, d_in, generator=gen).to(dtype),
        "encoder.bias": torch.randn(num_latents, generator=gen).to(dtype),
        "W_dec": torch.randn(num_latents, d_in, generator=gen).to(dtype),
        "b_dec": torch.randn(d_in, generator=gen).to(dtype),
    }
    if "_bias" in cfg_over:
        tensors["encoder.bias"] = cfg_over.pop("_bias").to(dtype)
    if cfg_over.get("skip_connection"):
        tensors["W_skip"] = cfg_over.pop("_W_skip", torch.zeros(d_in, d_in))
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(sparsify_cfg(d_in, k, num_latents=num_latents, **cfg_over)))
    return tensors


def sparsify_reference(t: dict[str, torch.Tensor], x: torch.Tensor, k: int, transcode: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """sparsify's SparseCoder.encode + decode, written out (dense activations, output)."""
    if not transcode:
        x = x - t["b_dec"]
    pre = torch.relu(torch.nn.functional.linear(x, t["encoder.weight"], t["encoder.bias"]))
    values, indices = torch.topk(pre, k, dim=-1, sorted=False)
    dense = torch.zeros_like(pre).scatter_(-1, indices, values)
    out = dense @ t["W_dec"] + t["b_dec"]
    return dense, out


@pytest.mark.parametrize("transcode", [False, True])
def test_sparsify_folder(tmp_path, transcode):
    folder = tmp_path / "run" / "layers.3"
    t = write_sparsify(folder, transcode=transcode)
    sae = load_sae(folder)
    assert sae.cfg.activation == "topk" and sae.cfg.k == 4 and sae.cfg.d_sae == 36
    assert sae.cfg.options["hookpoint"] == "layers.3"
    if transcode:
        assert (sae.cfg.hook, sae.cfg.hook_out) == ("blocks.3.hook_resid_pre", "blocks.3.hook_resid_post")
        assert not sae.cfg.apply_b_dec_to_input
    else:
        assert sae.cfg.hook == "blocks.3.hook_resid_post" and not sae.cfg.is_transcoder
        assert sae.cfg.apply_b_dec_to_input
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(3)) * 2
    dense, out = sparsify_reference(t, x, 4, transcode)
    f = sae.encode(x)
    torch.testing.assert_close(f, dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(sae.decode(f), out, atol=1e-5, rtol=0)
    assert ((f > 0).sum(-1) <= 4).all() and (f > 0).any()


def test_sparsify_fewer_than_k_positive(tmp_path):
    # relu-then-topk (sparsify) and topk-then-relu (saetool) agree when only 2 of 36 latents can fire
    bias = torch.full((36,), -1000.0)
    bias[[5, 17]] = 1000.0
    t = write_sparsify(tmp_path / "layers.0", _bias=bias)
    sae = load_sae(tmp_path / "layers.0")
    x = torch.randn(16, 12)
    dense, out = sparsify_reference(t, x, 4)
    f = sae.encode(x)
    assert ((f > 0).sum(-1) == 2).all()
    torch.testing.assert_close(f, dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(sae.decode(f), out, atol=1e-5, rtol=0)


def test_sparsify_checkpoint_folder(tmp_path):
    run = tmp_path / "checkpoints" / "unnamed"
    write_sparsify(run / "layers.10.mlp", dtype=torch.bfloat16)
    (run / "config.json").write_text(json.dumps({"model": "HuggingFaceTB/SmolLM2-135M", "batch_size": 8}))
    (run / "state.pt").write_bytes(b"")
    (run / "best").mkdir()
    sae = load_sae(run)  # one hookpoint folder: that one
    assert sae.cfg.hook == "blocks.10.hook_mlp_out"
    assert sae.cfg.model == "HuggingFaceTB/SmolLM2-135M"
    assert sae.dtype == torch.bfloat16 and sae.cfg.dtype == "bfloat16"
    assert load_sae(run / "layers.10.mlp" / "sae.safetensors").cfg.hook == "blocks.10.hook_mlp_out"

    write_sparsify(run / "model.layers.2")
    with pytest.raises(SaetoolError, match="holds 2 SAEs") as exc:
        load_sae(run)
    assert "layers.10.mlp" in exc.value.one_line() and "pick one" in exc.value.one_line()
    assert load_sae(run / "model.layers.2").cfg.hook == "blocks.2.hook_resid_post"


def test_sparsify_unsupported_options(tmp_path):
    write_sparsify(tmp_path / "gm" / "layers.1", activation="groupmax")
    with pytest.raises(SaetoolError, match="groupmax"):
        load_sae(tmp_path / "gm" / "layers.1")
    write_sparsify(tmp_path / "skip" / "layers.1", skip_connection=True, _W_skip=torch.ones(12, 12))
    with pytest.raises(SaetoolError, match="skip connection"):
        load_sae(tmp_path / "skip" / "layers.1")
    write_sparsify(tmp_path / "skip0" / "layers.1", skip_connection=True)  # an all-zero skip is no skip
    assert load_sae(tmp_path / "skip0" / "layers.1").cfg.k == 4


def test_sparsify_hookpoint_names():
    from saetool.sae.formats.sparsify import hookpoint_to_hooks

    assert hookpoint_to_hooks("layers.5") == ("blocks.5.hook_resid_post", None)
    assert hookpoint_to_hooks("gpt_neox.layers.5") == ("blocks.5.hook_resid_post", None)
    assert hookpoint_to_hooks("h.0") == ("blocks.0.hook_resid_post", None)
    assert hookpoint_to_hooks("layers.5.mlp", transcode=True) == ("blocks.5.ln2.hook_normalized", "blocks.5.hook_mlp_out")
    assert hookpoint_to_hooks("layers.5.self_attn") == ("blocks.5.hook_attn_out", None)
    assert hookpoint_to_hooks("embed_tokens") == ("hook_embed", None)
    assert hookpoint_to_hooks("h.0.mlp.act") == ("h.0.mlp.act", None)


# -- saetool export (CLI) ------------------------------------------------------------------
@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_export_saelens_cli(tmp_path):
    from saetool.sae.formats.saelens import load_saelens

    sae = make_sae("topk")
    src = write_sae_artifact(tmp_path / "sae.h5", sae, provenance=PROV, training={"context_size": 64, "corpus": "bbc-news"})
    out = tmp_path / "exported"
    proc = run_cli("export", str(src), "--format", "saelens", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"path": str(out.resolve()), "kind": "saelens"}
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 6
    assert cfg["metadata"]["context_size"] == 64 and cfg["metadata"]["dataset_path"] == "bbc-news"
    back = load_saelens(out)
    x = torch.randn(8, 16)
    torch.testing.assert_close(back.encode(x), sae.encode(x))

    # exists and non-empty: refused, untouched; --overwrite replaces it
    proc = run_cli("export", str(src), "--format", "saelens", "-o", str(out))
    assert_clean_error(proc, "already exists", "--overwrite")
    proc = run_cli("export", "--format", "saelens", "-o", str(out), "--overwrite", input=json.dumps({"path": str(src), "kind": "sae"}) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert (out / "cfg.json").exists()


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_export_errors(tmp_path):
    tc = write_sae_artifact(tmp_path / "tc.h5", make_sae("topk", transcoder=True), provenance=PROV)
    assert_clean_error(run_cli("export", str(tc), "-o", str(tmp_path / "o1")), "no topk transcoder")
    assert not (tmp_path / "o1").exists()
    assert_clean_error(run_cli("export", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "o2")), "does not exist")
    assert_clean_error(run_cli("export", str(tc), "--format", "onnx"), "unknown export format", "saelens")


def test_export_samples(tmp_path):
    src = write_sae_artifact(tmp_path / "sae.h5", make_sae(), provenance=PROV)
    out = tmp_path / "samples"
    proc = run_cli("export", str(src), "--format", "samples", "-o", str(out))
    try:
        import saetool.interpret.samples_view as samples_module

        available = hasattr(samples_module, "export_samples_dir")
    except ImportError:
        available = False
    if not available:
        assert_clean_error(proc, "--format samples is not available")
        assert not out.exists()
    else:  # the trainer's exporter: at least the folder and the manifest
        if proc.returncode == 0:
            assert out.is_dir()
            assert json.loads(proc.stdout)["kind"] == "samples"
        else:
            assert_clean_error(proc)
