"""Several SAEs in one pass: ``saetool train ACTS --hooks all`` (or a list).

One :class:`~saetool.train.source.ActivationSource` reads every hook's rows of
the same tokens (each chunk read once, one shuffle), and each batch feeds one
:class:`~saetool.train.trainer.Trainer` per hook in turn. Each trainer sees
exactly the batches a one-hook run with the same settings sees, starts from the
same per-hook seed (:func:`saetool.train.initialize.init_seed`), keeps its own
checkpoints and is written by the same writer, so the SAE of hook ``h`` is the
one ``saetool train --hook h`` makes from the same file, bit for bit. The set
is a folder: ``sae-ARCH-HOOK.h5`` per hook and the ``sae-set.h5`` index
(:mod:`saetool.sae.sets`).
"""

from __future__ import annotations

import itertools
import os
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch

from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import check_output_path
from saetool.console import log, warn
from saetool.distributed import current, local_device, rank_info, session
from saetool.errors import SaetoolError
from saetool.models.hooks import layer_of_hook
from saetool.progress import token_progress
from saetool.sae.sets import INDEX_NAME, SetMember, member_file_name, write_sae_set
from saetool.train.api import _check_set_config, _open_source, _total_steps, _write, history_csv_path, passes_note, resolve_hooks, with_batch_size
from saetool.train.architectures import get_architecture
from saetool.train.checkpoint import CheckpointDir, checkpoint_dir_for
from saetool.train.config import TrainConfig
from saetool.train.source import Batch
from saetool.train.trainer import SCALE_ROWS, Trainer, _cpu_threads

if TYPE_CHECKING:
    from saetool.train.source import ActivationSource
    from saetool.train.trainer import TrainResult

# Deferred imports: psutil is optional (the kernel count without it).

GIB = 1 << 30


@dataclass
class SetResult:
    """A finished multi-hook run: one result per hook (in order) and the index."""

    hooks: list[str]
    results: list["TrainResult"]
    index: Path | None = None
    peak_bytes_per_sae: int = 0
    extra: dict = field(default_factory=dict)


def default_set_output(config: TrainConfig) -> Path:
    """``sae-ARCH-set/``: the folder of a multi-hook run without ``-o``."""
    return Path(f"sae-{config.arch}-set")


def estimate_peak_bytes(config: TrainConfig, d_in: int, d_sae: int) -> dict[str, int]:
    """Memory one SAE of a set holds while training (float32): its parameters with
    their gradients and Adam's two moments (4 x the parameters), its share of the
    shuffle buffer and held-out rows, and one step's activations (``step``, held by
    one SAE at a time). The data term includes the first rows held at start-up for the input scale and ``b_dec``."""
    params = 2 * d_in * d_sae + d_sae + d_in + d_sae  # W_enc, W_dec, b_enc, b_dec (+ a threshold)
    rows = max(config.shuffle_buffer, 2 * config.batch_size) + min(config.shuffle_buffer, 8192)
    start = min(SCALE_ROWS, config.steps * config.batch_size) if config.steps else SCALE_ROWS
    return {
        "state": 4 * params * 4,
        "data": (rows + config.val_tokens + start) * d_in * 4,
        "step": config.batch_size * (3 * d_sae + 4 * d_in) * 4,
    }


def available_memory(device: str) -> int | None:
    """Bytes free for training on ``device`` (``None``: unknown)."""
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional: the kernel's count
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None


def check_memory(config: TrainConfig, widths: Sequence[int], d_saes: Sequence[int], device: str) -> int:
    """Log the estimated peak per SAE; refuse (one line) a set that will not fit. Returns the largest per-SAE peak."""
    parts = [estimate_peak_bytes(config, d, s) for d, s in zip(widths, d_saes)]
    per_sae = [p["state"] + p["data"] + p["step"] for p in parts]
    total = sum(p["state"] + p["data"] for p in parts) + max(p["step"] for p in parts)
    log(f"memory: about {_size(max(per_sae))} per SAE at its peak, {_size(total)} for the {len(parts)} SAEs together")
    free = available_memory(device)
    if free is not None and total > free:
        raise SaetoolError(
            f"training {len(parts)} SAEs at once needs about {_size(total)} ({_size(max(per_sae))} per SAE) but {_size(free)} is available on {device}",
            hint="train fewer --hooks per run, or lower --d-sae, --batch-size or --shuffle-buffer",
        )
    return max(per_sae)


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 10 else f"{n / (1 << 20):.1f} MiB"


def train_saes(
    config: TrainConfig,
    inputs: Sequence[str | Path],
    hooks: str | Sequence[str],
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> SetResult:
    """Train one SAE per hook of ``hooks`` (``"all"`` or names) in one pass over ``inputs``.

    Writes ``OUTPUT/sae-ARCH-HOOK.h5`` (each with its history CSV and
    ``.checkpoints/``, as a one-hook run) and the index ``OUTPUT/sae-set.h5``.
    ``resume`` continues every SAE from its newest checkpoint. Under
    ``torchrun`` the data-parallel rules of :func:`saetool.train.api.train_sae` hold for each SAE.
    """
    if rank_info().distributed and current() is None:
        config.validate()
        config = replace(config, device=local_device(config.device, rank_info()))
        with session(config.device):
            return train_saes(config, inputs, hooks, output, overwrite=overwrite, resume=resume, progress=progress, on_step=on_step)

    config.validate()
    if not inputs:
        raise SaetoolError("no activation artifact given", hint="pass a FILE argument or pipe `saetool extract` into this one")
    with ActivationsFile(inputs[0]) as first:
        names = resolve_hooks(hooks, first.hooks)
    config = _check_set_config(config, names)

    if get_architecture(config.arch).multi_hook:
        raise SaetoolError(f"--arch {config.arch} is one SAE over several hooks", hint="train it with saetool.train.api.train_sae(..., hooks=...)")
    folder = Path(output) if output is not None else default_set_output(config)
    if folder.exists() and not folder.is_dir():
        raise SaetoolError(f"output {folder} is a file; training several hooks writes a folder", hint="give a folder name with -o")
    with _open_source(config, inputs, hooks=names) as source:
        return _train_set(config, inputs, source, folder, overwrite=overwrite, resume=resume, progress=progress, on_step=on_step)


def _train_set(config: TrainConfig, inputs: Sequence[str | Path], source: "ActivationSource", folder: Path, *, overwrite: bool, resume: bool, progress: bool, on_step: Callable[[int], None] | None) -> SetResult:
    group = current()
    main = group is None or group.is_main
    outs = [folder / member_file_name(config.arch, h) for h in source.hooks]
    n_train = source.count_train_tokens()
    if n_train == 0:
        raise SaetoolError("no training rows: every sequence is held out for validation", hint="lower --val-fraction")
    dirs = [CheckpointDir(checkpoint_dir_for(o)) for o in outs]
    config = with_batch_size(config, source, n_train, group.world_size if group is not None else 1, resume_from=dirs if resume else [])
    total_steps = _total_steps(config, n_train, group.world_size if group is not None else 1)
    trainers = [
        Trainer(replace(config, hook=h), d_in=d, total_steps=total_steps, hook=h, model=source.model, checkpoints=c)
        for h, d, c in zip(source.hooks, source.widths, dirs)
    ]
    for t in trainers:
        t.name_hook = len(trainers) > 1
    peak = check_memory(config, source.widths, [t.cfg.d_sae for t in trainers], config.device)
    folder.mkdir(parents=True, exist_ok=True)
    index = check_output_path(folder / INDEX_NAME, overwrite=overwrite, inputs=inputs)
    for o in outs:
        check_output_path(o, overwrite=overwrite, inputs=inputs)
    check_outputs({f"history CSV of {h}": history_csv_path(o) for h, o in zip(source.hooks, outs)}, inputs, overwrite=True)
    n = len(trainers)
    with ExitStack() as stack:
        if main:
            for t in trainers:
                stack.enter_context(t.checkpoints.locked())  # type: ignore[union-attr]
        has = [t.checkpoints is not None and t.checkpoints.exists() for t in trainers]
        if resume and not any(has):
            raise SaetoolError(f"nothing to resume: no checkpoint in {folder}", hint="run without --resume to start afresh")
        if main and not resume:
            for t, h in zip(trainers, has):
                if h:
                    log(f"[dim]discarding earlier checkpoints in {t.checkpoints.root} (use --resume to continue that run)[/dim]")  # type: ignore[union-attr]
                    t.checkpoints.remove()  # type: ignore[union-attr]
        t0 = trainers[0]
        log(
            f"training {n} {t0.arch.name} SAEs in one pass (one per hook): d_sae={t0.cfg.d_sae}" + (f", k={t0.cfg.k}" if t0.cfg.k else "")
            + f", {total_steps} steps x {config.batch_size} tokens on {', '.join(source.hooks[:3])}{', ...' if n > 3 else ''}"
            + f" ({n_train} training tokens in {len(source.files)} file(s){passes_note(total_steps * config.batch_size * (group.world_size if group is not None else 1), n_train)}); writing {folder}/"
        )
        if group is not None:
            group.barrier()
        try:
            results = _fit_all(trainers, source, resume=resume, progress=progress, on_step=on_step, total_steps=total_steps)
            desc = source.describe()
            desc.pop("hooks", None)
            for h, r in zip(source.hooks, results):
                r.training.update({**desc, "hook": h, "set": str(index.resolve())})
            if main:
                for r, h, o in zip(results, source.hooks, outs):
                    _write(r, o, source.for_hook(h), inputs, overwrite=overwrite)
                    r.path = o
                _write_index(index, results, source, inputs, overwrite=overwrite)
            if group is not None:
                group.barrier()
        except SaetoolError:
            if main and not resume:
                for t in trainers:
                    if t.checkpoints is not None and t.checkpoints.exists():
                        t.checkpoints.remove()
            raise
        except BaseException:
            log(f"[yellow]checkpoints kept in {folder}; rerun the same command with --resume to continue[/yellow]")
            raise
    return SetResult(list(source.hooks), results, index, peak)


def _fit_all(trainers: list, source: "ActivationSource", *, resume: bool, progress: bool, on_step: Callable[[int], None] | None, total_steps: int) -> list["TrainResult"]:
    """Feed every batch to each trainer in turn (a resumed trainer skips the batches before its checkpoint)."""
    def parts(batch: Batch) -> list[Batch]:
        return [Batch(x, None, batch.rows) for x in source.split(batch.x)]

    stream = source.batches()
    fresh = [t for t in trainers if not (resume and t.checkpoints.latest() is not None and t.resume_latest(True))]
    split_peek = [parts(b) for b in (trainers[0].peek(stream) if fresh else [])]  # the side-by-side copies are dropped at once
    val = [parts(b) for b in source.validation()]
    for i, t in enumerate(trainers):
        t.threads = t.threads_for(source.batch_size)
        if t in fresh:
            with _cpu_threads(t.threads):
                t.start([p[i] for p in split_peek])
        t.begin([p[i] for p in val])
    done = min(t.step for t in trainers)
    with token_progress("train", total=total_steps, completed=done, per_step=source.batch_size, enabled=progress) as update:
        for index, split in enumerate(itertools.chain(_drain(split_peek), (parts(b) for b in stream))):
            if all(t.step >= t.total_steps for t in trainers):
                break
            if index < done:
                continue
            for t, part in zip(trainers, split):
                if t.step == index and t.step < t.total_steps:
                    with _cpu_threads(t.threads):
                        t.advance(part)
            update(1)
            if on_step is not None:
                on_step(index + 1)
        else:  # the stream is endless; kept for iterators that end
            warn(f"the batches ran out before step {total_steps}")
    results = []
    for t in trainers:
        with _cpu_threads(t.threads):
            results.append(t.finish())
    return results


def _drain(items: list) -> Iterator:
    """Yield and forget ``items`` one by one (the start-up batches are freed as they are used)."""
    while items:
        yield items.pop(0)


def _write_index(index: Path, results: list["TrainResult"], source: "ActivationSource", inputs: Sequence[str | Path], *, overwrite: bool) -> None:
    members = [SetMember(hook=r.sae.cfg.hook, path=Path(r.path), arch=r.sae.cfg.arch, d_in=r.sae.cfg.d_in, d_sae=r.sae.cfg.d_sae, layer=layer_of_hook(r.sae.cfg.hook)) for r in results]  # type: ignore[arg-type]
    provenance = build_provenance(model=source.model, hooks=list(source.hooks), corpus=results[0].training.get("corpus"), parents=list(inputs), train=results[0].config.to_dict() | {"hook": None, "hooks": list(source.hooks)})
    write_sae_set(index, members, model=source.model, provenance=provenance, overwrite=overwrite)
