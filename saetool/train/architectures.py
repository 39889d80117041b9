"""SAE architectures: how an SAE is shaped, initialised, trained and finalised.

An :class:`SAEArchitecture` ties the inference SAE (:class:`~saetool.sae.model.SAE`,
encode/decode only) to its training objective (:mod:`saetool.train.objectives`,
losses and auxiliary losses). Built-ins are registered through the
``register_sae_architectures`` hook like any plugin's; a plugin adds one by
registering an instance of a subclass::

    from saetool.hookspecs import hookimpl
    from saetool.train.architectures import SAEArchitecture

    class MyArch(SAEArchitecture):
        name = "my-arch"
        description = "ReLU SAE with my penalty"
        def objective(self, cfg, settings):
            from my_package.losses import MyObjective
            return MyObjective()

    @hookimpl
    def register_sae_architectures(register):
        register(MyArch())

An architecture with settings of its own declares them as a dataclass in
``options_class`` (each field with a default and a docstring); ``saetool train
--arch-option KEY=VALUE`` sets them, ``saetool plugins`` lists them, and
:meth:`SAEArchitecture.settings` reads them back from a stored SAE config.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from saetool.errors import SaetoolError
from saetool.plugins import host
from saetool.train.arch_options import convert_options, read_options
from saetool.train.schedules import ENCODER_LR_RATIO, FORMER_RELU_LR, RELU_LR, TOPK_LR, default_lr

if TYPE_CHECKING:
    import torch

    from saetool.sae.config import SAEConfig
    from saetool.sae.model import SAE
    from saetool.train.config import TrainConfig
    from saetool.train.objectives import Objective

# Deferred imports: registered whenever plugins load and asked by `saetool train` before any work; torch, the SAE and the objectives load when an architecture builds or trains one.


class SAEArchitecture:
    """Base class of SAE architectures (subclass it and register an instance).

    Class attributes a subclass sets:

    * ``name``, ``description``: as listed by ``saetool plugins`` and ``--arch``.
    * ``activation``: the inference activation of the SAE being trained
      (``relu``, ``topk`` or ``jumprelu``); :meth:`finalize` may change it.
    * ``needs_k``: whether ``--k`` is required.
    * ``unit_norm_decoder``: keep decoder rows at unit norm during training
      (gradient component along each row removed, rows renormalised each step).
    * ``default_lr``: the learning rate at ``d_sae = 2**14``; the trainer scales it
      by ``sqrt(2**14 / d_sae)`` (:func:`saetool.train.schedules.default_lr`);
      ``short_run_lr_factor``: the most a short run raises it (shorter than 256
      steps up to 4x d_in, longer for wider SAEs, the width being ``d_sae / d_in``
      with ``d_in`` summed over a multi-hook SAE's hooks:
      :func:`saetool.train.schedules.budget_lr_factor`; 1: not at all);
      ``encoder_lr_ratio``: the encoder's rate (``W_enc``, ``b_enc``) as a
      fraction of the decoder's (``W_dec``, ``b_dec``), which ``default_lr`` and
      ``--lr`` give (a subclass of the TopK or BatchTopK architecture inherits
      their 1.5e-3 and 1/3); ``default_sparsity_coeff`` (``None``: no sparsity
      coefficient); ``sparsity_warmup_fraction`` of steps for the coefficient;
      ``default_target_l0``: the L0 a run from scratch steers the coefficient
      to when neither ``--l1-coeff`` nor ``--target-l0`` is given (``None``:
      the coefficient stays at ``default_sparsity_coeff``).
    * ``decoder_init_norm``: norm of the randomly initialised decoder rows.
    * ``param_lr_scales``: learning-rate multipliers for single SAE parameters
      (by name, e.g. ``{"threshold": 30.0}``); :meth:`former_param_lr_scales`
      those a checkpoint that did not record them stepped at.
    * ``multi_hook``: reads several hooks at once (``train --hooks`` trains one
      of it over all of them, not one per hook; a crosscoder).
    * ``options_class``: a dataclass of the architecture's own settings
      (``--arch-option KEY=VALUE``; ``None``: options pass unchecked, for
      plugins written before this existed).
    """

    name: str = ""
    description: str = ""
    activation: str = "relu"
    needs_k: bool = False
    unit_norm_decoder: bool = True
    default_lr: float = 1e-3  # plugins' default (the built-ins set their own)
    short_run_lr_factor: float = 2.0  # measured on TopK at 4x, 8x and 16x d_in: x2 up to 64 / 90 / 128 steps, x1 from 256 / 362 / 512 (docs/benchmarks.md, "train quality")
    encoder_lr_ratio: float = 1.0
    default_sparsity_coeff: float | None = None
    default_target_l0: float | None = None
    sparsity_warmup_fraction: float = 0.0
    decoder_init_norm: float = 1.0
    transcoder: bool = False
    multi_hook: bool = False
    param_lr_scales: dict[str, float] = {}
    options_class: type | None = None

    # -- learning rate ------------------------------------------------------------
    def former_param_lr_scales(self) -> dict[str, float]:
        """The :attr:`param_lr_scales` of checkpoints written before the trainer recorded
        them (resume only): the current ones unless the architecture changed them since."""
        return self.param_lr_scales

    def lr_for(self, d_sae: int, steps: int | None, *, d_in: int | None = None, reference: float | None = None, max_factor: float | None = None) -> float:
        """The default learning rate (the decoder's) of a ``steps``-step run of ``d_sae``
        features on ``d_in``-dimensional input: ``reference`` (default :attr:`default_lr`)
        scaled by width and budget, a short run's factor at most ``max_factor`` (default
        :attr:`short_run_lr_factor`; :func:`~saetool.train.schedules.default_lr`)."""
        reference = self.default_lr if reference is None else reference
        return default_lr(reference, d_sae, steps, self.short_run_lr_factor if max_factor is None else max_factor, d_in=d_in)

    # -- configuration ------------------------------------------------------------
    def options(self, settings: "TrainConfig", d_sae: int) -> dict[str, Any]:  # noqa: ARG002
        """Architecture options stored in ``SAEConfig.options``: the ones given in
        ``settings.options`` (:meth:`check_options`); a subclass may add derived
        ones (e.g. Matryoshka prefixes)."""
        return self.check_options(settings.options)

    def check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` checked against ``options_class`` and converted to its types (one-line :class:`ConfigError`)."""
        return convert_options(self.options_class, given, self.name)

    def settings(self, cfg: "SAEConfig") -> Any:
        """This architecture's options for ``cfg`` (an ``options_class`` instance; defaults where not stored)."""
        if self.options_class is None:
            raise TypeError(f"architecture {self.name!r} has no options_class")
        return read_options(self.options_class, cfg.options)

    def validate(self, cfg: "SAEConfig") -> None:
        """Refuse configurations this architecture cannot train (one-line error)."""
        if cfg.d_in < 1 or cfg.d_sae < 1:
            raise SaetoolError(f"d_in and d_sae must be positive (got d_in={cfg.d_in}, d_sae={cfg.d_sae})")
        if self.needs_k:
            if cfg.k is None:  # its range is checked by the trainer (naming --k) and by SAEConfig itself
                raise SaetoolError(f"--arch {self.name} needs --k (active features per token)")
        if self.transcoder and not cfg.is_transcoder:
            raise SaetoolError(f"--arch {self.name} reads one hook and reconstructs another", hint="pass --hook-out (e.g. blocks.3.hook_mlp_out with --hook blocks.3.hook_resid_mid)")

    # -- weights ------------------------------------------------------------------
    def init(self, cfg: "SAEConfig", generator: "torch.Generator") -> "SAE":
        """A freshly initialised SAE (float32, CPU): random decoder rows of norm
        ``decoder_init_norm``, the encoder its transpose (random unit columns for a
        transcoder), zero biases."""
        import torch

        from saetool.sae.model import SAE

        sae = SAE(cfg)
        d_out = cfg.d_out or cfg.d_in
        with torch.no_grad():
            dec = torch.randn(cfg.d_sae, d_out, generator=generator)
            dec = dec / dec.norm(dim=1, keepdim=True) * self.decoder_init_norm
            sae.W_dec.copy_(dec)
            if cfg.d_in == d_out and not cfg.is_transcoder:
                sae.W_enc.copy_(dec.t())
            else:
                enc = torch.randn(cfg.d_in, cfg.d_sae, generator=generator)
                sae.W_enc.copy_(enc / enc.norm(dim=0, keepdim=True))
        return sae

    def objective(self, cfg: "SAEConfig", settings: "TrainConfig") -> "Objective":
        """The training objective (default: ReLU with a decoder-norm-weighted L1)."""
        from saetool.train.objectives import ReLUObjective

        return ReLUObjective()

    def finalize(self, sae: "SAE", objective: "Objective") -> "SAE":  # noqa: ARG002
        """The inference SAE to save once training ends (default: ``sae`` itself)."""
        return sae

    def __repr__(self) -> str:
        return f"<SAE architecture {self.name!r}>"


def with_jumprelu_threshold(sae: "SAE", threshold: "torch.Tensor | float") -> "SAE":
    """A copy of ``sae`` whose inference activation is JumpReLU with ``threshold``."""
    import torch

    from saetool.sae.model import SAE

    cfg = replace(sae.cfg, activation="jumprelu", options=dict(sae.cfg.options))
    out = SAE(cfg, device=sae.device, dtype=sae.dtype)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(out, name).copy_(getattr(sae, name))
        out.threshold.copy_(torch.as_tensor(threshold, dtype=sae.dtype, device=sae.device).expand(cfg.d_sae))
    return out


# -- built-ins ------------------------------------------------------------------------
@dataclass
class NoOptions:
    """An architecture without options of its own."""


@dataclass
class TopKOptions:
    """Options of the TopK family (topk, batchtopk, matryoshka, transcoder)."""

    dense: bool = False
    """Train with the dense reference step instead of the sparse one (same numbers, slower)."""


@dataclass
class BatchTopKOptions(TopKOptions):
    """Options of BatchTopK (and Matryoshka)."""

    threshold_lr: float = 0.1
    """Rate of the moving average that tracks the inference threshold (about 1/threshold_lr steps)."""


@dataclass
class MatryoshkaOptions(BatchTopKOptions):
    """Options of Matryoshka BatchTopK."""

    prefixes: list[int] | None = None
    """Prefix widths, e.g. 256,1024,4608 (default: d_sae/16, /8, /4, /2, all)."""


#: JumpReLU thresholds start where about this many features fire per token (or at --target-l0).
JUMPRELU_INIT_L0 = 64
#: JumpReLU thresholds learn this many times faster than the weights (docs/benchmarks.md,
#: "train quality", the JumpReLU paragraphs: at 100x up to a fifth of the features never fired at
#: 4x d_in, 30% at 16x).
JUMPRELU_THRESHOLD_LR_SCALE = 30.0
#: The threshold rate of checkpoints written before the trainer recorded its rate scales.
FORMER_JUMPRELU_THRESHOLD_LR_SCALE = 100.0


def jumprelu_encoder_init_scale(d_in: int, d_sae: int) -> float:
    """The initial encoder's scale relative to the decoder's transpose: 1 up to 4x d_in,
    then 4 d_in / d_sae but at least 0.5 up to 16x and sqrt(4 d_in / d_sae) wider
    (measured at 8x, 16x and 32x: docs/benchmarks.md, "train quality", the JumpReLU paragraphs)."""
    ratio = 4.0 * d_in / d_sae
    return max(min(1.0, ratio), min(0.5, ratio**0.5))


@dataclass
class JumpReLUOptions:
    """Options of JumpReLU."""

    bandwidth: float = 0.05
    """Width of the rectangle kernel of the straight-through threshold gradients."""
    init_threshold: float = 0.01
    """Initial threshold of every feature (before init_l0 sets them from the data)."""
    init_l0: float = JUMPRELU_INIT_L0
    """Set the thresholds from the first batch so that about this many features fire per token (0: keep init_threshold); a target L0, given or the default one, wins."""


class ReLUArchitecture(SAEArchitecture):
    name = "relu"
    description = "ReLU SAE with an L1 penalty weighted by decoder norm (Anthropic, April 2024)"
    activation = "relu"
    unit_norm_decoder = False
    default_lr = RELU_LR
    short_run_lr_factor = 1.0  # the reference rate at every budget (the L1 penalty sparsifies faster at a faster rate)
    default_sparsity_coeff = 5.0
    sparsity_warmup_fraction = 0.05
    decoder_init_norm = 0.1
    options_class = NoOptions


class TopKArchitecture(SAEArchitecture):
    name = "topk"
    description = "TopK SAE: k largest pre-activations per token, AuxK loss for dead features (Gao et al. 2024)"
    activation = "topk"
    needs_k = True
    default_lr = TOPK_LR
    encoder_lr_ratio = ENCODER_LR_RATIO
    options_class = TopKOptions

    def objective(self, cfg: "SAEConfig", settings: "TrainConfig") -> "Objective":
        from saetool.train.objectives import TopKObjective

        return TopKObjective(cfg.k or 1, **_aux(self, cfg, settings))


class BatchTopKArchitecture(SAEArchitecture):
    name = "batchtopk"
    description = "BatchTopK SAE: batch*k largest activations per batch; a learned threshold at inference (Bussmann et al. 2024)"
    activation = "topk"
    needs_k = True
    default_lr = TOPK_LR
    encoder_lr_ratio = ENCODER_LR_RATIO
    options_class: type = BatchTopKOptions

    def objective(self, cfg: "SAEConfig", settings: "TrainConfig") -> "Objective":
        from saetool.train.objectives import BatchTopKObjective

        return BatchTopKObjective(cfg.k or 1, threshold_lr=self.settings(cfg).threshold_lr, **_aux(self, cfg, settings))

    def finalize(self, sae: "SAE", objective: "Objective") -> "SAE":
        return with_jumprelu_threshold(sae, objective.threshold)  # type: ignore[attr-defined]


class MatryoshkaArchitecture(BatchTopKArchitecture):
    name = "matryoshka"
    description = "Matryoshka BatchTopK SAE: nested dictionary prefixes each reconstruct the input (Bussmann et al. 2025)"
    options_class = MatryoshkaOptions

    def options(self, settings: "TrainConfig", d_sae: int) -> dict[str, Any]:
        options = super().options(settings, d_sae)
        given = options.get("prefixes")
        if given:
            prefixes = sorted({int(p) for p in given})
        else:
            prefixes = sorted({max(1, d_sae // div) for div in (16, 8, 4, 2)})
        if not prefixes or prefixes[-1] != d_sae:
            prefixes = [p for p in prefixes if p < d_sae] + [d_sae]
        return {**options, "prefixes": prefixes}

    def validate(self, cfg: "SAEConfig") -> None:
        super().validate(cfg)
        prefixes = cfg.options.get("prefixes") or []
        if not prefixes or any(p < 1 for p in prefixes) or prefixes[-1] != cfg.d_sae or list(prefixes) != sorted(set(prefixes)):
            raise SaetoolError(f"Matryoshka prefixes must be increasing widths between 1 and d_sae={cfg.d_sae} (got {prefixes})")

    def objective(self, cfg: "SAEConfig", settings: "TrainConfig") -> "Objective":
        from saetool.train.objectives import MatryoshkaObjective

        return MatryoshkaObjective(cfg.k or 1, prefixes=cfg.options["prefixes"], threshold_lr=self.settings(cfg).threshold_lr, **_aux(self, cfg, settings))


class JumpReLUArchitecture(SAEArchitecture):
    name = "jumprelu"
    description = "JumpReLU SAE: learned per-feature thresholds, straight-through gradients, L0 penalty (Rajamanoharan et al. 2024)"
    activation = "jumprelu"
    default_lr = 3e-4  # not measured by benchmarks/train_quality.py (TopK only): the former flat rate, now at d_sae 2**14
    short_run_lr_factor = 1.0  # not measured (the L0 controller and threshold rate were tuned at the reference rate)
    default_sparsity_coeff = 1.0
    # the TopK family's default k: a fixed coefficient's L0 depends on the data (docs/benchmarks.md,
    # "JumpReLU and ReLU": L0 17 on SmolLM2, 2.5 on Gemma 3 with 82% of the features never firing)
    default_target_l0 = 32.0
    sparsity_warmup_fraction = 0.05
    param_lr_scales = {"threshold": JUMPRELU_THRESHOLD_LR_SCALE}
    options_class = JumpReLUOptions

    def former_param_lr_scales(self) -> dict[str, float]:
        """The thresholds stepped at 100x before these scales were recorded; a plugin that
        set its own scales stepped at those (hence the identity check, not equality)."""
        if self.param_lr_scales is JumpReLUArchitecture.param_lr_scales:
            return {**self.param_lr_scales, "threshold": FORMER_JUMPRELU_THRESHOLD_LR_SCALE}
        return self.param_lr_scales

    def init(self, cfg: "SAEConfig", generator: "torch.Generator") -> "SAE":
        import torch

        sae = super().init(cfg, generator)
        with torch.no_grad():
            sae.threshold.fill_(float(self.settings(cfg).init_threshold))
            # wider than 4x: a smaller encoder, or the reconstruction is many times the input
            # early on (16x on Gemma 3: held-out FVU 4.3 after 64 steps, the outlier tokens
            # firing thousands of features; thresholds set for L0 32 from the first batch
            # did not help; docs/benchmarks.md, "JumpReLU, 16x d_model")
            sae.W_enc.mul_(jumprelu_encoder_init_scale(cfg.d_in, cfg.d_sae))
        return sae

    def objective(self, cfg: "SAEConfig", settings: "TrainConfig") -> "Objective":
        from saetool.train.objectives import JumpReLUObjective

        options = self.settings(cfg)
        init_l0 = settings.target_l0 or options.init_l0
        return JumpReLUObjective(bandwidth=float(options.bandwidth), init_l0=min(float(init_l0), cfg.d_sae / 2) if init_l0 else None)


class TranscoderArchitecture(TopKArchitecture):
    name = "transcoder"
    default_lr = 1e-3  # not measured with a slower encoder (its encoder is not the decoder's transpose): one rate, as before
    encoder_lr_ratio = 1.0
    description = "TopK transcoder: reads one hook (e.g. hook_resid_mid) and reconstructs another (e.g. hook_mlp_out)"
    transcoder = True


@dataclass
class CrosscoderOptions:
    """Options of the crosscoder (``hooks``, ``widths`` and ``hook_scales`` are set by ``train --hooks``)."""

    normalize_hooks: bool = True
    """Scale each hook to the same mean norm before training (folded back into the saved weights)."""
    hooks: list[str] | None = None
    """The hooks read, in order (set by training)."""
    widths: list[int] | None = None
    """Each hook's width (set by training)."""
    hook_scales: list[float] | None = None
    """Each hook's normalising factor (set by training)."""


class CrosscoderArchitecture(ReLUArchitecture):
    name = "crosscoder"
    description = "Acausal crosscoder over several hooks (train --hooks): one ReLU dictionary whose decoder writes every hook, L1 weighted by the sum of per-hook decoder norms (Lindsey et al. 2024)"
    multi_hook = True
    default_lr = FORMER_RELU_LR  # not measured at ReLU's faster rate: the rate it had
    options_class = CrosscoderOptions

    def validate(self, cfg: "SAEConfig") -> None:
        super().validate(cfg)
        from saetool.sae.crosscoder import hook_widths

        if not cfg.options.get("hooks"):
            raise SaetoolError("--arch crosscoder reads several hooks at once", hint="pass --hooks all (or a comma-separated list) instead of --hook")
        hook_widths(cfg)

    def objective(self, cfg: "SAEConfig", settings: "TrainConfig") -> "Objective":
        from saetool.sae.crosscoder import hook_widths
        from saetool.train.objectives import CrosscoderObjective

        return CrosscoderObjective(hook_widths(cfg))


def _aux(arch: SAEArchitecture, cfg: "SAEConfig", settings: "TrainConfig") -> dict[str, Any]:
    aux_k = settings.aux_k if settings.aux_k is not None else max(1, cfg.d_in // 2)
    return {"aux_k": min(aux_k, cfg.d_sae), "aux_coeff": settings.aux_coeff, "dense": bool(arch.settings(cfg).dense)}


BUILTIN_ARCHITECTURES: tuple[SAEArchitecture, ...] = (
    ReLUArchitecture(),
    TopKArchitecture(),
    BatchTopKArchitecture(),
    JumpReLUArchitecture(),
    MatryoshkaArchitecture(),
    TranscoderArchitecture(),
    CrosscoderArchitecture(),
)


def get_architecture(name: str) -> SAEArchitecture:
    """The registered architecture ``name`` (built-in or a plugin's), or a one-line error."""
    arch = host().get("sae_architectures", name)
    if not isinstance(arch, SAEArchitecture):
        raise SaetoolError(f"SAE architecture {name!r} is not an SAEArchitecture instance", hint="the plugin that registered it is broken")
    return arch
