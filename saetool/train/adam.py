"""Adam, small and checkpoint-friendly.

The update is PyTorch's (``torch._fused_adam_`` where the kernel exists, else
the same arithmetic with ``torch._foreach_*`` ops). Owning it keeps the state
a flat dict of tensors for safetensors checkpoints, and avoids
``torch.optim``'s import of the TorchDynamo compiler (over a second of start-up
on every ``saetool train``).
"""

from __future__ import annotations

from typing import Sequence

import torch


class Adam:
    """Adam without weight decay over a fixed list of parameters.

    ``lr_scales`` (one per parameter, default 1) multiply ``lr`` for single
    parameters, e.g. JumpReLU thresholds, whose natural step is larger.
    """

    def __init__(self, params: Sequence["torch.nn.Parameter"], *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, lr_scales: Sequence[float] | None = None) -> None:
        self.params = list(params)
        self.lr = float(lr)
        self.lr_scales = [float(s) for s in lr_scales] if lr_scales is not None else [1.0] * len(self.params)
        if len(self.lr_scales) != len(self.params):
            raise ValueError(f"{len(self.lr_scales)} lr_scales for {len(self.params)} parameters")
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self._fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in self.params) and hasattr(torch, "_fused_adam_")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        for scale in sorted({self.lr_scales[i] for i in live}):
            self._step([i for i in live if self.lr_scales[i] == scale], self.lr * scale)

    def _step(self, live: list[int], lr: float) -> None:
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        m = [self.exp_avg[i] for i in live]
        v = [self.exp_avg_sq[i] for i in live]
        steps = [self.steps[i] for i in live]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            if self._fused:
                torch._fused_adam_(params, grads, m, v, [], steps, lr=lr, beta1=self.beta1, beta2=self.beta2, weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
                return
            torch._foreach_lerp_(m, grads, 1 - self.beta1)
            torch._foreach_mul_(v, self.beta2)
            torch._foreach_addcmul_(v, grads, grads, 1 - self.beta2)
            for p, mi, vi, s in zip(params, m, v, steps):
                t = float(s)
                denom = (vi.sqrt() / (1 - self.beta2**t) ** 0.5).add_(self.eps)
                p.addcdiv_(mi, denom, value=-lr / (1 - self.beta1**t))

    # -- checkpoints ---------------------------------------------------------------
    def state(self) -> dict[str, "torch.Tensor"]:
        out = {}
        for i in range(len(self.params)):
            out[f"{i}.exp_avg"] = self.exp_avg[i]
            out[f"{i}.exp_avg_sq"] = self.exp_avg_sq[i]
            out[f"{i}.step"] = self.steps[i]
        return out

    def load_state(self, state: dict[str, "torch.Tensor"]) -> None:
        """Restore :meth:`state` (a ``KeyError`` or ``ValueError`` if it does not fit)."""
        for i, p in enumerate(self.params):
            m, v, s = state[f"{i}.exp_avg"], state[f"{i}.exp_avg_sq"], state[f"{i}.step"]
            if m.shape != p.shape or v.shape != p.shape:
                raise ValueError(f"optimizer state {i} has shape {list(m.shape)}, the parameter {list(p.shape)}")
            self.exp_avg[i] = m.to(device=p.device, dtype=p.dtype).contiguous()
            self.exp_avg_sq[i] = v.to(device=p.device, dtype=p.dtype).contiguous()
            self.steps[i] = s.to(device=p.device, dtype=self.steps[i].dtype).reshape(())
