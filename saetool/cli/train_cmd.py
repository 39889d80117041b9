"""``saetool train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from saetool.cli.config_options import Group, from_config
from saetool.cli.options import OUTPUT, OVERWRITE, TRUST_REMOTE_CODE, key_values
from saetool.console import log
from saetool.errors import SaetoolError
from saetool.train.config import SampleSettings, Targets, TrainConfig

# Deferred imports: loaded by `saetool --help`; the train API (torch), artifact helpers and the distributed rank load
# when the command runs.

TRAIN_OPTIONS = (
    Group(TrainConfig, flags={"sparsity_coeff": "--l1-coeff", "apply_b_dec_to_input": "--apply-b-dec-to-input/--no-apply-b-dec-to-input"}, short={"arch": "-a", "batch_size": "-b", "num_tokens": "-n"}, skip={"target_l0", "normalize_inputs", "samples", "targets", "options"}),
    Group(SampleSettings, name="samples", flags={"per_feature": "--samples-per-feature"} | {f: f"--sample-{f}" for f in ("every", "context", "threshold", "features")}),
    Group(Targets, name="targets", flags={"fvu": "--target-fvu", "scaled_mse": "--target-mse", "dead": "--target-dead"}, skip={"l0_min", "l0_max"}, optional=True, help="Checklist: {help} (default: the `checklist`'s)."),
)


@from_config(*TRAIN_OPTIONS, after={"hooks": "hook_out", "options": "hooks", "prefixes": "options", "dead_steps": "dead_tokens", "collect_samples": "dtype", "init_from": "samples__features", "checklist": "init_from", "target_l0": "targets__scaled_mse"})
def train(
    inputs: Optional[List[Path]] = typer.Argument(None, help="Activation artifact(s) from `saetool extract` (omit or '-' to read a manifest from stdin)."),
    hooks: Optional[str] = typer.Option(None, "--hooks", help="Train one SAE per hook in one pass over the data: `all` (every hook of the file) or a comma-separated list; -o names the folder that gets sae-ARCH-HOOK.h5 per hook and the sae-set.h5 index (default sae-ARCH-set/). Instead of --hook. With --arch crosscoder: one crosscoder over those hooks (one sae artifact)."),
    options: Optional[List[str]] = typer.Option(None, "--arch-option", help="KEY=VALUE for the architecture (repeatable), e.g. prefixes=256,1024,4608 or threshold_lr=0.05; `saetool plugins` lists each architecture's options."),
    prefixes: Optional[str] = typer.Option(None, "--prefixes", help="Matryoshka prefix widths, e.g. 256,1024,4608 (default: d_sae/16, /8, /4, /2, all); the same as --arch-option prefixes=..."),
    dead_steps: Optional[int] = typer.Option(None, "--dead-steps", help="The same in steps (x `batch_size` tokens, x the number of processes under torchrun)."),
    collect_samples: bool = typer.Option(False, "--collect-samples", help="Keep the top-activating tokens of each feature (stored in the SAE artifact)."),
    checklist: str = typer.Option("default", "--checklist", help="Checklist targets: default (FVU < 0.35, L0 5-200, dead < 10%) or seed002 (MSE on scaled inputs < 0.01, L0 50-100, dead < 10%)."),
    target_l0: Optional[str] = typer.Option(None, "--target-l0", help="Active features per token: N steers training to N (the sparsity coefficient and JumpReLU thresholds; k for topk/batchtopk/matryoshka/transcoder) and the checklist expects N +-20% on the held-out rows; MIN-MAX sets the checklist range (default: the `checklist`'s), and jumprelu without --l1-coeff steers to 32, or to the range's geometric middle when it excludes 32."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its newest checkpoint (same settings: same final weights)."),
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    *,
    config: dict[str, Any],
    samples: dict[str, Any],
    targets: dict[str, Any],
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
    from saetool.train.checklist import print_checklist

    paths = [p for p in (inputs or []) if str(p) != "-"]
    if not paths:
        paths = [resolve_input(None, what="activation artifact")]
    if config["dead_tokens"] is not None and dead_steps is not None:
        raise SaetoolError("give --dead-tokens or --dead-steps, not both")
    if dead_steps is not None:
        from saetool.distributed import rank_info
        from saetool.train.convergence import default_batch_size
        from saetool.train.schedules import dead_tokens_from_steps

        if config["batch_size"] is None and config["steps"] is None:
            raise SaetoolError("--dead-steps counts steps of --batch-size tokens, and without --batch-size the batch depends on the run's tokens", hint="give --batch-size too, or the window in tokens with --dead-tokens")
        config["dead_tokens"] = dead_tokens_from_steps(dead_steps, config["batch_size"] or default_batch_size(None), rank_info().world_size)
    chosen = Targets.preset(checklist)
    if target_l0 is not None:
        chosen.l0_min, chosen.l0_max = Targets.parse_l0(target_l0)
    for name, value in targets.items():
        if value is not None:
            setattr(chosen, name, value)
    arch_options = key_values(options or [], "--arch-option", example="prefixes=256,1024")
    if prefixes:
        if "prefixes" in arch_options:
            raise SaetoolError("give --prefixes or --arch-option prefixes=..., not both")
        try:
            arch_options["prefixes"] = [int(p) for p in prefixes.split(",") if p.strip()]
        except ValueError:
            raise SaetoolError(f"--prefixes must be comma-separated integers (got {prefixes!r})") from None
    settings = TrainConfig(
        **config,
        target_l0=Targets.steering_l0(target_l0) if target_l0 is not None else None,
        samples=SampleSettings(**samples) if collect_samples else None,
        targets=chosen,
        options=arch_options,
    )
    from saetool.train.architectures import get_architecture

    multi_hook = get_architecture(settings.arch).multi_hook
    if hooks is not None and not multi_hook:
        return _train_set(settings, paths, hooks, output, overwrite=overwrite, resume=resume)
    from saetool.train.api import KIND, history_csv_path, train_sae

    result = train_sae(settings, paths, output, overwrite=overwrite, resume=resume, hooks=hooks)
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
        **({"hooks": c.options.get("hooks")} if multi_hook else {}),
        model=c.model,
        checklist_passed=all(item.passed for item in result.checklist if item.passed is not None),
    )


def _train_set(settings: TrainConfig, paths: List[Path], hooks: str, output: Optional[Path], *, overwrite: bool, resume: bool) -> None:
    """``--hooks``: one SAE per hook, one manifest line for the set."""
    from saetool.artifacts.manifest import emit_manifest
    from saetool.distributed import rank_info
    from saetool.sae.sets import KIND
    from saetool.train.multi import train_saes

    done = train_saes(settings, paths, hooks, output, overwrite=overwrite, resume=resume)
    if not rank_info().is_main:
        return
    for hook, r in zip(done.hooks, done.results):
        m = r.metrics
        passed = all(item.passed for item in r.checklist if item.passed is not None)
        where = f"the {int(m.get('rows', 0)):,} held-out rows" if m.get("heldout") else "the last training batch"
        log(f"{hook}: FVU {m.get('fvu', float('nan')):.3f}, L0 {m.get('l0', float('nan')):.1f} (on {where}), never active there {100 * m.get('dead_fraction', 0):.1f}%, "
            f"dead in training {100 * m.get('dead_fraction_train', 0):.2f}%  " + ("[green]checklist passed[/green]" if passed else "[yellow]checklist not passed[/yellow]"))
    assert done.index is not None
    c = done.results[0].sae.cfg
    log(f"[green]wrote[/green] {done.index.parent}/: {len(done.results)} {c.arch} SAEs (d_sae={c.d_sae}) and the index {done.index.name}")
    emit_manifest(
        done.index,
        KIND,
        saes=[str(r.path.resolve()) for r in done.results if r.path is not None],
        hooks=done.hooks,
        arch=c.arch,
        d_sae=c.d_sae,
        model=c.model,
        checklist_passed=all(item.passed for r in done.results for item in r.checklist if item.passed is not None),
    )
