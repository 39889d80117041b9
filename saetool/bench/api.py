"""Running the bench: every eval on every SAE and its random floor, into a ``bench`` artifact.

The SAEs must read the same hook. Activations come from ``acts`` or, without
it, are extracted from ``config.model`` over ``config.corpus`` into a temporary
file. The model (``config.model``, else the activations' or the SAE's) is
loaded only when an eval needs it. Each finished SAE x eval result is written
at once; a killed run keeps its partial file and ``resume`` skips what it holds.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import h5py

from saetool.artifacts.activations import ActivationsFile
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.resume import check_resumable
from saetool.artifacts.store import ArtifactWriter, check_output_path, partial_path
from saetool.bench.base import BenchContext, BenchEval, SAEEntry, bench_evals, eval_options
from saetool.bench.config import KIND, BenchConfig
from saetool.bench.random_sae import random_like
from saetool.bench.store import BenchResults, stored_results, write_header, write_result
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.evaluate.api import check_model
from saetool.extract.api import ExtractConfig, extract_activations
from saetool.models.registry import load_model
from saetool.progress import token_progress
from saetool.sae.io import load_sae


def sae_names(paths: Sequence[str | Path]) -> list[str]:
    """Short names for the SAEs (file stem or folder name; repeated ones numbered)."""
    stems = [Path(p).stem if Path(p).suffix else Path(p).name for p in paths]
    out = []
    for i, stem in enumerate(stems):
        out.append(stem if stems.count(stem) == 1 else f"{stem}-{i + 1}")
    return out


def load_entries(paths: Sequence[str | Path], config: BenchConfig) -> list[SAEEntry]:
    """The SAEs given (all on one hook) and, with ``random_floor``, one random SAE per shape."""
    if not paths:
        raise SaetoolError("no SAE given", hint="saetool bench SAE [SAE ...]")
    entries = [SAEEntry(name, load_sae(str(p), config.device).eval(), path=str(p)) for name, p in zip(sae_names(paths), paths)]
    hooks = {e.sae.cfg.hook for e in entries}
    if len(hooks) > 1:
        raise SaetoolError(f"the SAEs read different hooks ({', '.join(sorted(hooks))})", hint="bench SAEs of one hook together")
    if not config.random_floor:
        return entries
    shapes: dict[tuple[Any, ...], SAEEntry] = {}
    for e in entries:
        cfg = e.sae.cfg
        shapes.setdefault((cfg.d_in, cfg.d_sae, cfg.activation, cfg.k, cfg.hook_out), e)
    floors = []
    for i, (key, e) in enumerate(shapes.items()):
        name = "random" if len(shapes) == 1 else f"random-{key[1]}" + ("" if sum(k[1] == key[1] for k in shapes) == 1 else f"-{i + 1}")
        floors.append(SAEEntry(name, random_like(e.sae, seed=config.seed + i), random_of=e.name))
    return entries + floors


def run_bench(
    sae_paths: Sequence[str | Path],
    config: BenchConfig,
    output: str | Path,
    *,
    acts: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> BenchResults:
    """Run ``config.evals`` on the SAEs at ``sae_paths`` (and their random floors); write ``output``."""
    if config.evals is None:
        config.evals = list(bench_evals())
    config.validate()
    evals = bench_evals(config.evals)
    for ev in evals.values():
        eval_options(ev, config.options.get(ev.name, {}))  # bad options fail before any work
    out = check_output_path(output, overwrite=overwrite, resume=resume, inputs=[*sae_paths, *([acts] if acts else [])])
    entries = load_entries(sae_paths, config)
    hook = entries[0].sae.cfg.hook
    needs = {n for ev in evals.values() for n in ev.needs}
    with tempfile.TemporaryDirectory(prefix="saetool-bench-") as tmp:
        ctx = BenchContext(config=config, entries=entries, progress=progress, workdir=Path(tmp))
        _setup_inputs(ctx, acts, hook, needs, Path(tmp))
        return _run(ctx, evals, out, sae_paths, overwrite=overwrite, resume=resume)


def _setup_inputs(ctx: BenchContext, acts: str | Path | None, hook: str, needs: set[str], tmp: Path) -> None:
    """The activations file and the model loader (extracting activations when none are given)."""
    config = ctx.config
    acts_model = None
    if acts is not None:
        with ActivationsFile(acts) as f:
            acts_model = f.model
            if hook not in f.hooks:
                raise SaetoolError(f"the SAEs read {hook} but {acts} has activations for {', '.join(f.hooks)}", hint="extract that hook, or pass the matching SAEs")
        ctx.acts = Path(acts)
    ctx.model_name = config.model or acts_model or ctx.entries[0].sae.cfg.model
    if ctx.model_name is not None:
        name = ctx.model_name
        ctx.load = lambda: _checked_model(load_model(name, backend=config.backend, device=config.device, dtype=config.dtype), ctx.entries)
    if ctx.acts is None and "activations" in needs:
        if ctx.load is None:
            raise SaetoolError("nothing to evaluate on: no activations and no model", hint="pass --acts ACTS, or --model M --corpus C")
        log(f"extracting {config.num_tokens} tokens of {config.corpus} at {hook} with {ctx.model_name}")
        xc = ExtractConfig(model=ctx.model_name, backend=config.backend, corpus=config.corpus, hooks=[hook], num_tokens=config.num_tokens,
                           context_size=config.context_size, batch_size=config.batch_size, dtype=config.dtype, device=config.device)
        ctx.acts = extract_activations(xc, tmp / "acts.h5", progress=ctx.progress, model=ctx.model)


def _checked_model(model: Any, entries: list[SAEEntry]) -> Any:
    check_model(entries[0].sae, model)
    return model


def _run(ctx: BenchContext, evals: dict[str, BenchEval], out: Path, sae_paths: Sequence[str | Path], *, overwrite: bool, resume: bool) -> BenchResults:
    config, entries = ctx.config, ctx.entries
    settings = config.settings()
    results = BenchResults(saes=[e.describe() for e in entries], evals=list(evals), settings=settings,
                           cards={name: [c.to_dict() for c in ev.cards] for name, ev in evals.items()})
    if resume:
        _check_resume(partial_path(out), results)
    parents = [str(p) for p in sae_paths if Path(p).is_file()] + ([str(ctx.acts)] if ctx.acts is not None and Path(ctx.acts).is_file() else [])
    provenance = build_provenance(model=ctx.model_name, backend=config.backend, hooks=[entries[0].sae.cfg.hook], corpus=config.corpus, parents=parents, bench=settings)
    with ArtifactWriter(out, KIND, provenance, overwrite=overwrite, resume=resume, keep_partial_on_error=True) as writer:
        fh = writer.file
        assert fh is not None
        done = stored_results(fh, results.saes) if writer.resumed else {}
        if done:
            log(f"resuming {writer.partial}: {len(done)} of {len(evals) * len(entries)} results already there")
        write_header(fh, results)
        results.results.update(done)
        for name, ev in evals.items():
            todo = [(i, e) for i, e in enumerate(entries) if (e.name, name) not in done]
            ctx.todo = [e for _, e in todo]
            with token_progress(f"bench {name}", total=len(entries), completed=len(entries) - len(todo), enabled=ctx.progress, unit="SAE") as advance:
                for i, entry in todo:
                    start = time.perf_counter()
                    result = ev.run(entry, ctx)
                    result.seconds = round(time.perf_counter() - start, 3)
                    results.results[(entry.name, name)] = result
                    write_result(fh, i, name, result)
                    writer.flush()
                    advance(note=entry.name)
            for entry in entries:
                for note in results.results[(entry.name, name)].notes:
                    if not entry.is_random:
                        warn(f"{name} on {entry.name}: {note}")
    results.path = out
    return results


def _check_resume(partial: Path, results: BenchResults) -> None:
    """Refuse to resume a run made with other settings or other SAEs."""
    with h5py.File(partial, "r") as fh:
        before = json.loads(fh.attrs.get("settings", "{}"))
        saes = json.loads(fh.attrs.get("saes", "[]"))
    also = ["SAEs"] if [s.get("path") for s in saes] != [s.get("path") for s in results.saes] else []
    check_resumable(before, results.settings, str(partial), also_changed=also)
