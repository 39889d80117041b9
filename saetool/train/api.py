"""The Python API behind ``saetool train``: activation artifacts in, an ``sae`` artifact out."""

from __future__ import annotations

import csv
import math
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.files import atomic_file, is_write_failure
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import check_output_path
from saetool.console import log, warn
from saetool.distributed import current, local_device, rank_info, session
from saetool.errors import SaetoolError
from saetool.sae.io import check_sae_matches, load_sae, same_model, write_sae_artifact
from saetool.train.architectures import get_architecture
from saetool.train.checkpoint import CheckpointDir, checkpoint_dir_for, load_meta
from saetool.train.config import TrainConfig
from saetool.train.convergence import DEFAULT_BATCH, default_batch_size, steps_of
from saetool.train.crosscoder import crosscoder_config, fold_hook_scales, scale_vector, scaled
from saetool.train.samples import write_samples
from saetool.train.source import ActivationSource
from saetool.train.trainer import Trainer

if TYPE_CHECKING:
    from saetool.sae.model import SAE
    from saetool.train.trainer import StepInfo, TrainResult

KIND = "sae"


def default_output(config: TrainConfig, hook: str) -> Path:
    return Path(f"sae-{config.arch}-{hook}.h5")


def history_csv_path(output: str | Path) -> Path:
    p = Path(output)
    return p.with_name(p.name + ".history.csv")


def train_sae(
    config: TrainConfig,
    inputs: Sequence[str | Path],
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    on_step: "Callable[[StepInfo], None] | None" = None,
    hooks: "str | Sequence[str] | None" = None,
) -> "TrainResult":
    """Train an SAE on activation artifacts and write it as an ``sae`` artifact.

    ``hooks`` (``"all"`` or names) is for an architecture that reads several
    hooks at once (``multi_hook``, the crosscoder): one SAE over all of them
    (:mod:`saetool.train.crosscoder`). One SAE per hook is :func:`saetool.train.multi.train_saes`.

    Writes ``OUTPUT`` (config, weights, training record, history, and samples
    with ``config.samples``), ``OUTPUT.history.csv``, and checkpoints in
    ``OUTPUT.checkpoints/``. ``resume`` continues from the newest checkpoint and
    ends with the same weights as an uninterrupted run. Every input problem is a
    one-line :class:`SaetoolError` raised before anything is written; a user
    error later on removes the checkpoints of a fresh run.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this is data-parallel training: each
    rank trains on its own share of the rows with ``batch_size`` rows per step
    (``batch_size x WORLD_SIZE`` per step in all), gradients are averaged over
    the ranks, and rank 0 alone writes checkpoints and ``OUTPUT``.
    """
    if rank_info().distributed and current() is None:
        config.validate()
        config = replace(config, device=local_device(config.device, rank_info()))
        with session(config.device):
            return train_sae(config, inputs, output, overwrite=overwrite, resume=resume, progress=progress, on_step=on_step, hooks=hooks)
    group = current()
    main = group is None or group.is_main

    config.validate()
    # an unknown --arch or architecture option fails before any file is opened; the record keeps typed values
    config = replace(config, options=get_architecture(config.arch).check_options(config.options))
    arch = get_architecture(config.arch)
    names = _multi_hooks(config, inputs, hooks, arch.multi_hook)
    init_sae = _load_init(config)
    if init_sae is not None and config.hook is None:
        config = _default_hooks_from(init_sae, config, inputs)
    with _open_source(config, inputs, hooks=names) as source:
        scale = None
        if names is not None:
            config = crosscoder_config(config, source)
            scale = scale_vector(config)
        hook_name = source.hook if names is None else f"{names[0]}-to-{names[-1]}"
        out = check_output_path(output or default_output(config, hook_name), overwrite=overwrite, inputs=[*inputs, config.init_from])
        check_outputs({"--output": out, "history CSV": history_csv_path(out)}, [*inputs, config.init_from], overwrite=True)
        if init_sae is not None:
            _check_init(init_sae, source)
        n_train = source.count_train_tokens()
        if n_train == 0:
            raise SaetoolError("no training rows: every sequence is held out for validation", hint="lower --val-fraction")
        checkpoints = CheckpointDir(checkpoint_dir_for(out))
        config = with_batch_size(config, source, n_train, group.world_size if group is not None else 1, resume_from=[checkpoints] if resume else [])
        total_steps = _total_steps(config, n_train, group.world_size if group is not None else 1)
        trainer = Trainer(
            config,
            d_in=source.d_in,
            d_out=source.d_out if source.hook_out else None,
            total_steps=total_steps,
            hook=source.hook,
            hook_out=source.hook_out,
            model=source.model,
            init_sae=init_sae,
            checkpoints=checkpoints,
        )
        with checkpoints.locked() if main else nullcontext():
            if resume and not checkpoints.exists():
                raise SaetoolError(f"nothing to resume: no checkpoint in {checkpoints.root}", hint="run without --resume to start afresh")
            if main and not resume and checkpoints.root.exists():
                log(f"[dim]discarding earlier checkpoints in {checkpoints.root} (use --resume to continue that run)[/dim]")
                checkpoints.remove()
            desc = source.describe()
            log(
                f"training a {trainer.arch.name} SAE: d_in={trainer.cfg.d_in}, d_sae={trainer.cfg.d_sae}"
                + (f", k={trainer.cfg.k}" if trainer.cfg.k else "")
                + f", {total_steps} steps x {config.batch_size} tokens on {source.hook if names is None else f'{len(names)} hooks ({names[0]} ... {names[-1]}), each scaled to a common norm'}"
                + (f" -> {source.hook_out}" if source.hook_out else "")
                + f" ({n_train} training tokens in {len(source.files)} file(s){passes_note(total_steps * config.batch_size * (group.world_size if group is not None else 1), n_train)})"
                + (f", data parallel on {group.world_size} processes ({group.backend}): {config.batch_size * group.world_size} tokens per step in all" if group is not None else "")
            )
            if trainer.target_defaulted and not resume:
                log(f"[dim]steering the sparsity coefficient to L0 {trainer.config.target_l0:g} (no --l1-coeff and no single-number --target-l0 given; a MIN-MAX range only sets the checklist's)[/dim]")
            _log_norm_filter(source)
            if group is not None:
                group.barrier()  # rank 0 has cleared old checkpoints
            try:
                val = source.validation()
                if names is None:
                    result = trainer.fit(source.batches(), val, resume=resume, progress=progress, on_step=on_step)
                else:
                    result = trainer.fit(scaled(source.batches(), scale), list(scaled(val, scale)), resume=resume, progress=progress, on_step=on_step)
                    result.sae = fold_hook_scales(result.sae)
                result.training.update(desc)
                if main:
                    _write(result, out, source, inputs, overwrite=overwrite)
                if group is not None:
                    group.barrier()  # the others wait until OUTPUT exists
            except SaetoolError as exc:
                if main and not resume and not (is_write_failure(exc) and checkpoints.exists()):
                    checkpoints.remove()  # a user error: leave nothing half-written behind
                elif checkpoints.exists():  # a full disk: the training is in the checkpoints
                    log(f"[yellow]checkpoints kept in {checkpoints.root}; rerun the same command with --resume to continue[/yellow]")
                raise
            except BaseException:
                if checkpoints.exists():
                    log(f"[yellow]checkpoints kept in {checkpoints.root}; rerun the same command with --resume to continue[/yellow]")
                raise
    result.path = out
    return result


def _log_norm_filter(source: "ActivationSource") -> None:
    rule = source.norm_filter
    if rule is None:
        return
    ex = source.excluded_tokens()
    n_train = source.count_train_tokens() + ex["train"]
    log(
        f"--max-norm-ratio {rule.ratio:g}: leaving out {ex['train']} of {n_train} training tokens ({100 * ex['train'] / max(n_train, 1):.2f}%)"
        f" and {ex['validation']} validation tokens farther than {rule.cutoff:.4g} from the median row ({rule.ratio:g} x the median distance {rule.median:.4g})"
    )


def resolve_hooks(spec: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """``all`` (every hook of the file, in its order) or a comma-separated list / sequence of hook names."""
    names = [h.strip() for h in spec.split(",")] if isinstance(spec, str) else [str(h).strip() for h in spec]
    names = [h for h in names if h]
    if names == ["all"]:
        return list(available)
    if not names:
        raise SaetoolError("--hooks is empty", hint="give `all` or a comma-separated list of hooks")
    missing = [h for h in names if h not in available]
    if missing:
        raise SaetoolError(f"the activations have no hook {missing[0]!r}", hint="they have: " + ", ".join(available))
    if len(set(names)) != len(names):
        raise SaetoolError("--hooks names a hook twice", hint="list each hook once")
    return names


def _multi_hooks(config: TrainConfig, inputs: Sequence[str | Path], hooks: "str | Sequence[str] | None", multi_hook: bool) -> list[str] | None:
    """The hooks of a multi-hook architecture (``None`` for the others), checked."""
    if hooks is None:
        if multi_hook:
            raise SaetoolError(f"--arch {config.arch} reads several hooks at once", hint="pass --hooks all (or a comma-separated list) instead of --hook")
        return None
    if not multi_hook:
        raise SaetoolError(f"--arch {config.arch} reads one hook; train_sae(hooks=...) is for a crosscoder", hint="use saetool.train.multi.train_saes for one SAE per hook")
    if not inputs:
        raise SaetoolError("no activation artifact given", hint="pass a FILE argument or pipe `saetool extract` into this one")
    with ActivationsFile(inputs[0]) as first:
        names = resolve_hooks(hooks, first.hooks)
    _check_set_config(config, names)
    if len(names) < 2:
        raise SaetoolError(f"--arch {config.arch} needs two hooks or more (got {names[0]})", hint="pass --hooks all, or train a one-hook SAE with another --arch")
    return names


def _check_set_config(config: TrainConfig, hooks: Sequence[str]) -> TrainConfig:
    """Settings of a several-hook run, checked (one-line errors naming the flag that cannot go with ``--hooks``)."""
    arch = get_architecture(config.arch)
    config = replace(config, options=arch.check_options(config.options))
    for flag, given in (("--hook", config.hook), ("--hook-out", config.hook_out), ("--init-from", config.init_from), ("--max-norm-ratio", config.max_norm_ratio)):
        if given is not None:
            raise SaetoolError(f"{flag} cannot go with --hooks" + (" (the norm filter differs per hook, so the hooks' batches would too)" if flag == "--max-norm-ratio" else ""), hint=f"drop {flag}, or train that hook on its own with --hook")
    if arch.multi_hook and config.samples is not None:
        raise SaetoolError("--collect-samples reads one hook and a crosscoder reads several", hint="drop --collect-samples")
    if arch.transcoder:
        raise SaetoolError(f"--arch {arch.name} reads one hook and reconstructs another; --hooks trains SAEs", hint="train each transcoder with --hook and --hook-out")
    return config


def _open_source(config: TrainConfig, inputs: Sequence[str | Path], *, hooks: Sequence[str] | None = None) -> "ActivationSource":
    """The activation files, validated (``hooks``: every batch holds those hooks'
    rows side by side). ``--arch transcoder`` without ``--hook-out``
    reconstructs ``hook_mlp_out`` from ``hook_resid_mid`` of the same layer."""
    group = current()

    def open_with(hook_out: str | None) -> ActivationSource:
        return ActivationSource(
            inputs,
            rank=group.rank if group is not None else 0,
            world_size=group.world_size if group is not None else 1,
            hook=config.hook,
            hook_out=hook_out,
            batch_size=config.batch_size or DEFAULT_BATCH,  # a default batch is set once the tokens are counted (with_batch_size)
            shuffle_buffer=config.shuffle_buffer,
            val_fraction=config.val_fraction,
            val_tokens=config.val_tokens,
            seed=config.seed,
            max_norm_ratio=config.max_norm_ratio,
            hooks=hooks,
        )

    source = open_with(config.hook_out)
    if config.hook_out or config.arch != "transcoder" or hooks:
        return source
    hook = source.hook
    guess = hook[: -len("hook_resid_mid")] + "hook_mlp_out" if hook.endswith("hook_resid_mid") else None
    if guess is None or not all(guess in f.hooks for f in source.files):
        source.close()
        raise SaetoolError(f"--arch transcoder needs --hook-out (the hook to reconstruct from {hook})", hint="e.g. --hook blocks.3.hook_resid_mid --hook-out blocks.3.hook_mlp_out")
    source.close()
    log(f"transcoder: reconstructing {guess} from {hook}")
    return open_with(guess)


def passes_note(tokens: int, n_train: int) -> str:
    """``; 8.3 passes over them`` when a run of ``tokens`` reads its ``n_train`` training
    tokens more than once ('' otherwise): repeated tokens train less than new ones."""
    if n_train <= 0 or tokens <= n_train * 1.05:
        return ""
    return f"; {tokens / n_train:.1f} passes over them: more distinct tokens (a longer extract) train further than more passes"


def with_batch_size(config: TrainConfig, source: "ActivationSource", n_train: int, world_size: int = 1, *, resume_from: Sequence[CheckpointDir] = ()) -> TrainConfig:
    """``config`` with its batch size: the one given; resuming, the batch of the
    first of ``resume_from`` that holds a checkpoint (a run started under another
    default continues as it began); else the default for the run's tokens per
    process (:func:`~saetool.train.convergence.default_batch_size`, logged, as it
    depends on the data). ``source`` then reads batches of that size."""
    if config.batch_size is not None:
        return config
    saved = next(filter(None, (c.latest() for c in resume_from)), None)
    recorded = (load_meta(saved).get("train_config") or {}).get("batch_size") if saved is not None else None
    if isinstance(recorded, int) and recorded >= 1:
        size = recorded
    else:  # a fresh run (or a checkpoint without a usable batch: resuming it then fails on the settings check, one line)
        world = max(1, world_size)
        tokens = _run_tokens(config, n_train)
        size = default_batch_size(None if tokens is None else tokens // world)
        if tokens is not None and size != DEFAULT_BATCH:
            share = f"{tokens // world:,} tokens per process" if world > 1 else f"a run of {tokens:,} tokens"
            log(f"[dim]{size} tokens per step{' per process' if world > 1 else ''}, the default for {share} ({steps_of(tokens, size * world)} steps; --batch-size sets it)[/dim]")
    source.use_batch_size(size)
    return replace(config, batch_size=size)


def _run_tokens(config: TrainConfig, n_train: int) -> int | None:
    """The tokens a run reads: ``num_tokens``, else one pass over the ``n_train`` training tokens (``None``: a run given in ``steps``)."""
    if config.steps is not None:
        return None
    return config.num_tokens if config.num_tokens is not None else n_train


def _total_steps(config: TrainConfig, n_train: int, world_size: int = 1) -> int:
    tokens = _run_tokens(config, n_train)
    return int(config.steps or 0) if tokens is None else max(1, steps_of(tokens, config.batch_size * world_size))


def _load_init(config: TrainConfig) -> "SAE | None":
    """The ``--init-from`` SAE (any format :func:`saetool.sae.io.load_sae` reads)."""
    if config.init_from is None:
        return None

    return load_sae(config.init_from, "cpu")


def _default_hooks_from(sae: "SAE", config: TrainConfig, inputs: Sequence[str | Path]) -> TrainConfig:
    """Without ``--hook``, read the hook(s) the pretrained SAE was trained on when the files have them."""
    with ActivationsFile(inputs[0]) as first:
        hooks = first.hooks
    if sae.cfg.hook not in hooks:
        return config
    hook_out = config.hook_out
    if hook_out is None and sae.cfg.is_transcoder and sae.cfg.hook_out in hooks:
        hook_out = sae.cfg.hook_out
    return replace(config, hook=sae.cfg.hook, hook_out=hook_out)


def _check_init(sae: "SAE", source: "ActivationSource") -> None:
    """One-line errors when the pretrained SAE does not fit the activations (before any work)."""
    check_sae_matches(sae, d_in=source.d_in, hook=source.hook if sae.cfg.hook else None, what=f"activations ({source.hook})")
    if sae.cfg.model and source.model and not same_model(sae.cfg.model, source.model):  # same width: fine-tuning across models is legitimate
        warn(f"the --init-from SAE was trained on model {sae.cfg.model!r} but the activations are from {source.model!r}; training goes on from its weights")
    if source.hook_out and (sae.cfg.d_out or sae.cfg.d_in) != source.d_out:
        raise SaetoolError(f"the --init-from SAE reconstructs d_out={sae.cfg.d_out} but {source.hook_out} has d={source.d_out}")


def _write(result: "TrainResult", out: Path, source: "ActivationSource", inputs: Sequence[str | Path], *, overwrite: bool) -> None:
    """The ``sae`` artifact, then the history CSV next to it (both atomic)."""
    hooks = list(source.hooks) + ([source.hook_out] if source.hook_out else [])
    provenance = build_provenance(model=source.model, hooks=hooks, corpus=result.training.get("corpus"), parents=list(inputs), train=result.config.to_dict())
    samples = result.samples
    extra = (lambda fh: write_samples(fh, samples, source, model=source.model, sae=result.sae)) if samples is not None else None

    # The CSV goes to OUT.history.csv.partial first and is renamed only after the artifact is committed.
    with atomic_file(history_csv_path(out), "w", newline="") as fh:
        _history_rows(result.history, fh)
        write_sae_artifact(out, result.sae, provenance=provenance, training=result.training, history=result.history, write_extra=extra, overwrite=overwrite)


def _history_rows(history: dict, fh: Any) -> None:
    names = list(history)
    n = len(next(iter(history.values()))) if history else 0
    writer = csv.writer(fh)
    writer.writerow(names)
    for i in range(n):
        writer.writerow([_cell(history[name][i]) for name in names])


def _cell(value: object) -> str:
    f = float(value)  # type: ignore[arg-type]
    if math.isnan(f):
        return ""
    return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)
