"""Training objectives: the loss of each SAE architecture, apart from the inference SAE.

An :class:`Objective` is an ``nn.Module`` that turns an inference
:class:`~saetool.sae.model.SAE` and a batch into a loss. It may hold
training-only state (BatchTopK's running threshold) as buffers or parameters;
the trainer optimises its parameters with the SAE's and checkpoints its
buffers. Losses use the squared error summed over dimensions and averaged over
tokens, on inputs scaled so that ``E||x|| = sqrt(d_in)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from saetool.train.schedules import AUX_COEFF
from saetool.train.sparse import ColumnOrder, SparseCodes, column_order, gather_preacts, sparse_decode, topk_codes, wide_threads

if TYPE_CHECKING:
    from saetool.sae.model import SAE


@dataclass
class StepOutput:
    """What one objective evaluation returns to the trainer."""

    loss: torch.Tensor  # minimised
    recon: torch.Tensor  # [batch, d_out] reconstruction of the target
    sparsity: torch.Tensor  # the (unweighted) sparsity penalty, 0 if none
    aux: torch.Tensor  # the (weighted) auxiliary loss, 0 if none
    l0: torch.Tensor  # mean number of active features per token
    fired: torch.Tensor  # [d_sae] bool: features active on some token of the batch
    codes: "SparseCodes | torch.Tensor"  # detached feature activations (sparse or [batch, d_sae])
    recon_loss: torch.Tensor | None = None  # recon_loss(recon, target), detached (None: the trainer computes it)


def recon_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over dimensions, averaged over tokens (in float32 at least)."""
    dtype = torch.promote_types(torch.promote_types(recon.dtype, target.dtype), torch.float32)
    if recon.requires_grad and not target.requires_grad and recon.dim() == 2 and torch.is_grad_enabled():
        return _SquaredError.apply(recon, target, dtype)
    return (recon.to(dtype) - target.to(dtype)).pow(2).sum(-1).mean()


class _SquaredError(torch.autograd.Function):
    """``(recon - target).pow(2).sum(-1).mean()`` with a one-pass backward.

    Autograd's backward of that expression makes three ``[batch, d]`` passes
    (``diff.pow(1)``, times 2, times the upstream gradient); this one makes one,
    ``diff * (2 * (g / n))``. The numbers are the same bit for bit: doubling is
    exact, so both round the same product ``2 * fl(g / n) * diff`` once.
    """

    @staticmethod
    def forward(ctx: Any, recon: torch.Tensor, target: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        with wide_threads():  # [batch, d] passes: big enough for every thread
            diff = recon.to(dtype) - target.to(dtype)
            ctx.save_for_backward(diff)
            ctx.recon_dtype = recon.dtype
            return diff.pow(2).sum(-1).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (diff,) = ctx.saved_tensors
        scale = (grad / diff.shape[0]) * 2  # the mean's 1/n first, as autograd does
        with wide_threads():
            return (diff * scale).to(ctx.recon_dtype), None, None


def _zero(ref: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=ref.dtype, device=ref.device)


class Objective(nn.Module):
    """The loss of one architecture. Subclasses implement :meth:`forward`.

    ``uses_dead_mask``: the trainer passes ``dead`` (``[d_sae]`` bool, features
    that have not fired for the trainer's ``aux_dead_tokens`` tokens) for auxiliary losses.
    """

    uses_dead_mask = False
    # the trainer runs forward and backward under saetool.train.sparse.narrow_threads:
    # for objectives made of many small ops that wrap their big ones in wide_threads
    narrow_threads = False

    def forward(self, sae: "SAE", x: torch.Tensor, target: torch.Tensor, *, sparsity_coeff: float = 1.0, dead: torch.Tensor | None = None) -> StepOutput:  # noqa: ARG002
        raise NotImplementedError

    def after_step(self, sae: "SAE") -> None:
        """Constraints applied after each optimizer step (default: none)."""

    def steer_l0(self, sae: "SAE", factor: float) -> None:  # noqa: ARG002
        """``--target-l0``: make firing harder by ``factor`` (> 1: fewer features fire). Default:
        nothing (the sparsity coefficient, steered by the trainer, is the only lever)."""

    def calibrate(self, sae: "SAE", x: torch.Tensor) -> None:  # noqa: ARG002
        """Called once after the last step with that step's (scaled) inputs: fit
        inference-only state to the final weights (BatchTopK's threshold). Default: nothing."""


# -- dense objectives (ReLU, JumpReLU, and a base for plugins) ------------------------
class DenseObjective(Objective):
    """``loss = ||x_hat - x||^2 + coeff * penalty``; override :meth:`activate` and :meth:`penalty`."""

    def activate(self, sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
        return sae.activate(pre)

    def penalty(self, sae: "SAE", pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:  # noqa: ARG002
        return _zero(pre)

    def forward(self, sae: "SAE", x: torch.Tensor, target: torch.Tensor, *, sparsity_coeff: float = 1.0, dead: torch.Tensor | None = None) -> StepOutput:
        pre = sae.encode_pre(x)
        acts = self.activate(sae, pre)
        recon = sae.decode(acts)
        penalty = self.penalty(sae, pre, acts)
        mse = recon_loss(recon, target)
        loss = mse + sparsity_coeff * penalty
        active = acts.detach() > 0
        return StepOutput(loss, recon, penalty.detach(), _zero(loss), active.sum(-1).float().mean(), active.any(0), acts.detach(), mse.detach())


class ReLUObjective(DenseObjective):
    """L1 penalty on feature activations weighted by their decoder norms."""

    def activate(self, sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def penalty(self, sae: "SAE", pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return (acts * sae.W_dec.norm(dim=1)).sum(-1).mean()


class CrosscoderObjective(DenseObjective):
    """Acausal crosscoder: the squared error summed over every hook's block, and an
    L1 penalty on each feature weighted by the sum over hooks of its decoder norms."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = [int(w) for w in widths]

    def activate(self, sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def penalty(self, sae: "SAE", pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        norms = sum(block.norm(dim=1) for block in sae.W_dec.split(self.widths, dim=1))
        return (acts * norms).sum(-1).mean()


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """``relu(pre) * (pre > theta)``; straight-through pseudo-gradient for ``theta``."""

    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta) * (pre > 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        pre, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_pre = grad * ((pre > theta) & (pre > 0))
        grad_theta = (-(theta / bw) * _rectangle((pre - theta) / bw) * grad).sum(0)
        return grad_pre, grad_theta, None


class _Step(torch.autograd.Function):
    """``pre > theta`` as 0/1; straight-through pseudo-gradient for ``theta`` only."""

    @staticmethod
    def forward(ctx: Any, pre: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        pre, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_theta = (-(1.0 / bw) * _rectangle((pre - theta) / bw) * grad).sum(0)
        return None, grad_theta, None


class JumpReLUObjective(DenseObjective):
    """JumpReLU (Rajamanoharan et al. 2024): a learned per-feature threshold trained
    with straight-through estimators (rectangle kernel of width ``bandwidth``) and
    an L0 penalty. The SAE's own ``threshold`` parameter is the one trained.

    With ``init_l0`` the thresholds are set from the first training batch so that
    each feature fires on ``init_l0 / d_sae`` of its tokens (about ``init_l0``
    features per token): training starts at a sensible sparsity instead of half
    the features firing, and short runs need not climb there first.
    """

    def __init__(self, bandwidth: float = 0.05, *, init_l0: float | None = None) -> None:
        super().__init__()
        self.bandwidth = float(bandwidth)
        self.init_l0 = init_l0
        self.register_buffer("initialized", torch.zeros((), dtype=torch.long))

    def activate(self, sae: "SAE", pre: torch.Tensor) -> torch.Tensor:
        if self.training and self.init_l0 is not None and not int(self.initialized):
            self._init_thresholds(sae, pre.detach())
        return _JumpReLU.apply(pre, sae.threshold, self.bandwidth)

    def _init_thresholds(self, sae: "SAE", pre: torch.Tensor) -> None:
        n, d = pre.shape
        fires = min(n - 1, max(1, round(n * float(self.init_l0) / d)))  # tokens each feature fires on
        with torch.no_grad():
            cut = pre.float().kthvalue(n - fires, dim=0).values  # the (n - fires)-th smallest: ``fires`` values lie above
            sae.threshold.copy_(cut.clamp_min(1e-3).to(sae.threshold.dtype))
        self.initialized.fill_(1)

    def penalty(self, sae: "SAE", pre: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return _Step.apply(pre, sae.threshold, self.bandwidth).sum(-1).mean()

    def after_step(self, sae: "SAE") -> None:
        with torch.no_grad():
            sae.threshold.clamp_(min=0.0)

    def steer_l0(self, sae: "SAE", factor: float) -> None:
        with torch.no_grad():
            sae.threshold.mul_(factor)


# -- TopK family ------------------------------------------------------------------
class TopKObjective(Objective):
    """TopK (Gao et al. 2024): keep the ``k`` largest pre-activations per token,
    plus the AuxK loss that lets dead features reconstruct the residual.

    The step runs one dense matmul (the encoder forward) and everything else on
    the chosen entries (:mod:`saetool.train.sparse`); ``dense=True`` is the
    straightforward reference implementation (same numbers, dense work).
    """

    uses_dead_mask = True

    def __init__(self, k: int, *, aux_k: int = 256, aux_coeff: float = AUX_COEFF, dense: bool = False) -> None:
        super().__init__()
        self.k = int(k)
        self.aux_k = int(aux_k)
        self.aux_coeff = float(aux_coeff)
        self.dense = dense
        self.narrow_threads = not dense  # the sparse path: small per-entry ops, big ones wrapped in wide_threads
        self._scratch: dict[str, torch.Tensor] = {}  # reused step buffers (not state: never checkpointed)

    def _buffer(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` whose memory is reused from step to step.

        The pre-activations (``[batch, d_sae]``, 75 MB at the benchmark's size)
        and their dead-feature columns are larger than glibc's largest mmap
        threshold (32 MB), so a fresh tensor is a fresh ``mmap``: every step
        would page-fault and zero it again (about a fifth of the encoder
        matmul's time). The storage only grows, so validation batches of other
        sizes do not reallocate it.
        """
        numel = 1
        for n in shape:
            numel *= n
        flat = self._scratch.get(name)
        if flat is None or flat.numel() < numel or flat.dtype != like.dtype or flat.device != like.device:
            flat = self._scratch[name] = torch.empty(numel, dtype=like.dtype, device=like.device)
        return flat[:numel].view(shape)

    # which entries are active -------------------------------------------------------
    def select(self, pre: torch.Tensor) -> SparseCodes:
        """The active entries of ``pre`` (values: ``pre``'s there, or empty), rows ascending."""
        with wide_threads():
            values, idx = pre.topk(self.k, dim=-1, sorted=False)
        return topk_codes(idx, values)  # the values spare gather_preacts a gather from pre

    def observe(self, values: torch.Tensor) -> None:
        """Called in training with the kept activations (BatchTopK tracks a threshold)."""

    def reconstructions(self, sae: "SAE", codes: SparseCodes, order: ColumnOrder | None = None) -> list[torch.Tensor]:
        """Reconstructions whose losses are averaged (Matryoshka: one per prefix); the last is the full one."""
        return [self._decode(sae, codes, order) + sae.b_dec]

    def _decode(self, sae: "SAE", codes: SparseCodes, order: ColumnOrder | None = None) -> torch.Tensor:
        if self.dense:
            return codes.values.new_zeros(codes.n_rows, sae.cfg.d_sae).index_put((codes.rows, codes.cols), codes.values) @ sae.W_dec
        return sparse_decode(codes, sae.W_dec, order)

    def _gather(self, sae: "SAE", x_in: torch.Tensor, shift: torch.Tensor | None, pre: torch.Tensor, pre_full: torch.Tensor | None, codes: SparseCodes, order: ColumnOrder | None = None) -> torch.Tensor:
        if pre_full is not None:
            return pre_full[codes.rows, codes.cols]
        return gather_preacts(x_in, sae.W_enc, sae.b_enc, pre, codes, order, shift=shift)

    # the step -----------------------------------------------------------------------
    def forward(self, sae: "SAE", x: torch.Tensor, target: torch.Tensor, *, sparsity_coeff: float = 1.0, dead: torch.Tensor | None = None) -> StepOutput:  # noqa: ARG002
        subtract = sae.cfg.subtracts_b_dec
        pre_full = shift = None
        if self.dense:
            x_in = x - sae.b_dec if subtract else x
            pre_full = x_in @ sae.W_enc + sae.b_enc
            pre = pre_full.detach()
        else:
            if subtract and not x.requires_grad:
                # x_in without autograd: gather_preacts hands b_dec its gradient
                # directly (``shift``), which is much cheaper than through x_in's rows
                shift = sae.b_dec
                with torch.no_grad():
                    x_in = x - shift
            else:
                x_in = x - sae.b_dec if subtract else x
            with torch.no_grad(), wide_threads():  # only the chosen entries need autograd (gather_preacts)
                W_enc = sae.W_enc
                if torch.is_autocast_enabled(x.device.type):  # autocast picks the dtype; out= would bypass it
                    pre = torch.addmm(sae.b_enc, x_in.detach(), W_enc)
                else:
                    pre = torch.addmm(sae.b_enc, x_in.detach(), W_enc, out=self._buffer("pre", (x.shape[0], W_enc.shape[1]), W_enc))
        main = self.select(pre)
        order = None if self.dense else column_order(main, sae.cfg.d_sae)
        codes = main.with_values(torch.relu(self._gather(sae, x_in, shift, pre, pre_full, main, order)))
        if self.training:
            self.observe(codes.values.detach())
        recons = self.reconstructions(sae, codes, order)
        recon = recons[-1]
        losses = [recon_loss(r, target) for r in recons]
        loss = torch.stack(losses).mean() if len(losses) > 1 else losses[0]
        aux = _zero(loss)
        dead_codes = self._dead_entries(pre, dead)
        if dead_codes is not None:
            dead_order = None if self.dense else column_order(dead_codes, sae.cfg.d_sae)  # one sort for the gather and the decode
            dead_codes = dead_codes.with_values(torch.relu(self._gather(sae, x_in, shift, pre, pre_full, dead_codes, dead_order)))
            residual = (target - recon).detach()
            scale = min(int(dead.sum()) / self.aux_k, 1.0)  # type: ignore[union-attr]
            aux = self.aux_coeff * scale * recon_loss(self._decode(sae, dead_codes, dead_order), residual)
            loss = loss + aux
        active = codes.values.detach() > 0
        fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=x.device)
        fired[codes.cols[active]] = True
        l0 = active.sum().to(loss.dtype) / x.shape[0]
        return StepOutput(loss, recon, _zero(loss), aux.detach(), l0, fired, codes.detach(), losses[-1].detach())

    def _dead_entries(self, pre: torch.Tensor, dead: torch.Tensor | None) -> SparseCodes | None:
        if not self.training or dead is None or self.aux_coeff <= 0 or self.aux_k <= 0:
            return None
        dead_idx = torch.nonzero(dead).flatten()
        if dead_idx.numel() == 0:
            return None
        k_aux = min(self.aux_k, int(dead_idx.numel()))
        with wide_threads():
            dead_pre = torch.index_select(pre, 1, dead_idx, out=self._buffer("dead_pre", (pre.shape[0], dead_idx.numel()), pre))
            values, idx = dead_pre.topk(k_aux, dim=-1, sorted=False)
        return topk_codes(dead_idx.index_select(0, idx.reshape(-1)).view(idx.shape), values)  # = dead_idx[idx], faster


def batch_topk_entries(pre: torch.Tensor, k: int) -> SparseCodes:
    """The ``n * k`` largest entries of ``relu(pre)`` over the whole batch.

    Exact, but avoids a top-k over all ``n * d_sae`` values: the top ``4k`` of
    each row are candidates, and the result is checked to be the true top set
    (no row had all its candidates above the cut); otherwise the full top-k runs.
    """
    n, d = pre.shape
    total = n * k
    width = min(d, 4 * k)
    with wide_threads():
        cand_vals, cand_idx = pre.topk(width, dim=-1, sorted=False)
    if width < d:
        flat_vals = cand_vals.reshape(-1)
        with wide_threads():
            cut_vals, cut_pos = flat_vals.topk(total, sorted=False)
        cut = cut_vals.min()
        if bool((cand_vals.min(dim=-1).values < cut).all()):
            keep = torch.zeros(flat_vals.shape[0], dtype=torch.bool, device=pre.device)
            keep[cut_pos] = True
            pos = torch.nonzero(keep).flatten()  # ascending, so rows come out ascending
            return _codes(torch.div(pos, width, rounding_mode="floor"), cand_idx.reshape(-1)[pos], n)
    with wide_threads():
        flat_pos = pre.reshape(-1).topk(total, sorted=False).indices.sort().values
    return _codes(torch.div(flat_pos, d, rounding_mode="floor"), flat_pos % d, n)


def _codes(rows: torch.Tensor, cols: torch.Tensor, n: int) -> SparseCodes:
    return SparseCodes(rows, cols, torch.empty(0, device=rows.device), n)


class BatchTopKObjective(TopKObjective):
    """BatchTopK (Bussmann et al. 2024): the ``batch * k`` largest activations of the
    whole batch are kept, so tokens use a variable number of features. At
    inference one threshold replaces the batch rule: the smallest kept
    activation (the batch's cut), tracked during training by a bias-corrected
    moving average over about ``1 / threshold_lr`` steps (used by validation and
    intermediate checkpoints) and set exactly from the final weights on the
    last training batch when the run ends (:meth:`calibrate`), so the saved SAE
    keeps ``k`` features per token on average at any run length."""

    def __init__(self, k: int, *, threshold_lr: float = 0.1, **kw: Any) -> None:
        super().__init__(k, **kw)
        self.threshold_lr = float(threshold_lr)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_seen", torch.zeros((), dtype=torch.long))

    def select(self, pre: torch.Tensor) -> SparseCodes:
        if not self.training and int(self.threshold_seen) > 0:  # the inference rule once a threshold is known
            pos = torch.nonzero((pre > self.threshold.to(pre.dtype)).reshape(-1)).flatten()
            d = pre.shape[1]
            return _codes(torch.div(pos, d, rounding_mode="floor"), pos % d, pre.shape[0])
        return batch_topk_entries(pre, self.k)

    def observe(self, values: torch.Tensor) -> None:
        positive = values[values > 0]
        if positive.numel() == 0:
            return
        low = positive.min().to(self.threshold.dtype)
        self.threshold_seen.add_(1)
        # bias-corrected EMA: weight max(lr, 1/seen) on the newest cut, so early
        # (untrained) cuts are forgotten within ~1/lr steps instead of lingering
        rate = max(self.threshold_lr, 1.0 / float(self.threshold_seen))
        self.threshold.mul_(1 - rate).add_(rate * low)

    def calibrate(self, sae: "SAE", x: torch.Tensor) -> None:
        with torch.no_grad():
            pre = sae.encode_pre(x)
            codes = batch_topk_entries(pre, self.k)
            values = pre[codes.rows, codes.cols]
            positive = values[values > 0]
            if positive.numel():
                self.threshold.copy_(positive.min().to(self.threshold.dtype))
                self.threshold_seen.clamp_(min=1)


class MatryoshkaObjective(BatchTopKObjective):
    """Matryoshka BatchTopK (Bussmann et al. 2025): the loss averages the
    reconstruction error of nested prefixes of the dictionary (features
    ``[0, m_1)``, ``[0, m_2)``, ..., all), so early features learn general
    directions and later ones refine them."""

    def __init__(self, k: int, *, prefixes: Sequence[int], **kw: Any) -> None:
        super().__init__(k, **kw)
        self.prefixes = [int(p) for p in prefixes]

    def reconstructions(self, sae: "SAE", codes: SparseCodes, order: ColumnOrder | None = None) -> list[torch.Tensor]:  # noqa: ARG002
        group = torch.bucketize(codes.cols, torch.tensor(self.prefixes, device=codes.cols.device), right=True)
        out: list[torch.Tensor] = []
        running = sae.b_dec.expand(codes.n_rows, -1)
        for g in range(len(self.prefixes)):
            part = codes.select(group == g)
            running = running + self._decode(sae, part)
            out.append(running)
        return out
