"""The sparse TopK kernels give the dense computation's values and gradients."""

from __future__ import annotations

import pytest
import torch

from saetool.sae.config import SAEConfig
from saetool.sae.model import SAE
from saetool.train.objectives import BatchTopKObjective, MatryoshkaObjective, TopKObjective, batch_topk_entries
from saetool.train.sparse import SparseCodes, gather_preacts, sparse_decode, topk_codes


def tensors(seed: int = 0, n: int = 48, d: int = 12, s: int = 40):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g),
        torch.randn(d, s, generator=g, requires_grad=True),
        torch.randn(s, generator=g, requires_grad=True),
        torch.randn(s, d, generator=g, requires_grad=True),
        torch.randn(n, d, generator=g),
    )


@pytest.mark.parametrize("fixed_k", [True, False])
def test_sparse_topk_step_matches_dense_autograd(fixed_k):
    x, W, b, Wd, target = tensors()
    x.requires_grad_(True)
    k = 5
    pre = x @ W + b
    vals, idx = pre.topk(k, dim=1)
    f = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
    dense_loss = ((f @ Wd - target) ** 2).sum()
    dense_grads = torch.autograd.grad(dense_loss, [x, W, b, Wd])

    with torch.no_grad():
        pre_nograd = x @ W + b
    codes = topk_codes(pre_nograd.topk(k, dim=1).indices)
    if not fixed_k:  # the generic (variable entries per row) path
        codes = SparseCodes(codes.rows, codes.cols, codes.values, codes.n_rows)
    values = torch.relu(gather_preacts(x, W, b, pre_nograd, codes))
    sparse_loss = ((sparse_decode(codes.with_values(values), Wd) - target) ** 2).sum()
    sparse_grads = torch.autograd.grad(sparse_loss, [x, W, b, Wd])

    assert torch.allclose(sparse_loss, dense_loss, rtol=1e-6)
    for dense, sparse in zip(dense_grads, sparse_grads):
        assert torch.allclose(sparse, dense, rtol=1e-5, atol=1e-4 * float(dense.abs().max()))


def test_batch_topk_entries_is_the_exact_top_set():
    g = torch.Generator().manual_seed(1)
    pre = torch.randn(64, 50, generator=g)
    for k in (1, 3, 20):
        codes = batch_topk_entries(pre, k)
        assert codes.rows.numel() == 64 * k
        assert bool((codes.rows[1:] >= codes.rows[:-1]).all())
        chosen = set(zip(codes.rows.tolist(), codes.cols.tolist()))
        flat = pre.reshape(-1).topk(64 * k).indices
        assert chosen == {(int(i) // 50, int(i) % 50) for i in flat}
    skewed = pre.clone()
    skewed[0] += 100.0  # one row holds more than 4k of the top entries: the exact fallback runs
    codes = batch_topk_entries(skewed, 2)
    assert int((codes.rows == 0).sum()) == 50


def sae_of(d_in: int, d_sae: int, k: int, seed: int = 0) -> SAE:
    sae = SAE(SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, hook="h", activation="topk", k=k))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return sae


@pytest.mark.parametrize("objective_cls", [TopKObjective, BatchTopKObjective, MatryoshkaObjective])
def test_objectives_sparse_equals_dense_reference_including_auxk(objective_cls):
    d_in, d_sae, k = 16, 64, 4
    x = torch.randn(32, d_in, generator=torch.Generator().manual_seed(3))
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[::3] = True
    grads = []
    for dense in (False, True):
        sae = sae_of(d_in, d_sae, k)
        kw = {"prefixes": [8, 32, 64]} if objective_cls is MatryoshkaObjective else {}
        obj = objective_cls(k, aux_k=6, aux_coeff=0.5, dense=dense, **kw)
        out = obj(sae, x, x, dead=dead)
        out.loss.backward()
        grads.append((out.loss.detach(), out.aux, [p.grad.clone() for p in sae.parameters()]))
    (loss_s, aux_s, g_s), (loss_d, aux_d, g_d) = grads
    assert float(aux_s) > 0
    assert torch.allclose(loss_s, loss_d, rtol=1e-5) and torch.allclose(aux_s, aux_d, rtol=1e-5)
    for a, b in zip(g_s, g_d):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_gather_preacts_shift_gives_b_dec_the_gradient_of_x_minus_b_dec():
    # the trainer's fast path: x_in = x - b_dec computed without autograd, b_dec's
    # gradient handed over by gather_preacts (shift) instead of through x_in's rows
    x, W, b, Wd, target = tensors(seed=4)
    b_dec = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(5), requires_grad=True)
    k = 5
    x_in = x - b_dec
    pre = x_in @ W + b
    vals, idx = pre.topk(k, dim=1)
    f = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
    dense_grads = torch.autograd.grad(((f @ Wd - target) ** 2).sum(), [W, b, Wd, b_dec])

    with torch.no_grad():
        x_nograd = x - b_dec
        pre_nograd = x_nograd @ W + b
    codes = topk_codes(pre_nograd.topk(k, dim=1).indices)
    values = torch.relu(gather_preacts(x_nograd, W, b, pre_nograd, codes, shift=b_dec))
    sparse_grads = torch.autograd.grad(((sparse_decode(codes.with_values(values), Wd) - target) ** 2).sum(), [W, b, Wd, b_dec])
    for dense, sparse in zip(dense_grads, sparse_grads):
        assert torch.allclose(sparse, dense, rtol=1e-5, atol=1e-5 * float(dense.abs().max()))
    assert float(sparse_grads[3].abs().max()) > 0


def test_topk_objective_with_b_dec_on_the_input_matches_dense_reference():
    d_in, d_sae, k = 16, 64, 4
    x = torch.randn(32, d_in, generator=torch.Generator().manual_seed(6))
    dead = torch.zeros(d_sae, dtype=torch.bool)
    dead[1::4] = True
    grads = []
    for dense in (False, True):
        sae = SAE(SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, hook="h", activation="topk", k=k, apply_b_dec_to_input=True))
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for p in sae.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        out = TopKObjective(k, aux_k=6, aux_coeff=0.5, dense=dense)(sae, x, x, dead=dead)
        out.loss.backward()
        grads.append([p.grad.clone() for p in sae.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_narrow_threads_changes_no_number():
    # the trainer runs a step's small ops on one CPU thread (narrow_threads) and the
    # big ones on all: the same step on plain multi-threaded torch gives the same bits
    from saetool.train.sparse import narrow_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(256, 16, generator=torch.Generator().manual_seed(8))
        dead = torch.zeros(64, dtype=torch.bool)
        dead[::2] = True
        results = []
        for narrow in (False, True):
            sae = sae_of(16, 64, 4, seed=9)
            obj = TopKObjective(4, aux_k=8, aux_coeff=0.5)
            if narrow:
                with narrow_threads(torch.device("cpu")):
                    assert torch.get_num_threads() == 1
                    out = obj(sae, x, x, dead=dead)
                    out.loss.backward()
                assert torch.get_num_threads() == 2
            else:
                out = obj(sae, x, x, dead=dead)
                out.loss.backward()
            results.append([out.loss.detach()] + [p.grad.clone() for p in sae.parameters()])
        for a, b in zip(*results):
            assert torch.equal(a, b)
    finally:
        torch.set_num_threads(before)
