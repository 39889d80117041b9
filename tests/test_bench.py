"""saetool bench: the random floor, the core eval (evaluate's numbers), the artifact, resume, table/CSV/JSON."""

from __future__ import annotations

import json

import pytest
import torch

from saetool.bench.api import run_bench
from saetool.bench.config import BenchConfig
from saetool.bench.random_sae import random_like
from saetool.bench.store import read_bench
from saetool.sae.io import load_sae


def test_random_floor_keeps_shape_mean_and_scale_but_not_features(tiny_sae):
    sae = load_sae(tiny_sae)
    rnd = random_like(sae, seed=3)
    assert rnd.cfg == sae.cfg and rnd.W_dec.shape == sae.W_dec.shape
    assert torch.equal(rnd.b_dec, sae.b_dec)
    norms = rnd.W_dec.norm(dim=1)
    assert torch.allclose(norms, sae.W_dec.norm(dim=1).median().expand_as(norms), rtol=1e-5)
    # tied: encoding a decoder row reads mostly that latent
    assert torch.equal(random_like(sae, seed=3).W_dec, rnd.W_dec) and not torch.equal(random_like(sae, seed=4).W_dec, rnd.W_dec)
    cos = torch.nn.functional.normalize(rnd.W_dec, dim=1) @ torch.nn.functional.normalize(sae.W_dec, dim=1).T
    assert cos.max(dim=1).values.mean() < 0.6


def test_core_reuses_evaluate_and_beats_the_floor(tiny_sae, tiny_acts, tmp_path):
    from saetool.evaluate.api import EvalConfig, evaluate_sae

    config = BenchConfig(evals=["core"], num_tokens=1024, options={"core": {"model": "false"}})
    res = run_bench([tiny_sae], config, tmp_path / "b.h5", acts=tiny_acts, progress=False)
    assert res.names == ["sae", "random"]
    ev = evaluate_sae(tiny_sae, tiny_acts, EvalConfig(num_tokens=1024, use_model=False))
    for name, value in ev.metrics.items():
        assert res.value("sae", "core", name) == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert res.value("sae", "core", "fvu") < 0.5 < res.value("random", "core", "fvu")
    stored = read_bench(tmp_path / "b.h5")
    assert stored.results[("sae", "core")].metrics == res.results[("sae", "core")].metrics
    assert stored.saes[1]["random_of"] == "sae"
    assert {c["name"]: c["better"] for c in stored.cards["core"]}["fvu"] == "lower"


def test_resume_skips_finished_results_and_refuses_other_settings(tiny_sae, tiny_acts, tmp_path):
    import shutil

    import h5py

    from saetool.errors import SaetoolError

    out = tmp_path / "b.h5"
    config = BenchConfig(evals=["core"], num_tokens=512, options={"core": {"model": "false"}})
    first = run_bench([tiny_sae], config, out, acts=tiny_acts, progress=False)
    partial = tmp_path / "b.h5.partial"
    shutil.copy(out, partial)
    with h5py.File(partial, "r+") as fh:  # as if killed before the random floor's result
        fh.attrs["complete"] = False
        del fh["results/1"]
        fh["results/0/core"].attrs["result"] = json.dumps({**first.results[("sae", "core")].to_dict(), "seconds": 123.0})
    again = run_bench([tiny_sae], config, out, acts=tiny_acts, overwrite=True, resume=True, progress=False)
    assert again.results[("sae", "core")].seconds == 123.0  # kept, not recomputed
    assert again.results[("random", "core")].metrics == first.results[("random", "core")].metrics
    shutil.copy(out, partial)
    other = BenchConfig(evals=["core"], num_tokens=256, options={"core": {"model": "false"}})
    with pytest.raises(SaetoolError, match="num_tokens"):
        run_bench([tiny_sae], other, out, acts=tiny_acts, overwrite=True, resume=True, progress=False)


def test_bad_options_fail_before_work(tiny_sae, tiny_acts, tmp_path):
    from saetool.errors import SaetoolError

    for options, needle in (({"core": {"nope": "1"}}, "no option 'nope'"), ({"core": {"num_tokens": "x"}}, "must be a int")):
        with pytest.raises(SaetoolError, match=needle):
            run_bench([tiny_sae], BenchConfig(evals=["core"], options=options), tmp_path / "b.h5", acts=tiny_acts, progress=False)
    with pytest.raises(SaetoolError, match="unknown eval 'cor'"):
        run_bench([tiny_sae], BenchConfig(evals=["cor"]), tmp_path / "b.h5", acts=tiny_acts, progress=False)
    assert not (tmp_path / "b.h5").exists()


def test_cli_writes_table_csv_json_and_plots(tiny_sae, tiny_acts, tmp_path):
    import csv

    from tests.helpers import assert_clean_error, run_cli

    proc = run_cli("bench", str(tiny_sae), "--acts", str(tiny_acts), "--evals", "core", "-O", "core.model=false", "-n", "512",
                   "--csv", str(tmp_path / "b.csv"), "--plots", str(tmp_path / "plots"), "--json", "-o", str(tmp_path / "b.h5"))
    assert proc.returncode == 0, proc.stderr
    assert "bench core" in proc.stderr and "fvu" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "bench" and [s["name"] for s in doc["saes"]] == ["sae", "random"]
    fvu = {r["sae"]: r["metrics"]["fvu"] for r in doc["results"]}
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert {r["sae"]: float(r["value"]) for r in rows if r["metric"] == "fvu"} == pytest.approx(fvu)
    assert (tmp_path / "plots" / "l0_fvu.png").read_bytes()[:4] == b"\x89PNG"
    assert_clean_error(run_cli("bench", str(tiny_sae), "--acts", str(tiny_acts), "-O", "core", "-o", str(tmp_path / "c.h5")), "--option must look like EVAL.KEY=VALUE")


# -- stability ------------------------------------------------------------------------------
def _planted_sae(w_dec: torch.Tensor, *, hook: str = "blocks.0.hook_resid_post", w_enc: torch.Tensor | None = None, b_enc=None, activation: str = "relu", k=None):
    """A ReLU (or TopK) SAE with the given decoder rows; encoder = decoder transposed unless given."""
    from saetool.sae.config import SAEConfig
    from saetool.sae.model import SAE

    d_sae, d = w_dec.shape
    sae = SAE(SAEConfig(arch=activation, d_in=d, d_sae=d_sae, hook=hook, activation=activation, k=k))
    with torch.no_grad():
        sae.W_dec.copy_(w_dec)
        sae.W_enc.copy_(w_dec.T if w_enc is None else w_enc)
        if b_enc is not None:
            sae.b_enc.copy_(b_enc)
    return sae


def _write(sae, path):
    from saetool.sae.io import write_sae_artifact

    return write_sae_artifact(path, sae, provenance={})


def test_stability_planted_split_and_permuted_copy(tmp_path):
    from saetool.bench.stability import StabilityOptions, compare, unit_rows

    eye = torch.eye(8)
    narrow = eye[:4]
    a, b = (eye[4] * 0.3 + eye[0]), (eye[0] - eye[4] * 0.3)  # latent 0 splits in two (cosine 0.958 each)
    wide = torch.stack([a, b, eye[1], eye[2], eye[3], eye[5], eye[6], eye[7]])
    out = compare(unit_rows(narrow), unit_rows(wide), StabilityOptions())
    assert out["mmcs"] == pytest.approx((0.3 ** 2 + 1) ** -0.5 / 4 + 3 / 4)
    assert out["matched_fraction"] == 1.0 and out["split_fraction"] == 0.25
    assert out["splits"] == [{"latent": 0, "children": [0, 1]}]
    assert compare(unit_rows(narrow), unit_rows(narrow[[2, 0, 3, 1]]), StabilityOptions())["mmcs"] == pytest.approx(1.0)
    # through the bench: two SAEs and their random floors
    p1, p2 = _write(_planted_sae(narrow), tmp_path / "narrow.h5"), _write(_planted_sae(wide), tmp_path / "wide.h5")
    res = run_bench([p1, p2], BenchConfig(evals=["stability"]), tmp_path / "b.h5", progress=False)
    assert res.names == ["narrow", "wide", "random-4", "random-8"]
    assert res.value("narrow", "stability", "split_fraction") == 0.25
    assert res.value("wide", "stability", "split_fraction") is None  # nothing wider
    assert res.value("narrow", "stability", "matched_fraction") == 1.0
    for floor in ("random-4", "random-8"):
        assert res.value(floor, "stability", "mmcs") < res.value("narrow", "stability", "mmcs")
