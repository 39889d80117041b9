"""``saetool train``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from saetool.cli.options import DEVICE, OUTPUT, OVERWRITE, TRUST_REMOTE_CODE


def train(
    inputs: Optional[List[Path]] = typer.Argument(None, help="Activation artifact(s) from `saetool extract` (omit or '-' to read a manifest from stdin)."),
    arch: str = typer.Option("topk", "--arch", "-a", help="Architecture: relu, topk, batchtopk, jumprelu, matryoshka, transcoder (or a plugin's)."),
    d_sae: Optional[int] = typer.Option(None, "--d-sae", help="Number of features (default: 8 x d_in)."),
    expansion_factor: Optional[float] = typer.Option(None, "--expansion-factor", help="Features per input dimension (instead of --d-sae)."),
    k: Optional[int] = typer.Option(None, "--k", help="Active features per token for topk/batchtopk/matryoshka/transcoder (default 32)."),
    hook: Optional[str] = typer.Option(None, "--hook", help="Hook to read (default: the file's first hook)."),
    hook_out: Optional[str] = typer.Option(None, "--hook-out", help="Hook to reconstruct (a transcoder), e.g. blocks.3.hook_mlp_out."),
    prefixes: Optional[str] = typer.Option(None, "--prefixes", help="Matryoshka prefix widths, e.g. 256,1024,4608 (default: d_sae/16, /8, /4, /2, all)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default: 1e-3 x sqrt(16384 / d_sae) for the TopK family, e.g. 2.7e-3 at 2,304 features; relu 1e-4, jumprelu 3e-4 at 16384)."),
    lr_schedule: str = typer.Option("wsd", "--lr-schedule", help="wsd (warmup, constant, linear decay to 0 over the last --decay-fraction), cosine (warmup, cosine decay to 0) or constant."),
    decay_fraction: float = typer.Option(0.2, "--decay-fraction", help="Share of the steps over which the wsd schedule decays the learning rate to 0."),
    batch_size: int = typer.Option(4096, "--batch-size", "-b", help="Tokens per step."),
    num_tokens: Optional[int] = typer.Option(None, "--num-tokens", "-n", help="Training tokens (default: one pass over the training rows)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (instead of --num-tokens)."),
    l1_coeff: Optional[float] = typer.Option(None, "--l1-coeff", help="Sparsity coefficient: L1 (relu) or L0 (jumprelu) penalty weight (default 5 / 1)."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear LR warmup steps (default: 5% of steps, at most 1000)."),
    sparsity_warmup_steps: Optional[int] = typer.Option(None, "--sparsity-warmup-steps", help="Steps to ramp the sparsity coefficient up from 0 (default: 5% of steps for relu/jumprelu)."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Clip the gradient norm to this (0: off)."),
    init_b_dec: str = typer.Option("geometric-median", "--init-b-dec", help="Initial decoder bias: geometric-median, mean or zeros."),
    dead_tokens: Optional[int] = typer.Option(None, "--dead-tokens", help="Tokens without firing after which a feature counts as dead (default: min(1M, a quarter of training))."),
    dead_steps: Optional[int] = typer.Option(None, "--dead-steps", help="The same in steps (x --batch-size tokens)."),
    aux_k: Optional[int] = typer.Option(None, "--aux-k", help="Dead features used by the AuxK loss (default: d_in/2)."),
    aux_coeff: float = typer.Option(1 / 32, "--aux-coeff", help="Weight of the AuxK loss (TopK family)."),
    max_norm_ratio: Optional[float] = typer.Option(None, "--max-norm-ratio", help="Leave out massive-activation tokens: norm above this x the median norm (counted on stderr and in the artifact; see docs/tutorial.md). Default: keep every token."),
    val_fraction: float = typer.Option(0.05, "--val-fraction", help="Fraction of sequences held out for validation."),
    val_tokens: int = typer.Option(16384, "--val-tokens", help="At most this many held-out tokens are evaluated."),
    shuffle_buffer: int = typer.Option(65536, "--shuffle-buffer", help="Rows held in the shuffle buffer (bounds memory)."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", help="Write a checkpoint (and validate) every N steps."),
    log_every: int = typer.Option(50, "--log-every", help="Record a history row every N steps."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation and shuffling."),
    device: str = DEVICE,
    dtype: str = typer.Option("float32", "--dtype", help="Training dtype: float32, bfloat16 or float16."),
    collect_samples: bool = typer.Option(False, "--collect-samples", help="Keep the top-activating tokens of each feature (stored in the SAE artifact)."),
    sample_every: int = typer.Option(1000, "--sample-every", help="Collect samples every N steps (and at the last step)."),
    samples_per_feature: int = typer.Option(20, "--samples-per-feature", help="Samples kept per feature."),
    sample_context: int = typer.Option(20, "--sample-context", help="Tokens of context stored around each sample."),
    sample_threshold: float = typer.Option(0.1, "--sample-threshold", help="Only activations above this are kept."),
    sample_features: int = typer.Option(100, "--sample-features", help="Store samples of this many features, most active first (0: all)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Start from a pretrained SAE (an sae artifact, SAELens or sparsify folder)."),
    checklist: str = typer.Option("default", "--checklist", help="Checklist targets: default (FVU < 0.35, L0 5-200, dead < 10%) or seed002 (MSE on scaled inputs < 0.01, L0 50-100, dead < 10%)."),
    target_fvu: Optional[float] = typer.Option(None, "--target-fvu", help="Checklist: held-out FVU (1 - explained variance) below this (default: the --checklist's)."),
    target_mse: Optional[float] = typer.Option(None, "--target-mse", help="Checklist: held-out per-element MSE on the trainer's scaled inputs below this (seed 002's reconstruction loss)."),
    target_l0: Optional[str] = typer.Option(None, "--target-l0", help="Active features per token: N steers training to N (the sparsity coefficient and JumpReLU thresholds; k for topk/batchtopk/matryoshka/transcoder) and the checklist expects N +-20% on the held-out rows; MIN-MAX only sets the checklist range (default: the --checklist's)."),
    target_dead: Optional[float] = typer.Option(None, "--target-dead", help="Checklist: fraction of features dead in training below this (default: the --checklist's)."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its newest checkpoint (same settings: same final weights)."),
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Train a sparse autoencoder (or transcoder) on stored activations (an `sae` artifact).

    Prints the validation checklist on the held-out rows (FVU, explained
    variance, L0 and dead features, with `saetool evaluate`'s definitions,
    against --checklist / --target-*) and writes OUTPUT.history.csv.

    Example:

        saetool extract --layers 15 -n 200000 | saetool train --arch topk --d-sae 4608 --k 32 -o sae.h5

    Data parallel over processes or machines: `torchrun --nproc-per-node 4 -m saetool train acts.h5 ...`
    (--batch-size is per process; see docs/scaling.md).
    """
    from saetool.artifacts.manifest import emit_manifest, resolve_input
    from saetool.console import log
    from saetool.errors import SaetoolError
    from saetool.train.checklist import print_checklist
    from saetool.train.config import SampleSettings, Targets, TrainConfig

    paths = [p for p in (inputs or []) if str(p) != "-"]
    if not paths:
        paths = [resolve_input(None, what="activation artifact")]
    if dead_tokens is not None and dead_steps is not None:
        raise SaetoolError("give --dead-tokens or --dead-steps, not both")
    steer = Targets.steering_l0(target_l0) if target_l0 is not None else None
    targets = Targets.preset(checklist)
    if target_l0 is not None:
        targets.l0_min, targets.l0_max = Targets.parse_l0(target_l0)
    for name, value in (("fvu", target_fvu), ("scaled_mse", target_mse), ("dead", target_dead)):
        if value is not None:
            setattr(targets, name, value)
    options = {}
    if prefixes:
        try:
            options["prefixes"] = [int(p) for p in prefixes.split(",") if p.strip()]
        except ValueError:
            raise SaetoolError(f"--prefixes must be comma-separated integers (got {prefixes!r})") from None
    config = TrainConfig(
        arch=arch,
        d_sae=d_sae,
        expansion_factor=expansion_factor,
        k=k,
        target_l0=steer,
        hook=hook,
        hook_out=hook_out,
        lr=lr,
        lr_schedule=lr_schedule,
        decay_fraction=decay_fraction,
        batch_size=batch_size,
        num_tokens=num_tokens,
        steps=steps,
        sparsity_coeff=l1_coeff,
        warmup_steps=warmup_steps,
        sparsity_warmup_steps=sparsity_warmup_steps,
        grad_clip=grad_clip,
        init_b_dec=init_b_dec,
        dead_tokens=dead_tokens if dead_steps is None else dead_steps * batch_size,
        aux_k=aux_k,
        aux_coeff=aux_coeff,
        max_norm_ratio=max_norm_ratio,
        val_fraction=val_fraction,
        val_tokens=val_tokens,
        shuffle_buffer=shuffle_buffer,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        seed=seed,
        device=device,
        dtype=dtype,
        samples=SampleSettings(every=sample_every, per_feature=samples_per_feature, context=sample_context, threshold=sample_threshold, features=sample_features) if collect_samples else None,
        targets=targets,
        init_from=init_from,
        options=options,
    )
    from saetool.train.api import KIND, history_csv_path, train_sae

    result = train_sae(config, paths, output, overwrite=overwrite, resume=resume)
    from saetool.distributed import rank_info

    if not rank_info().is_main:  # under torchrun only rank 0 reports (it wrote OUTPUT)
        return
    path = result.path
    assert path is not None
    rows = int(result.metrics.get("rows", 0))
    print_checklist(result.checklist, title=f"validation checklist ({rows:,} held-out rows)" if result.metrics.get("heldout") else "validation checklist (no held-out rows: the last training batch)")
    c = result.sae.cfg
    log(f"[green]wrote[/green] {path}: {c.arch} SAE, d_in={c.d_in}, d_sae={c.d_sae}, hook {c.hook}" + (f" -> {c.hook_out}" if c.is_transcoder else "") + f"; history in {history_csv_path(path)}")
    emit_manifest(
        path,
        KIND,
        arch=c.arch,
        d_in=c.d_in,
        d_sae=c.d_sae,
        hook=c.hook,
        hook_out=c.hook_out if c.is_transcoder else None,
        model=c.model,
        checklist_passed=all(item.passed for item in result.checklist if item.passed is not None),
    )
