"""The inference SAE: parameters plus encode/decode, no training state."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from saetool.devices import torch_dtype
from saetool.errors import ArtifactError, SaetoolError
from saetool.sae.config import ACTIVATIONS, DTYPES, SAEConfig


class SAE(nn.Module):
    """``f = act(W_enc^T (x - b_dec?) + b_enc)``, ``x_hat = W_dec^T f + b_dec``.

    Parameter shapes follow SAELens: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``,
    ``W_dec [d_sae, d_out]``, ``b_dec [d_out]`` and, for ``jumprelu``,
    ``threshold [d_sae]``. For a transcoder ``d_out`` is the width of
    ``hook_out`` and ``b_dec`` is not subtracted from the input. With
    ``cfg.skip`` the output adds ``x @ W_skip`` (``W_skip [d_in, d_out]``):
    :meth:`forward` includes it, :meth:`decode` (features only) does not, and
    :meth:`skip_term` gives it alone.
    """

    def __init__(self, cfg: SAEConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if cfg.activation not in ACTIVATIONS:
            raise SaetoolError(f"unknown SAE activation {cfg.activation!r}", hint="one of: " + ", ".join(ACTIVATIONS))
        if cfg.activation == "topk" and not (cfg.k and 0 < cfg.k <= cfg.d_sae):
            raise SaetoolError(f"k must be between 1 and d_sae={cfg.d_sae} (got {cfg.k})")
        self.cfg = cfg
        kw = {"device": device, "dtype": dtype}
        d_out = cfg.d_out or cfg.d_in
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, **kw))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, d_out, **kw))
        self.b_dec = nn.Parameter(torch.zeros(d_out, **kw))
        if cfg.activation == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        if cfg.skip:
            self.W_skip = nn.Parameter(torch.zeros(cfg.d_in, d_out, **kw))

    # -- inference -------------------------------------------------------------
    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``[..., d_sae]``."""
        if self.cfg.subtracts_b_dec:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The inference activation rule applied to pre-activations."""
        act = self.cfg.activation
        if act == "relu":
            return torch.relu(pre)
        if act == "jumprelu":
            return pre * (pre > self.threshold)
        values, idx = torch.topk(pre, self.cfg.k, dim=-1)  # type: ignore[arg-type]
        return torch.zeros_like(pre).scatter_(-1, idx, torch.relu(values))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.encode_pre(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def skip_term(self, x: torch.Tensor) -> torch.Tensor | float:
        """The skip connection's part of the output, ``x @ W_skip`` (0 without one)."""
        return x @ self.W_skip if self.cfg.skip else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)) + self.skip_term(x)

    # -- helpers ---------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    def check_input(self, d: int, hook: str | None = None, *, what: str = "activations") -> None:
        """One-line error when ``d``/``hook`` do not match this SAE's input."""
        if d != self.cfg.d_in:
            raise SaetoolError(f"the SAE expects d_in={self.cfg.d_in} but the {what} have d={d}", hint="use activations from the SAE's model and hook")
        if hook is not None and hook != self.cfg.hook:
            raise SaetoolError(f"the SAE reads {self.cfg.hook} but the {what} are from {hook}", hint="extract that hook, or pass the matching SAE")


def build_sae(cfg: "SAEConfig", weights: Mapping[str, "torch.Tensor"], device: str = "cpu", *, source: str = "the SAE") -> "SAE":
    """An inference :class:`~saetool.sae.model.SAE` with ``weights`` (W_enc, b_enc,
    W_dec, b_dec, threshold for jumprelu), in ``cfg.dtype``, on ``device``.

    Missing, unexpected or wrongly shaped weights are a one-line error naming ``source``.
    """
    dtype = torch_dtype(cfg.dtype, DTYPES)
    sae = SAE(cfg, device="meta", dtype=dtype)
    expected = dict(sae.state_dict())
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if extra:
            parts.append("unexpected " + ", ".join(extra))
        raise ArtifactError(f"{source} has the wrong weights for a {cfg.activation} SAE ({'; '.join(parts)})", hint="the file is corrupt or not of this format")
    state: dict[str, torch.Tensor] = {}
    for name, ref in expected.items():
        tensor = weights[name]
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ArtifactError(
                f"{source}: weight {name} has shape {list(tensor.shape)}, expected {list(ref.shape)} "
                f"for d_in={cfg.d_in}, d_sae={cfg.d_sae}, d_out={cfg.d_out}",
                hint="the config and the weights disagree (corrupt or hand-edited?)",
            )
        if not tensor.is_floating_point():
            raise ArtifactError(f"{source}: weight {name} holds {str(tensor.dtype).removeprefix('torch.')} values, not floating-point numbers", hint="the file is corrupt or not of this format")
        state[name] = tensor.detach().to(device=device, dtype=dtype).contiguous()
        bad = int((~torch.isfinite(state[name])).sum())
        if bad:
            raise ArtifactError(
                f"{source}: weight {name} holds {bad} NaN/inf value(s) of {state[name].numel()}",
                hint="pass another SAE (did its training diverge?)",
            )
    sae.load_state_dict(state, assign=True, strict=True)
    return sae.eval()
