"""The training loop: any iterator of activation batches in, a trained SAE out.

:class:`Trainer` owns the SAE being trained, its objective, Adam, the
schedules, dead-feature tracking, history, validation, sample collection and
checkpoints. It knows nothing about files; :mod:`saetool.train.api` feeds it
from activation artifacts and writes the result. :func:`train_on_batches` is
the entry point for batches you make yourself::

    result = train_on_batches((torch.randn(256, 64) for _ in range(100)), TrainConfig(arch="topk", k=8, d_sae=256), steps=100)
    result.sae.encode(x)
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from saetool.artifacts.resume import check_resumable
from saetool.console import log, warn
from saetool.devices import resolve_device, torch_dtype
from saetool.distributed import current
from saetool.errors import SaetoolError
from saetool.evaluate.api import recon_batches_from_rows
from saetool.evaluate.metrics import EvalContext, sae_metrics
from saetool.progress import token_progress
from saetool.sae.config import SAEConfig
from saetool.sae.model import SAE
from saetool.train.adam import Adam
from saetool.train.architectures import SAEArchitecture, get_architecture
from saetool.train.checklist import CheckItem, build_checklist
from saetool.train.checkpoint import CheckpointDir, CheckpointError, load_checkpoint
from saetool.train.config import TrainConfig
from saetool.train.convergence import DEFAULT_BATCH, convergence_warning, fix_for
from saetool.train.initialize import from_pretrained, init_b_dec, init_seed
from saetool.train.samples import SampleCollector
from saetool.train.scaling import fold_scales, norm_scale, unfold_scales
from saetool.train.schedules import FORMER_RELU_LR, FORMER_TOPK_LR, RELU_LR, TOPK_LR, L0Controller, default_aux_dead_tokens, default_dead_tokens, former_short_run_max_factor, lr_at, sparsity_at
from saetool.train.source import Batch, as_batch
from saetool.train.sparse import narrow_threads

if TYPE_CHECKING:
    from saetool.train.objectives import Objective

DEFAULT_K = 32
SMALL_STEP = 1 << 23  # batch * d_in * d_sae below which one CPU thread is faster than several
SCALE_ROWS = 32768  # rows used to estimate the input scale
MEDIAN_ROWS = 16384  # rows used for the b_dec geometric median
#: ``saetool evaluate`` metrics the checklist shows (same names, same code).
FINAL_METRICS = ("fvu", "explained_variance", "mse", "l0", "dead_fraction")

#: Settings a resumed run must share with the checkpoint it continues.
RESUME_KEYS = (
    "arch", "d_sae", "expansion_factor", "k", "target_l0", "hook", "hook_out", "lr", "encoder_lr_ratio", "lr_schedule", "decay_fraction", "batch_size", "sparsity_coeff",
    "warmup_steps", "sparsity_warmup_steps", "grad_clip", "init_b_dec", "normalize_inputs", "dead_tokens",
    "aux_dead_tokens", "aux_k", "aux_coeff", "max_norm_ratio", "val_fraction", "val_tokens", "shuffle_buffer", "seed", "dtype", "samples", "init_from", "options",
)
#: The encoder's parameters, which step at ``encoder_lr_ratio`` times the learning rate.
ENCODER_PARAMS = frozenset({"W_enc", "b_enc"})
#: History columns, in order.
HISTORY = ("step", "tokens", "loss", "scaled_mse", "explained_variance", "l0", "dead_fraction_train", "lr", "sparsity_coeff", "aux_loss", "val_loss", "val_scaled_mse", "val_explained_variance", "val_l0")
_ACC = ("loss", "scaled_mse", "explained_variance", "l0", "aux_loss")


@dataclass
class StepInfo:
    """What an ``on_step`` callback sees after each step."""

    step: int
    total: int
    tokens: int
    loss: float


@dataclass
class TrainResult:
    """A finished run. ``sae`` takes raw activations (scales folded in, finalised)."""

    sae: SAE
    config: TrainConfig
    history: dict[str, np.ndarray]
    checklist: list[CheckItem]
    metrics: dict[str, float]
    training: dict[str, Any]
    in_scale: float
    out_scale: float
    samples: SampleCollector | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_target_l0(default: float, low: float, high: float, d_sae: int) -> float:
    """The L0 a run without a coefficient or target steers to: the architecture's
    ``default``, or the geometric middle of the checklist's L0 range ``[low, high]``
    when that excludes it (``--checklist seed002``'s 50-100: 70.7); at most half
    the ``d_sae`` features."""
    target = default if low <= default <= high else round(math.sqrt(max(low, 1.0) * high), 1)
    return min(target, d_sae / 2)


class Trainer:
    """Trains one SAE. Construct, then call :meth:`fit` with a batch iterator."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        d_in: int,
        total_steps: int,
        d_out: int | None = None,
        hook: str = "activations",
        hook_out: str | None = None,
        model: str | None = None,
        init_sae: SAE | None = None,
        checkpoints: CheckpointDir | None = None,
    ) -> None:
        config.validate()
        if total_steps < 1:
            raise SaetoolError(f"nothing to train: {total_steps} steps", hint="give --steps or --num-tokens, or more data")
        if config.batch_size is None:  # the run's tokens are unknown here: train_sae and train_on_batches set it
            config = replace(config, batch_size=DEFAULT_BATCH)
        self.arch: SAEArchitecture = get_architecture(config.arch)
        self.config = config
        self.total_steps = int(total_steps)
        self.device = resolve_device(config.device)
        self.dtype = torch_dtype(config.dtype)  # compute dtype (autocast); weights and Adam stay float32
        self.checkpoints = checkpoints
        self.init_sae = init_sae

        self.dp = current()  # the torchrun process group (data-parallel training), or None
        self.world = self.dp.world_size if self.dp is not None else 1
        self.cfg = self._sae_config(d_in, d_out, hook, hook_out, model)
        self.arch.validate(self.cfg)
        # no coefficient and no target: a run from scratch steers to the architecture's default L0 (JumpReLU: 32)
        self.target_defaulted = config.target_l0 is None and config.sparsity_coeff is None and init_sae is None and self.arch.default_target_l0 is not None
        if self.target_defaulted:
            self.config = config = replace(config, target_l0=default_target_l0(self.arch.default_target_l0, config.targets.l0_min, config.targets.l0_max, self.cfg.d_sae))
        self.transcoder = self.cfg.is_transcoder
        self.lr = config.lr if config.lr is not None else self.arch.lr_for(self.cfg.d_sae, self.total_steps, d_in=self.cfg.d_in)
        self.encoder_lr_ratio = config.encoder_lr_ratio if config.encoder_lr_ratio is not None else self.arch.encoder_lr_ratio
        self.param_lr_scales = {name: float(scale) for name, scale in self.arch.param_lr_scales.items()}
        self.coeff = config.sparsity_coeff if config.sparsity_coeff is not None else (self.arch.default_sparsity_coeff or 0.0)
        self.warmup = config.warmup_steps if config.warmup_steps is not None else min(1000, self.total_steps // 20)
        self.sparsity_warmup = config.sparsity_warmup_steps if config.sparsity_warmup_steps is not None else int(self.total_steps * self.arch.sparsity_warmup_fraction)
        batch = config.batch_size * self.world  # tokens per step over all ranks
        self.run_tokens = self.total_steps * batch
        self.dead_tokens = config.dead_tokens or default_dead_tokens(self.run_tokens, batch)
        self.aux_dead_tokens = config.aux_dead_tokens or default_aux_dead_tokens(self.run_tokens, batch, self.dead_tokens)
        self.controller = self._controller()
        self.short_run: str | None = None  # the convergence warning, if any
        self.name_hook = False  # warnings name the hook (set when several SAEs train at once)
        # state filled by _start or _restore
        self.sae: SAE
        self.objective: Objective
        self.optimizer: Adam
        self.in_scale = 1.0
        self.out_scale = 1.0
        self.step = 0
        self.tokens = 0
        self.best_val = math.inf
        self.best_step = -1
        self.history: list[dict[str, float]] = []
        self.acc = torch.zeros(len(_ACC) + 1, dtype=torch.float64)  # sums since the last history row, + step count
        self.since_fired = torch.zeros(self.cfg.d_sae, dtype=torch.long, device=self.device)
        self.collector = SampleCollector(self.cfg.d_sae, config.samples, self.device) if config.samples else None
        self.last_batch: Batch | None = None
        self.curves: tuple[array, array, array] = (array("d"), array("d"), array("d"))  # per-step training FVU, L0 and dead fraction (this process, not checkpointed)
        self._lr = self._coeff = 0.0  # of the latest step, for the history
        self.threads: int | None = None  # CPU threads of a step (threads_for)

    @property
    def full_coeff(self) -> float:
        """The sparsity coefficient after its warmup: the steered one under a target L0."""
        return self.controller.coeff if self.controller is not None else self.coeff

    def _controller(self) -> L0Controller | None:
        """``--target-l0`` steers the sparsity coefficient (architectures without ``k``)."""
        target = self.config.target_l0
        if target is None or self.arch.needs_k:
            return None
        if self.arch.default_sparsity_coeff is None:
            raise SaetoolError(f"--target-l0 steers the sparsity coefficient, and --arch {self.arch.name} has none", hint="drop --target-l0")
        if target > self.cfg.d_sae:
            raise SaetoolError(f"--target-l0 {target:g} is more than d_sae={self.cfg.d_sae} features")
        return L0Controller(target, self.coeff)

    def _sae_config(self, d_in: int, d_out: int | None, hook: str, hook_out: str | None, model: str | None) -> SAEConfig:
        config, arch, init = self.config, self.arch, self.init_sae
        if init is not None and config.d_sae is None and config.expansion_factor is None:
            d_sae = init.cfg.d_sae
        else:
            d_sae = config.d_sae_for(d_in)
        k = config.k
        target = config.target_l0
        if arch.needs_k and target is not None:  # --target-l0 N is k = N for the TopK family
            if k is not None and k != round(target):
                raise SaetoolError(f"--k {k} and --target-l0 {target:g} disagree (for --arch {arch.name} the L0 is k)", hint="give one of them")
            k = max(1, round(target))
        if k is None and arch.needs_k:
            k = init.cfg.k if init is not None and init.cfg.k else DEFAULT_K
        if k is not None and not arch.needs_k:
            warn(f"--k is ignored by --arch {arch.name}")
            k = None
        if k is not None and not 0 < k <= d_sae:  # before SAEConfig, whose own check speaks of files, not flags
            raise SaetoolError(f"--k must be between 1 and d_sae={d_sae} (got {k})", hint="lower --k or raise --d-sae")
        options = {**config.options, **arch.options(config, d_sae)}
        transcoder = hook_out is not None and hook_out != hook
        return SAEConfig(
            arch=arch.name, d_in=d_in, d_sae=d_sae, hook=hook, activation=arch.activation,
            hook_out=hook_out if transcoder else None, d_out=d_out if transcoder else None,
            k=k, model=model, dtype=config.dtype, options=options, apply_b_dec_to_input=config.apply_b_dec_to_input and not transcoder,
        )

    # -- setup ----------------------------------------------------------------------------
    def _prepare(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch.x.to(device=self.device, dtype=torch.float32, non_blocking=True) * self.in_scale
        if not self.transcoder:
            return x, x
        if batch.target is None:
            raise SaetoolError("a transcoder needs (input, target) batches")
        return x, batch.target.to(device=self.device, dtype=torch.float32, non_blocking=True) * self.out_scale

    def _start(self, stream: Iterator[Batch]) -> Iterator[Batch]:
        """Scales and ``b_dec`` from the first batches (put back into the stream), fresh weights."""
        peek = self.peek(stream)
        self.start(peek)
        return itertools.chain(peek, stream)

    def peek(self, stream: Iterator[Batch]) -> list[Batch]:
        """The first batches :meth:`start` estimates scales from (at least ``SCALE_ROWS`` rows, at most ``total_steps`` batches)."""
        peek: list[Batch] = []
        rows = 0
        for batch in stream:
            peek.append(batch)
            rows += len(batch)
            if rows >= SCALE_ROWS or len(peek) >= self.total_steps:
                break
        if not peek:
            raise SaetoolError("no training batches: the data is empty")
        return peek

    def start(self, peek: list[Batch]) -> None:
        """Fresh weights, scales and ``b_dec`` from the first batches ``peek`` (see :meth:`peek`)."""
        for batch in peek:
            self._check_batch(batch)
        if self.config.normalize_inputs:
            self.in_scale = norm_scale(b.x for b in peek)
            self.out_scale = norm_scale(b.target for b in peek if b.target is not None) if self.transcoder else self.in_scale
        generator = torch.Generator().manual_seed(init_seed(self.config.seed, self.cfg.hook, self.cfg.hook_out))
        if self.init_sae is not None:
            sae = unfold_scales(from_pretrained(self.init_sae, self.cfg, self.arch), self.in_scale, self.out_scale)
        else:
            sae = self.arch.init(self.cfg, generator)
            targets = torch.cat([(b.target if self.transcoder else b.x).float() for b in peek])[:MEDIAN_ROWS] * self.out_scale
            init_b_dec(sae, targets, self.config.init_b_dec)
        self.sae = sae.to(device=self.device, dtype=torch.float32)
        self.objective = self.arch.objective(self.cfg, self.config).to(self.device)
        if self.dp is not None:  # every rank starts from rank 0's weights and scales (as DDP does)
            self.in_scale, self.out_scale = self.dp.broadcast_object((self.in_scale, self.out_scale))
            self.dp.broadcast_([*self._params(), *self.objective.buffers()])
        self.optimizer = self._make_optimizer()

    def _check_batch(self, batch: Batch) -> None:
        if batch.x.ndim != 2 or batch.x.shape[1] != self.cfg.d_in:
            raise SaetoolError(f"a batch has shape {list(batch.x.shape)}, expected [n, {self.cfg.d_in}]")
        if self.transcoder and (batch.target is None or batch.target.shape[1] != self.cfg.d_out):
            raise SaetoolError(f"a transcoder batch needs a target of width {self.cfg.d_out}")

    def _autocast(self) -> Any:
        """Mixed precision for ``--dtype bfloat16/float16`` (matmuls in that dtype)."""
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def _params(self) -> list[torch.nn.Parameter]:
        return list(self.sae.parameters()) + list(self.objective.parameters())

    def _make_optimizer(self) -> Adam:
        scales = [self.param_lr_scales.get(name, 1.0) * (self.encoder_lr_ratio if name in ENCODER_PARAMS else 1.0) for name, _ in self.sae.named_parameters()]
        scales += [1.0] * len(list(self.objective.parameters()))
        return Adam(self._params(), lr=self.lr, betas=(0.9, 0.999), lr_scales=scales)

    # -- checkpoints ----------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {f"sae.{k}": v for k, v in self.sae.state_dict().items()}
        tensors.update({f"objective.{k}": v for k, v in self.objective.state_dict().items()})
        tensors.update({f"optim.{k}": v for k, v in self.optimizer.state().items()})
        tensors["dead.since_fired"] = self.since_fired
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["acc"] = self.acc
        if self.collector is not None:
            tensors.update({f"samples.{k}": v for k, v in self.collector.state().items()})
        meta = {
            "step": self.step,
            "tokens": self.tokens,
            "total_steps": self.total_steps,
            "best_val": self.best_val if math.isfinite(self.best_val) else None,
            "best_step": self.best_step,
            "history": self.history,
            "in_scale": self.in_scale,
            "out_scale": self.out_scale,
            "sae_config": self.cfg.to_dict(),
            "train_config": self.config.to_dict(),
            "world_size": self.world,
            "aux_dead_tokens": self.aux_dead_tokens,
            "lr": self.lr,
            "encoder_lr_ratio": self.encoder_lr_ratio,
            "param_lr_scales": self.param_lr_scales,
            "log_sparsity_coeff": self.controller.log_coeff if self.controller is not None else None,
            "target_defaulted": self.target_defaulted,
        }
        return tensors, meta

    def _save(self, name: str) -> None:
        if self.checkpoints is None:
            return
        if self.dp is not None and not self.dp.is_main:  # rank 0 writes; the others wait for it
            self.dp.barrier()
            return
        tensors, meta = self._state()
        if name == "step":
            self.checkpoints.save_step(self.step, tensors, meta)
        else:
            self.checkpoints.save(name, tensors, meta)
        if self.dp is not None:
            self.dp.barrier()

    def _restore(self, path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        try:
            if self.target_defaulted and (meta.get("target_defaulted") or meta["train_config"].get("target_l0") is None):
                # the target the checkpoint's run chose (None: from before the default target, a fixed coefficient), whatever the checklist now
                self.config = replace(self.config, target_l0=meta["train_config"].get("target_l0"))
                self.controller = self._controller()
            self._check_resumable(meta, path)
            self._restore_derived(meta)
            self.cfg = SAEConfig.from_dict(meta["sae_config"])
            if "apply_b_dec_to_input" not in meta["train_config"] and not self.transcoder:  # before the setting: as its SAE encoded
                self.config = replace(self.config, apply_b_dec_to_input=self.cfg.apply_b_dec_to_input)
            sae = SAE(self.cfg)
            sae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("sae.")}, strict=True)
            self.sae = sae.to(device=self.device, dtype=torch.float32)
            self.objective = self.arch.objective(self.cfg, self.config).to(self.device)
            self.objective.load_state_dict({k[10:]: v for k, v in tensors.items() if k.startswith("objective.")}, strict=True)
            self.optimizer = self._make_optimizer()
            self.optimizer.load_state({k[6:]: v for k, v in tensors.items() if k.startswith("optim.")})
            self.since_fired = tensors["dead.since_fired"].to(self.device)
            torch.set_rng_state(tensors["rng.torch"])
            self.acc = tensors["acc"].clone()
            if self.collector is not None:
                self.collector.load_state({k[8:]: v for k, v in tensors.items() if k.startswith("samples.")})
            self.step, self.tokens = int(meta["step"]), int(meta["tokens"])
            self.best_val = float(meta["best_val"]) if meta.get("best_val") is not None else math.inf
            self.best_step = int(meta["best_step"])
            self.history = list(meta["history"])
            self.in_scale, self.out_scale = float(meta["in_scale"]), float(meta["out_scale"])
            if self.controller is not None:
                self.controller.log_coeff = float(meta["log_sparsity_coeff"])
        except SaetoolError:
            raise
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} is incomplete or corrupt ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})", hint="delete the folder and run without --resume") from None

    def _restore_derived(self, meta: dict[str, Any]) -> None:
        """The settings derived from defaults that the checkpoint trained with (AuxK
        window, learning rates), whatever today's defaults. Checkpoints written before
        AuxK had its own window used ``dead_tokens``; before the encoder had its own
        rate they stepped both at one rate, the default reference of topk,
        batchtopk, matryoshka (and plugins inheriting their rate) was
        :data:`FORMER_TOPK_LR`, relu's :data:`FORMER_RELU_LR`, and short runs
        raised it only for SAEs wider than 4x d_in; before the trainer recorded its
        per-parameter rate scales, they stepped at the architecture's
        ``former_param_lr_scales()`` (JumpReLU's thresholds at 100x the rate)."""
        scales = meta["param_lr_scales"] if "param_lr_scales" in meta else self.arch.former_param_lr_scales()
        self.param_lr_scales = {name: float(scale) for name, scale in scales.items()}
        if "aux_dead_tokens" in meta:
            self.aux_dead_tokens = int(meta["aux_dead_tokens"])
        elif "aux_dead_tokens" not in meta["train_config"]:
            self.aux_dead_tokens = self.dead_tokens
        if "encoder_lr_ratio" in meta:
            self.lr, self.encoder_lr_ratio = float(meta["lr"]), float(meta["encoder_lr_ratio"])
            return
        self.encoder_lr_ratio = 1.0
        if self.config.lr is None:
            former = {TOPK_LR: FORMER_TOPK_LR, RELU_LR: FORMER_RELU_LR}.get(self.arch.default_lr, self.arch.default_lr)
            factor = former_short_run_max_factor(self.cfg.d_sae, self.cfg.d_in, self.arch.short_run_lr_factor)
            self.lr = self.arch.lr_for(self.cfg.d_sae, self.total_steps, reference=former, max_factor=factor)

    def _check_resumable(self, meta: dict[str, Any], path: Path) -> None:
        saved = SAEConfig.from_dict(meta["sae_config"])
        if saved.d_in != self.cfg.d_in:
            raise SaetoolError(f"the checkpoint's SAE expects d_in={saved.d_in} but the activations have d={self.cfg.d_in}", hint="resume with the activations it was trained on, or start afresh without --resume")
        if self.transcoder and saved.d_out != self.cfg.d_out:
            raise SaetoolError(f"the checkpoint's SAE reconstructs d_out={saved.d_out} but the target activations have d={self.cfg.d_out}")
        before = meta["train_config"]
        now = self.config.to_dict()
        changed = []
        if int(meta["total_steps"]) != self.total_steps:
            changed.append("steps")
        if int(meta.get("world_size", 1)) != self.world:
            changed.append(f"number of processes ({meta.get('world_size', 1)}, now {self.world})")
        if not self.transcoder and "apply_b_dec_to_input" in before and before["apply_b_dec_to_input"] != now["apply_b_dec_to_input"]:  # transcoders never subtract
            changed.append("apply_b_dec_to_input")  # checkpoints from before the setting keep their SAE's (uncentred)
        check_resumable(before, now, f"from {path}", keys=RESUME_KEYS, also_changed=changed)

    # -- the loop -------------------------------------------------------------------------
    def fit(
        self,
        batches: Iterable[Any],
        val: Sequence[Batch] | None = None,
        *,
        resume: bool = False,
        progress: bool = False,
        on_step: Callable[[StepInfo], None] | None = None,
    ) -> TrainResult:
        """Train for ``total_steps`` batches (``resume``: continue from the newest
        checkpoint, replaying the batch stream up to its step)."""
        stream: Iterator[Batch] = (as_batch(b) for b in batches)
        first = next(stream, None)
        if first is None:
            raise SaetoolError("no training batches: the data is empty")
        self.threads = self.threads_for(len(first))
        with _cpu_threads(self.threads):
            return self._fit(itertools.chain([first], stream), val, resume=resume, progress=progress, on_step=on_step)

    def threads_for(self, rows: int) -> int | None:
        """CPU threads for steps of ``rows`` rows: 1 for small steps on the CPU (``None``: torch's default)."""
        small = self.device.type == "cpu" and rows * self.cfg.d_in * self.cfg.d_sae < SMALL_STEP
        return 1 if small else None

    def _fit(self, stream: Iterator[Batch], val: Sequence[Batch] | None, *, resume: bool, progress: bool, on_step: Callable[[StepInfo], None] | None) -> TrainResult:
        if self.resume_latest(resume):
            for _ in range(self.step):  # replay the deterministic stream up to the checkpoint
                if next(stream, None) is None:
                    raise SaetoolError(f"the data ran out before step {self.step} of the checkpoint", hint="resume with the same activations")
        else:
            stream = self._start(stream)
        self.begin(val)
        with token_progress("train", total=self.total_steps, completed=self.step, per_step=self.config.batch_size, enabled=progress) as update:
            while self.step < self.total_steps:
                batch = next(stream, None)
                if batch is None:
                    warn(f"the batches ran out after {self.step} of {self.total_steps} steps")
                    break
                row = self.advance(batch)
                if row is not None:
                    update(0, note=f"loss {row['loss']:.4g}  L0 {row['l0']:.1f}  dead {100 * (row['dead_fraction_train'] or 0):.1f}%")
                update(1)
                if on_step is not None:
                    on_step(StepInfo(self.step, self.total_steps, self.tokens, row["loss"] if row else math.nan))
        return self.finish()

    # -- the loop, one step at a time (train.multi drives several trainers with it) ---------
    def resume_latest(self, resume: bool) -> bool:
        """With ``resume``, restore the newest checkpoint (the caller replays
        ``self.step`` batches); ``False`` when starting afresh."""
        latest = self.checkpoints.latest() if (resume and self.checkpoints is not None) else None
        if resume and latest is None:
            where = self.checkpoints.root if self.checkpoints is not None else "(no checkpoint folder)"
            raise SaetoolError(f"nothing to resume: no checkpoint in {where}", hint="run without --resume to start afresh")
        if latest is None:
            return False
        self._restore(latest)
        log(f"resuming from {latest} (step {self.step} of {self.total_steps})")
        return True

    def begin(self, val: Sequence[Batch] | None) -> None:
        """Before the first :meth:`advance`: the held-out rows and the clock."""
        self._val = [as_batch(b) for b in (val or [])]
        self._val_mean = self._val_mean_of(self._val)
        self._started, self._start_step = time.perf_counter(), self.step
        self._param_list = self._params()

    def advance(self, batch: Batch) -> dict[str, float] | None:
        """One training step on ``batch``, then history, validation and checkpoints
        when due; returns the history row written at this step, if any."""
        self._train_step(batch, self._param_list)
        row = None
        last = self.step == self.total_steps
        at_checkpoint = self.step % self.config.checkpoint_every == 0
        if self.step % self.config.log_every == 0 or at_checkpoint or last:
            row = self._history_row()
            if (at_checkpoint or last) and self._val:
                row.update(self._validate(self._val, self._val_mean))
                if row["val_loss"] < self.best_val:
                    self.best_val, self.best_step = row["val_loss"], self.step
                    self._save("best")
            self.history.append(row)
        if at_checkpoint and not last:
            self._save("step")
        return row

    def finish(self) -> TrainResult:
        """After the last step: calibrate, the final checkpoint, the result."""
        self._calibrate()
        self._save("final")
        if self.step == self.total_steps and (self.dp is None or self.dp.is_main):
            self._warn_if_short()
        elapsed = time.perf_counter() - self._started
        return self._result(self._val, elapsed, self.step - self._start_step)

    def _train_step(self, batch: Batch, params: list[torch.nn.Parameter]) -> None:
        x, y = self._prepare(batch)
        step, n = self.step, x.shape[0]
        lr = lr_at(step, total=self.total_steps, lr=self.lr, warmup=self.warmup, schedule=self.config.lr_schedule, decay_fraction=self.config.decay_fraction)
        self.optimizer.lr = lr
        coeff = self.controller.coeff if self.controller is not None else sparsity_at(step, coeff=self.coeff, warmup=self.sparsity_warmup)
        dead = self.since_fired >= self.aux_dead_tokens if self.objective.uses_dead_mask else None
        with narrow_threads(self.device, getattr(self.objective, "narrow_threads", False)):  # sparse TopK: small ops on one CPU thread, big ones on all
            with self._autocast():
                out = self.objective(self.sae, x, y, sparsity_coeff=coeff, dead=dead)
            self.optimizer.zero_grad()
            out.loss.backward()
        if self.dp is not None:
            fired = self._all_reduce_step(params, out.fired)
            n *= self.world
        else:
            fired = out.fired
        if self.arch.unit_norm_decoder:
            _remove_parallel_grad(self.sae.W_dec)
        if self.config.grad_clip > 0:
            # clip_grad_norm_ in two halves: on the CPU, skip its multiplication by
            # a clamped coefficient of exactly 1 (a no-op pass over every gradient)
            total = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
            if self.device.type != "cpu" or not bool(self.config.grad_clip / (total + 1e-6) >= 1.0):  # nan: clip, as clip_grad_norm_ does
                torch.nn.utils.clip_grads_with_norm_(params, self.config.grad_clip, total, foreach=True)
        self.optimizer.step()
        self.objective.after_step(self.sae)
        if self.dp is not None:  # running statistics (e.g. BatchTopK's threshold): the ranks' mean
            self.dp.average_([b for b in self.objective.buffers() if b.is_floating_point()])
        if self.arch.unit_norm_decoder:
            with torch.no_grad():
                self.sae.W_dec.div_(torch.linalg.vector_norm(self.sae.W_dec, dim=1, keepdim=True).clamp_min_(1e-12))
        self.since_fired += n
        self.since_fired[fired] = 0
        with torch.no_grad():
            per_token = out.recon_loss if out.recon_loss is not None else (out.recon.detach().float() - y).pow(2).sum(-1).mean()
            n = x.shape[0]  # this rank's rows for its own metrics (averaged over ranks in the history)
            err = per_token.double() * n
            flat = y.reshape(-1).double() if y.dtype != torch.float32 else y.reshape(-1)
            var = torch.dot(flat, flat).double() - y.sum(0).double().pow(2).sum() / n
            dead_now = (self.since_fired >= self.dead_tokens).double().mean()
            values = torch.stack([out.loss.detach().double(), err / y.numel(), 1 - err / var.clamp_min(1e-12), out.l0.double(), out.aux.double(), dead_now])
        values = values.cpu()
        self.curves[0].append(1.0 - float(values[2]))
        self.curves[1].append(float(values[3]))
        self.curves[2].append(float(values[5]))
        if self.controller is not None:
            factor = self.controller.update(float(values[3]))  # this rank's L0 (under torchrun: the thresholds are averaged below)
            self.objective.steer_l0(self.sae, factor)
            if self.dp is not None and hasattr(self.sae, "threshold"):
                self.dp.average_([self.sae.threshold.data])
        self.acc[: len(_ACC)] += values[: len(_ACC)]
        self.acc[-1] += 1
        self.step += 1
        self.tokens += n * self.world
        self.last_batch = batch
        if self.collector is not None and batch.rows is not None and (self.step % self.config.samples.every == 0 or self.step == self.total_steps):  # type: ignore[union-attr]
            self.collector.update(out.codes, batch.rows, scale=1.0 / self.out_scale)
        self._lr, self._coeff = lr, coeff

    def _warn_if_short(self) -> None:
        fvu, l0, dead = self.curves
        if len(fvu) < self.total_steps:  # resumed: the curves before the checkpoint are gone
            return
        message = convergence_warning(fvu, l0, dead=dead, dead_window=self.dead_tokens / self.run_tokens, learned_l0=self.arch.default_sparsity_coeff is not None, target_l0=self.config.target_l0 if self.controller is not None else None,
                                      fix=fix_for(self._rows_per_step(), self.total_steps, steps_given=self.config.steps is not None))
        if message:
            warn(f"{self.cfg.hook}: {message}" if self.name_hook else message)
            self.short_run = message

    def _rows_per_step(self) -> int:
        """Rows each process read per step (the batches' own size: ``train_on_batches`` need not match ``config.batch_size``)."""
        return self.tokens // (self.step * self.world) if self.step else self.config.batch_size

    def _calibrate(self) -> None:
        """Fit the objective's inference-only state (e.g. BatchTopK's threshold) to the final weights."""
        if self.last_batch is None:
            return
        x, _ = self._prepare(self.last_batch)
        with self._autocast():
            self.objective.calibrate(self.sae, x)
        if self.dp is not None:
            self.dp.average_([b for b in self.objective.buffers() if b.is_floating_point()])

    def _all_reduce_step(self, params: list[torch.nn.Parameter], fired: torch.Tensor) -> torch.Tensor:
        """Data parallel: average the gradients over the ranks (the gradient of the
        loss on the union of their batches) and merge which features fired."""
        assert self.dp is not None
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8)
        self.dp.all_reduce_(has, "max")
        for p, h in zip(params, has.tolist()):
            if h and p.grad is None:  # a gradient on another rank only: zero here
                p.grad = torch.zeros_like(p)
        self.dp.average_([p.grad for p in params if p.grad is not None])
        merged = fired.to(torch.uint8)
        self.dp.all_reduce_(merged, "max")
        return merged.bool()

    def _history_row(self) -> dict[str, float]:
        if self.dp is not None:  # the history shows the mean over the ranks' batches
            self.dp.all_reduce_(self.acc, "mean")
        count = max(1.0, float(self.acc[-1]))
        means = {name: float(self.acc[i]) / count for i, name in enumerate(_ACC)}
        if not math.isfinite(means["loss"]):
            raise SaetoolError(f"training diverged by step {self.step} (the loss is {means['loss']})", hint="lower --lr, or check the activations")
        self.acc.zero_()
        return {
            "step": float(self.step),
            "tokens": float(self.tokens),
            **means,
            "dead_fraction_train": self.dead_fraction(),
            "lr": float(self._lr),
            "sparsity_coeff": float(self._coeff),
            "val_loss": math.nan,
            "val_scaled_mse": math.nan,
            "val_explained_variance": math.nan,
            "val_l0": math.nan,
        }

    def dead_fraction(self) -> float:
        return float((self.since_fired >= self.dead_tokens).float().mean())

    def _val_mean_of(self, val: list[Batch]) -> torch.Tensor | None:
        if not val:
            return None
        total = sum(((b.target if self.transcoder else b.x).double().sum(0) for b in val), torch.zeros(()))
        return total / sum(len(b) for b in val)

    def _validate(self, val: list[Batch], val_mean: torch.Tensor | None) -> dict[str, float]:
        """Loss (with the full sparsity coefficient), MSE, explained variance and L0 on held-out rows."""
        loss = sq = var = l0 = 0.0
        rows = elems = 0
        self.objective.eval()
        try:
            with torch.no_grad():
                for batch in (val[self.dp.rank :: self.world] if self.dp is not None else val):
                    x, y = self._prepare(batch)
                    with self._autocast():
                        out = self.objective(self.sae, x, y, sparsity_coeff=self.full_coeff)
                    n = x.shape[0]
                    loss += float(out.loss) * n
                    sq += float((out.recon - y).double().pow(2).sum())
                    mean = (val_mean * self.out_scale).to(self.device) if val_mean is not None else y.double().mean(0)
                    var += float((y.double() - mean).pow(2).sum())
                    l0 += float(out.l0) * n
                    rows += n
                    elems += y.numel()
        finally:
            self.objective.train()
        if self.dp is not None:
            sums = torch.tensor([loss, sq, var, l0, rows, elems], dtype=torch.float64)
            self.dp.all_reduce_(sums, "sum")
            loss, sq, var, l0 = (float(v) for v in sums[:4])
            rows, elems = int(sums[4]), int(sums[5])
        return {"val_loss": loss / rows, "val_scaled_mse": sq / elems, "val_explained_variance": 1 - sq / max(var, 1e-12), "val_l0": l0 / rows}

    # -- the end --------------------------------------------------------------------------
    def inference_sae(self) -> SAE:
        """The finalised SAE on raw activations (a copy; training state untouched)."""
        sae = self.arch.finalize(copy.deepcopy(self.sae), self.objective)
        return fold_scales(sae, self.in_scale, self.out_scale).to(self.dtype).eval()

    def final_metrics(self, sae: SAE, val: list[Batch]) -> dict[str, float]:
        """Checklist metrics of the saved SAE on the raw held-out rows (the last
        training batch when there are none: ``heldout`` is then 0), computed by
        ``saetool evaluate``'s own metrics so the two agree: ``fvu``,
        ``explained_variance``, ``mse``, ``l0``, ``dead_fraction`` (never active on
        those rows). Plus ``scaled_mse`` (``mse`` on the trainer's scaled inputs,
        times ``out_scale**2``) and ``dead_fraction_train`` (no firing over the
        last ``dead_tokens`` training tokens)."""
        batches = val or ([self.last_batch] if self.last_batch is not None else [])
        metrics = sae_metrics(list(FINAL_METRICS))
        states = {k: m.init(EvalContext(d_sae=self.cfg.d_sae)) for k, m in metrics.items()}
        rows = 0
        for batch in batches:
            target = batch.target if self.transcoder else batch.x
            for rb in recon_batches_from_rows(sae, batch.x.to(self.device), target.to(self.device)):
                rows += rb.x.shape[0]
                for k, m in metrics.items():
                    m.update(states[k], rb)
        out = {k: float(m.result(states[k])) for k, m in metrics.items()}
        out["scaled_mse"] = out["mse"] * self.out_scale**2
        out["dead_fraction_train"] = self.dead_fraction()
        out["rows"] = float(rows)
        out["heldout"] = float(bool(val))
        return out

    def _result(self, val: list[Batch], elapsed: float, steps_run: int) -> TrainResult:
        sae = self.inference_sae()
        metrics = self.final_metrics(sae, val)
        checklist = build_checklist(metrics, self.config.targets, d_sae=self.cfg.d_sae, fixed_k=self.cfg.k if sae.cfg.activation == "topk" else None)
        history = {name: np.array([row[name] for row in self.history], dtype=np.float64) for name in HISTORY}
        history["step"] = history["step"].astype(np.int64)
        history["tokens"] = history["tokens"].astype(np.int64)
        training = {
            **self.config.to_dict(),
            "arch": self.arch.name,
            "d_sae": self.cfg.d_sae,
            "k": self.cfg.k,
            "lr": self.lr,
            "encoder_lr_ratio": self.encoder_lr_ratio,
            "param_lr_scales": self.param_lr_scales,
            "apply_b_dec_to_input": self.cfg.apply_b_dec_to_input,
            "init_seed": init_seed(self.config.seed, self.cfg.hook, self.cfg.hook_out),
            "sparsity_coeff": self.full_coeff,
            "warmup_steps": self.warmup,
            "sparsity_warmup_steps": self.sparsity_warmup,
            "dead_tokens": self.dead_tokens,
            "aux_dead_tokens": self.aux_dead_tokens,
            "steps": self.step,
            "total_steps": self.total_steps,
            "tokens": self.tokens,
            "input_scale": self.in_scale,
            "output_scale": self.out_scale,
            "best_step": self.best_step if self.best_step >= 0 else None,
            "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
            "final": metrics,
            "checklist": [item.to_dict() for item in checklist],
            "seconds": elapsed,
            "tokens_per_second": (steps_run * self.config.batch_size * self.world / elapsed) if elapsed > 0 and steps_run else None,
            "checkpoints": str(self.checkpoints.root) if self.checkpoints is not None else None,
            "convergence_warning": self.short_run,
        }
        if self.dp is not None:
            training["distributed"] = {**self.dp.describe(), "batch_size_per_rank": self.config.batch_size, "effective_batch_size": self.config.batch_size * self.world}
        return TrainResult(sae, self.config, history, checklist, metrics, training, self.in_scale, self.out_scale, self.collector)


@contextmanager
def _cpu_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op CPU threads (``None``: leave as is). For small SAEs
    the cost of waking threads (large on a busy machine) exceeds the work."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _remove_parallel_grad(W_dec: torch.nn.Parameter) -> None:
    """Drop the part of each decoder row's gradient along the (unit) row itself."""
    if W_dec.grad is None:
        return
    with torch.no_grad():
        along = torch.einsum("ij,ij->i", W_dec.grad, W_dec)
        W_dec.grad.addcmul_(along.unsqueeze(1), W_dec, value=-1.0)


def _as_val(val: Any, batch_size: int) -> list[Batch]:
    if val is None:
        return []
    if isinstance(val, torch.Tensor):
        return [Batch(val[i : i + batch_size]) for i in range(0, len(val), batch_size)]
    return [as_batch(b) for b in val]


def train_on_batches(
    batches: Iterable[Any],
    config: TrainConfig,
    *,
    steps: int | None = None,
    val: Any = None,
    hook: str = "activations",
    hook_out: str | None = None,
    model: str | None = None,
    init_sae: SAE | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train an SAE on any iterable of batches: tensors ``[n, d_in]``, ``(x, target)``
    pairs (a transcoder; pass ``hook_out``) or :class:`~saetool.train.source.Batch`.

    ``steps`` (or ``config.steps``, or ``config.num_tokens / config.batch_size``,
    or ``len(batches)``) sets the schedule's length. ``val``: held-out rows (a
    tensor or batches). With ``checkpoint_dir``, checkpoints are written there
    and ``resume`` continues from the newest (the same batches must be given again).
    """
    it = iter(batches)
    first_item = next(it, None)
    if first_item is None:
        raise SaetoolError("no training batches: the iterator is empty")
    first = as_batch(first_item)
    total = steps or config.steps
    if total is None and config.num_tokens is not None:
        total = math.ceil(config.num_tokens / len(first))
    if total is None and hasattr(batches, "__len__"):
        total = len(batches)  # type: ignore[arg-type]
    if total is None:
        raise SaetoolError("the number of steps is unknown", hint="pass steps=..., or set config.steps or config.num_tokens")
    d_out = int(first.target.shape[1]) if first.target is not None else None
    if config.batch_size is None:
        config = replace(config, batch_size=len(first))
    trainer = Trainer(
        config,
        d_in=int(first.x.shape[1]),
        d_out=d_out,
        total_steps=int(total),
        hook=hook,
        hook_out=hook_out if hook_out is not None else ("target" if first.target is not None else None),
        model=model,
        init_sae=init_sae,
        checkpoints=CheckpointDir(checkpoint_dir) if checkpoint_dir is not None else None,
    )
    return trainer.fit(itertools.chain([first], it), _as_val(val, len(first)), resume=resume, progress=progress, on_step=on_step)
