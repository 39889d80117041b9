"""Input scaling folded into the saved SAE; b_dec initialisation; schedules; the checklist."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from saetool.sae.config import SAEConfig
from saetool.sae.model import SAE
from saetool.train import TrainConfig
from saetool.train.checklist import build_checklist
from saetool.errors import SaetoolError
from saetool.train.config import Targets
from saetool.train.initialize import geometric_median
from saetool.train.scaling import fold_scales, norm_scale, unfold_scales
from saetool.train.schedules import default_lr, lr_at, sparsity_at
from saetool.train.source import Batch
from saetool.train.trainer import Trainer


def endless(x: torch.Tensor, y: torch.Tensor | None = None, batch: int = 128):
    for i in itertools.count():
        j = (i * batch) % (len(x) - batch)
        yield Batch(x[j : j + batch], None if y is None else y[j : j + batch])


@pytest.mark.parametrize("arch", ["topk", "jumprelu", "batchtopk", "transcoder"])
def test_saved_sae_on_raw_activations_equals_trained_sae_on_scaled_ones(arch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 16, generator=g) * 7.0 + 3.0  # far from unit scale
    y = torch.relu(x @ torch.randn(16, 8, generator=g)) * 0.01 if arch == "transcoder" else None
    cfg = TrainConfig(arch=arch, d_sae=48, k=4, lr=3e-3, sparsity_coeff=0.1 if arch == "jumprelu" else None)
    trainer = Trainer(cfg, d_in=16, d_out=8 if y is not None else None, total_steps=60, hook="in", hook_out="out" if y is not None else None)
    result = trainer.fit(endless(x, y))
    assert math.isclose(float((x[:4096] * result.in_scale).norm(dim=1).mean()), 4.0, rel_tol=0.02)  # E||x|| = sqrt(d_in)
    raw = result.sae
    trained = trainer.arch.finalize(trainer.sae, trainer.objective)  # training units
    probe = x[:256]
    with torch.no_grad():
        expected_f = trained.encode(probe * result.in_scale) / result.out_scale
        expected = trained(probe * result.in_scale) / result.out_scale
        got_f, got = raw.encode(probe), raw(probe)
    assert torch.allclose(got_f, expected_f, rtol=1e-4, atol=1e-5)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    norms = raw.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)  # decoder rows stay unit norm


def test_fold_and_unfold_are_inverse():
    sae = SAE(SAEConfig(arch="jumprelu", d_in=5, d_sae=7, hook="h", activation="jumprelu"))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.rand(p.shape) + 0.1)
    before = {k: v.clone() for k, v in sae.state_dict().items()}
    unfold_scales(fold_scales(sae, 3.0, 0.5), 3.0, 0.5)
    for k, v in sae.state_dict().items():
        assert torch.allclose(v, before[k], rtol=1e-6), k


def test_norm_scale():
    x = torch.randn(1000, 9) * 5
    s = norm_scale([x[:500], x[500:]])
    assert float((x * s).norm(dim=1).mean()) == pytest.approx(3.0, rel=1e-5)


def test_geometric_median_beats_the_mean_and_resists_outliers():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(400, 3, generator=g)
    points[:40] += 100.0  # outliers
    med = geometric_median(points)
    cost = lambda p: float((points - p).norm(dim=1).sum())  # noqa: E731
    assert cost(med) < cost(points.mean(0))
    for delta in torch.eye(3) * 0.01:
        assert cost(med) <= cost(med + delta) and cost(med) <= cost(med - delta)
    assert float(med.norm()) < 1.0  # the mean is pulled ~10 units away


def test_lr_warmup_then_cosine_and_sparsity_warmup():
    lrs = [lr_at(s, total=100, lr=1.0, warmup=10, schedule="cosine") for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[10] == pytest.approx(1.0) and 0 < lrs[-1] < 0.01
    assert lrs[55] == pytest.approx(0.5)
    assert [sparsity_at(s, coeff=2.0, warmup=4) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert sparsity_at(0, coeff=2.0, warmup=0) == 2.0


def test_wsd_holds_the_rate_then_decays_linearly_over_the_last_fraction():
    lrs = [lr_at(s, total=100, lr=1.0, warmup=5) for s in range(100)]  # wsd is the default
    assert lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(1.0)
    assert lrs[5:80] == [1.0] * 75  # stable until the last 20%
    assert lrs[80] == pytest.approx(1.0) and lrs[90] == pytest.approx(0.5) and lrs[99] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))
    assert [lr_at(s, total=10, lr=1.0, warmup=0, decay_fraction=0.5) for s in (4, 5, 9)] == [1.0, 1.0, pytest.approx(0.2)]
    assert [lr_at(s, total=50, lr=2.0, warmup=0, schedule="constant") for s in (0, 49)] == [2.0, 2.0]
    assert lr_at(3, total=50, lr=1.0, warmup=0, decay_fraction=0.0) == 1.0


def test_default_lr_scales_with_the_inverse_square_root_of_the_width():
    assert default_lr(2e-4, 1 << 14) == pytest.approx(2e-4)
    assert default_lr(2e-4, 1 << 12) == pytest.approx(4e-4)
    assert default_lr(2e-4, 1 << 16) == pytest.approx(1e-4)


def test_checklist_marks_pass_and_fail():
    base = {"fvu": 0.2, "explained_variance": 0.8, "scaled_mse": 0.005, "l0": 120.0, "dead_fraction_train": 0.05, "dead_fraction": 0.3}
    items = build_checklist(base, Targets())
    assert [(i.key, i.passed) for i in items] == [("fvu", True), ("explained_variance", None), ("l0", True), ("dead_fraction_train", True), ("dead_fraction", None)]
    items = build_checklist({**base, "fvu": 0.5, "dead_fraction_train": 0.2}, Targets())
    assert [i.passed for i in items if i.passed is not None] == [False, True, False]
    seed002 = build_checklist(base, Targets.preset("seed002"))
    assert [(i.key, i.passed) for i in seed002 if i.passed is not None] == [("scaled_mse", True), ("l0", False), ("dead_fraction_train", True)]
    assert seed002[0].target == "" and seed002[2].target == "< 0.01" and seed002[3].target == "50-100"
    assert Targets.parse_l0("20-40") == (20.0, 40.0) and Targets.parse_l0("64") == pytest.approx((51.2, 76.8))  # N: +-20%
    assert Targets.steering_l0("64") == 64.0 and Targets.steering_l0("20-40") is None
    with pytest.raises(SaetoolError, match="--checklist"):
        Targets.preset("seed003")
    # a TopK L0 is the k it was given; too few rows for the features to all fire sets a floor on "never active"
    topk = {i.key: i for i in build_checklist({**base, "l0": 32.0, "rows": 19.0}, Targets(), d_sae=2304, fixed_k=32)}
    assert topk["l0"].target.endswith("(= k 32: set, not learned)") and topk["l0"].passed is True
    assert topk["dead_fraction"].name == "never active on these rows (fraction); at least 0.74 with 19 rows"  # 1 - 19 * 32 / 2304
    plenty = {i.key: i for i in build_checklist({**base, "rows": 8192.0}, Targets(), d_sae=2304)}
    assert plenty["dead_fraction"].name == "never active on these rows (fraction)" and plenty["l0"].target == "5-200"


@pytest.mark.parametrize("fused", [True, False])
def test_adam_matches_torch_optim(fused):
    from saetool.train.adam import Adam

    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(6, 5, generator=g)), torch.nn.Parameter(torch.randn(5, generator=g))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt, ref_opt = Adam(ours, lr=0.01), torch.optim.Adam(ref, lr=0.01)
    opt._fused = fused
    for step in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for p, q, gr in zip(ours, ref, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        if step == 2:
            ours[1].grad = ref[1].grad = None  # a parameter without a gradient is left alone
        opt.step()
        ref_opt.step()
    for p, q in zip(ours, ref):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)
