"""Massive-activation tokens (issue 14): extract stores per-token norms, `train
--max-norm-ratio` leaves out exactly the rows farther than R x the median distance
from the median row and says how many, `evaluate` reports the reconstruction
metrics with and without them."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from helpers import run_cli
from saetool.train.source import split_uniform
from saetool.train.synthetic import sparse_dictionary_data, write_activations

HOOK = "blocks.0.hook_resid_post"
CONTEXT = 20
MASSIVE_ROWS = np.arange(1, 4000, CONTEXT * 7)  # position 1 of every 7th window, as in SmolLM2


@pytest.fixture(scope="module")
def massive_file(tmp_path_factory):
    """4,000 rows in d=16; rows MASSIVE_ROWS scaled to 40x their norm."""
    x, _ = sparse_dictionary_data(4000, 16, 32, active=4, seed=3)
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))  # no all-zero rows
    x[MASSIVE_ROWS] *= 40 * x.norm(dim=1).median() / x[MASSIVE_ROWS].norm(dim=1, keepdim=True)
    return write_activations(tmp_path_factory.mktemp("massive") / "acts.h5", {HOOK: x}, context_size=CONTEXT), x


def test_extract_stores_every_rows_norm(smollm2_acts):
    with h5py.File(smollm2_acts) as fh:
        x = fh["activations/blocks.3.hook_resid_post"][:]
        norms = fh["norms/blocks.3.hook_resid_post"][:]
    assert norms.dtype == np.float32 and norms.shape == (x.shape[0],)
    np.testing.assert_allclose(norms, np.linalg.norm(x.astype(np.float64), axis=1), rtol=1e-5)


def test_train_leaves_out_exactly_the_massive_rows(massive_file, tmp_path):
    path, x = massive_file
    out = tmp_path / "sae.h5"
    proc = run_cli("train", str(path), "--arch", "topk", "--d-sae", "32", "--k", "4", "--batch-size", "256", "--steps", "30",
                   "--val-fraction", "0.2", "--max-norm-ratio", "10", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    val = split_uniform(0, MASSIVE_ROWS // CONTEXT) < 0.2
    n_val_rows = int((split_uniform(0, np.arange(4000 // CONTEXT)) < 0.2).sum()) * CONTEXT
    n_train = 4000 - n_val_rows
    expected = {"train": int((~val).sum()), "validation": int(val.sum())}
    assert 0 < expected["train"] and 0 < expected["validation"]
    assert f"leaving out {expected['train']} of {n_train} training tokens" in " ".join(proc.stderr.split())
    from saetool.sae.io import read_sae_artifact

    with read_sae_artifact(out) as art:
        record = art.training["norm_filter"]
    assert record["excluded_tokens"] == expected
    median = float((x - x.median(dim=0).values).norm(dim=1).median())  # distance from the median row
    assert record["median_distance"] == pytest.approx(median, rel=1e-3) and record["distance_cutoff"] == pytest.approx(10 * median, rel=1e-3)


def test_train_without_the_option_keeps_every_row(massive_file, tmp_path):
    path, _ = massive_file
    proc = run_cli("train", str(path), "--arch", "topk", "--d-sae", "32", "--k", "4", "--batch-size", "256", "--steps", "5", "-o", str(tmp_path / "s.h5"))
    assert proc.returncode == 0, proc.stderr
    assert "leaving out" not in proc.stderr


def test_evaluate_reports_metrics_with_and_without_massive_rows(massive_file, tmp_path):
    from saetool.evaluate.api import EvalConfig, evaluate_sae
    from saetool.sae.io import load_sae
    from saetool.train import TrainConfig, train_sae

    path, x = massive_file
    train_sae(TrainConfig(arch="topk", d_sae=32, k=4, batch_size=256, steps=40, val_fraction=0.1), [path], tmp_path / "sae.h5", progress=False)
    ev = evaluate_sae(tmp_path / "sae.h5", path, EvalConfig(use_model=False, num_tokens=4000, max_norm_ratio=10))
    assert ev.norm_filter["massive_rows"] == len(MASSIVE_ROWS)
    sae = load_sae(tmp_path / "sae.h5")
    keep = np.ones(4000, bool)
    keep[MASSIVE_ROWS] = False

    def fvu(rows: torch.Tensor) -> float:
        with torch.no_grad():
            recon = sae(rows)
        return float((recon - rows).double().pow(2).sum() / (rows - rows.mean(0)).double().pow(2).sum())

    assert 1 - ev.metrics["explained_variance"] == pytest.approx(fvu(x), rel=1e-4)
    assert 1 - ev.metrics_ordinary["explained_variance"] == pytest.approx(fvu(x[torch.from_numpy(keep)]), rel=1e-4)
    assert ev.metrics_ordinary["explained_variance"] != pytest.approx(ev.metrics["explained_variance"], rel=0.05)  # the massive rows matter
    proc = run_cli("evaluate", str(tmp_path / "sae.h5"), str(path), "--no-model", "--json", "--max-norm-ratio", "10")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["norm_filter"]["massive_rows"] == len(MASSIVE_ROWS)
    assert out["metrics_ordinary"]["explained_variance"] == pytest.approx(ev.metrics_ordinary["explained_variance"], rel=1e-6)
    assert f"without {len(MASSIVE_ROWS)} massive" in proc.stderr


def test_the_rule_finds_outliers_under_a_large_mean(tmp_path):
    """Gemma 3's residual stream has a mean as large as its spread: its outliers sit at
    9.5x the median norm (under a norm rule's 10x) but 40x the median distance."""
    from saetool.artifacts.norms import NormFilter, sample_rows
    from saetool.evaluate.api import EvalConfig, evaluate_sae
    from saetool.train import TrainConfig, train_sae

    x, _ = sparse_dictionary_data(4000, 16, 32, active=4, seed=5)
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    spread = float(x.norm(dim=1).median())
    x[MASSIVE_ROWS] *= 40 * spread / x[MASSIVE_ROWS].norm(dim=1, keepdim=True)
    x[:, 0] += 30 * spread  # a large mean in one dimension
    norms = x.norm(dim=1)
    assert float(norms.max()) < 10 * float(norms.median())  # a rule on norms would keep every row
    rule = NormFilter.from_rows(x, 10)
    assert torch.equal(torch.nonzero(~rule.keep(x)).flatten(), torch.from_numpy(MASSIVE_ROWS))
    # a sample in evenly spaced blocks gives about the same rule as every row
    sampled = NormFilter.from_rows(sample_rows(lambda a, b: x[a:b], len(x), max_rows=1024), 10)
    assert sampled.median == pytest.approx(rule.median, rel=0.05)

    path = write_activations(tmp_path / "offset.h5", {HOOK: x}, context_size=CONTEXT)
    result = train_sae(TrainConfig(arch="topk", d_sae=32, k=4, batch_size=256, steps=20, val_fraction=0.1, max_norm_ratio=10), [path], tmp_path / "sae.h5", progress=False)
    assert sum(result.training["norm_filter"]["excluded_tokens"].values()) == len(MASSIVE_ROWS)
    ev = evaluate_sae(tmp_path / "sae.h5", path, EvalConfig(use_model=False, num_tokens=4000))
    assert ev.norm_filter["massive_rows"] == len(MASSIVE_ROWS)


def test_evaluate_judges_massive_rows_as_stored_not_in_the_saes_dtype(tmp_path):
    """bfloat16 keeps a large mean to about 1 part in 256, enough to move rows that lie
    0.4% beyond the cutoff inside it: the rule reads the rows before the cast."""
    from saetool.artifacts.norms import NormFilter
    from saetool.evaluate.api import EvalConfig, evaluate_sae
    from saetool.train import TrainConfig, train_sae

    x, _ = sparse_dictionary_data(4000, 16, 32, active=4, seed=5)
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    x[:, 0] += 300.0
    first = NormFilter.from_rows(x, 10)
    for j, row in enumerate(range(5, 4000, 97)):  # rows along dimension 0, either side of the centre, 0.4% beyond the cutoff
        x[row] = first.centre
        x[row, 0] += (1 if j % 2 else -1) * first.cutoff * 1.004
    rule = NormFilter.from_rows(x, 10)
    massive = int((~rule.keep(x)).sum())
    assert massive > 10 and int((~rule.keep(x.bfloat16())).sum()) < massive // 2  # the cast moves most of them inside

    path = write_activations(tmp_path / "mean.h5", {HOOK: x}, context_size=CONTEXT)
    train_sae(TrainConfig(arch="topk", d_sae=32, k=4, batch_size=256, steps=5, dtype="bfloat16"), [path], tmp_path / "sae.h5", progress=False)
    ev = evaluate_sae(tmp_path / "sae.h5", path, EvalConfig(use_model=False, num_tokens=4000))
    assert ev.norm_filter["massive_rows"] == massive


def test_the_rule_samples_wide_or_small_inputs_and_keeps_rows_without_spread():
    from saetool.artifacts.norms import SAMPLE_BYTES, SAMPLE_ROWS, NormFilter, sample_budget, sample_rows

    x = torch.arange(1000.0).unsqueeze(1).repeat(1, 3)
    assert sample_rows(lambda a, b: x[a:b], 1000, max_rows=10).shape[0] == 10  # fewer rows than blocks: one row per block
    assert sample_rows(lambda a, b: x[a:b], 1000, max_rows=100).shape[0] == 96  # 16 blocks of 6
    assert sample_budget(576) == SAMPLE_ROWS and sample_budget(26 * 2304) * 26 * 2304 * 4 <= SAMPLE_BYTES  # a crosscoder's wide rows
    same = torch.zeros(100, 4)
    same[:40] = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))  # most rows identical: no spread
    assert bool(NormFilter.from_rows(same, 10).keep(same).all())
