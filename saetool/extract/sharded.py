"""``saetool extract`` under ``torchrun``: one shard per rank, one file presenting them all.

Rank 0 tokenises the corpus once to *plan* the run: the batches of windows a
single process would run, and how many windows and tokens of each it would
store (special tokens left out, the last batch cut at ``--num-tokens``). The
plan is cut into ``WORLD_SIZE`` contiguous runs of whole batches, so every rank
runs exactly the batches a single process would, and writes them to its shard::

    OUT.h5.shards/rank00000-of-00004.h5   rank 0's windows and rows (an activations file)
    OUT.h5.shards/rank00001-of-00004.h5   ...
    OUT.h5                                 written by rank 0 when every shard is done

``OUT.h5`` holds no activations itself: its datasets are HDF5 *virtual
datasets* mapping the shards' rows, in rank order, through paths relative to
``OUT.h5``'s folder (keep ``OUT.h5`` and ``OUT.h5.shards/`` together; the pair
can move). Row and sequence numbers are global, so it reads exactly like a
single-process extract of the same tokens. Rows of a missing shard read as NaN
(token ids and indices as -1), which training refuses.

``--resume`` continues each rank's own shard (a finished shard is kept; the
same number of processes is required).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from saetool.artifacts.files import refuse_link
from saetool.artifacts.provenance import build_provenance, file_sha256
from saetool.artifacts.resume import changed_settings
from saetool.artifacts.store import ArtifactWriter, check_output_path, partial_path
from saetool.console import log
from saetool.corpus.packing import batched
from saetool.corpus.resolve import describe_corpus, iter_documents, resolve_corpus
from saetool.distributed import local_device, rank_info, session
from saetool.errors import SaetoolError
from saetool.extract.config import KIND, RESUME_KEYS, ExtractConfig, default_output, extract_settings
from saetool.extract.core import batch_positions, check_context_size, create_layout, make_windows, reopen, resolve_hooks, warn_short, write_batches
from saetool.models import registry  # the module, so tests can stub registry.load_model

if TYPE_CHECKING:
    from saetool.distributed import Group
    from saetool.models.base import HookedModel

_SHARD = re.compile(r"^rank(\d{5})-of-(\d{5})\.h5(\.partial|\.lock)?$")


def shard_dir_for(output: str | Path) -> Path:
    p = Path(output)
    return p.with_name(p.name + ".shards")


def shard_name(rank: int, world_size: int) -> str:
    return f"rank{rank:05d}-of-{world_size:05d}.h5"


@dataclass(frozen=True)
class BatchPlan:
    """One batch of windows as a single process would run it."""

    windows: int  # windows in the batch (batch_size, fewer at the corpus's end)
    sequences: int  # windows stored (up to the last one with a stored token)
    tokens: int  # activation rows stored


@dataclass(frozen=True)
class Share:
    """One rank's contiguous run of batches."""

    first_batch: int
    stop_batch: int
    first_window: int
    stop_window: int
    seq_offset: int  # global index of its first stored sequence
    row_offset: int  # global index of its first stored row
    tokens: int
    cumulative: tuple[int, ...]  # rows stored after each of its batches (0 first)


def plan_batches(config: "ExtractConfig", model: "HookedModel") -> tuple[list[BatchPlan], bool]:
    """What a single-process extract would run and store, batch by batch (tokenises, runs no
    model), and whether ``--per-line`` leaves lines out (see :func:`batch_positions`)."""
    tok = model.tokenizer
    special = tok.all_special_ids if config.exclude_special else None
    windows = make_windows(config, tok)
    plan: list[BatchPlan] = []
    remaining = config.num_tokens
    lines_left = False
    for batch in batched(windows, config.batch_size):
        flat, lines_left = batch_positions(batch, special, remaining, config.per_line)
        if remaining <= 0 or (lines_left and flat.size == 0):
            break
        if flat.size == 0:
            plan.append(BatchPlan(len(batch), 0, 0))
            continue
        plan.append(BatchPlan(len(batch), int(flat[-1] // config.context_size) + 1, int(flat.size)))
        remaining -= int(flat.size)
        if lines_left:
            break
    return plan, lines_left


def split_plan(plan: list[BatchPlan], world_size: int) -> list[Share]:
    """Contiguous runs of whole batches, as even as the batch count allows."""
    shares = []
    n = len(plan)
    for r in range(world_size):
        a, b = r * n // world_size, (r + 1) * n // world_size
        before, mine = plan[:a], plan[a:b]
        cumulative = tuple(itertools.accumulate((p.tokens for p in mine), initial=0))
        shares.append(Share(
            first_batch=a, stop_batch=b,
            first_window=sum(p.windows for p in before), stop_window=sum(p.windows for p in plan[:b]),
            seq_offset=sum(p.sequences for p in before), row_offset=sum(p.tokens for p in before),
            tokens=cumulative[-1], cumulative=cumulative,
        ))
    return shares


def extract_distributed(
    config: "ExtractConfig",
    output: str | Path | None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    model: "HookedModel | None" = None,
) -> Path:
    """The torchrun path of :func:`saetool.extract.api.extract_activations` (every rank calls it)."""
    config.validate()
    info = rank_info()
    if config.device_map and config.device_map != "cpu":
        raise SaetoolError("--device-map cannot be combined with torchrun yet (each rank would claim every GPU)", hint="use --device cuda under torchrun, or one process with --device-map auto")
    out = check_output_path(output or default_output(config), overwrite=overwrite)
    shards = refuse_link(shard_dir_for(out), what="shard folder")  # its files are cleared and written
    _check_shard_folder(shards, info.world_size, resume)
    resolve_corpus(config.corpus)
    if next(iter(iter_documents(config.corpus, text_column=config.text_column, encoding=config.encoding)), None) is None:
        raise SaetoolError(f"corpus {config.corpus!r} has no documents", hint="check the path or corpus name")
    config = replace(config, device=local_device(config.device, info))

    with session(config.device) as group:
        assert group is not None
        if model is None:
            model = registry.load_model(config.model, backend=config.backend, device=config.device, dtype=config.dtype)
        plan, lines_left = group.broadcast_object(plan_batches(config, model) if group.is_main else None)
        if not plan or sum(p.tokens for p in plan) == 0:
            raise SaetoolError(f"corpus {config.corpus!r} produced no tokens to store", hint="use a larger corpus or --include-special")
        stored = sum(p.tokens for p in plan)
        if group.is_main:
            warn_short(config, stored, sum(p.sequences for p in plan), lines_left)
            if not resume:
                _clear_shards(shards)
            shards.mkdir(parents=True, exist_ok=True)
            log(f"extracting {stored} tokens in {len(plan)} batches on {group.world_size} processes ({group.backend}) into {shards}/")
        group.barrier()
        share = split_plan(plan, group.world_size)[group.rank]
        record = _write_shard(config, model, shards / shard_name(group.rank, group.world_size), share, group, resume=resume, progress=progress)
        records = group.all_gather_object(record)
        if group.is_main:
            if resume:
                log("resumed: " + "; ".join(
                    f"rank {r['rank']} " + ("kept its finished shard" if r["kept"] else f"continued after {r['resumed_after']} of {r['batches']} batches" if r["resumed_after"] is not None else "started afresh")
                    for r in records))
            _write_merged(out, records, group, overwrite=overwrite)
        group.barrier()  # the others wait until OUTPUT exists
    return out


def _check_shard_folder(shards: Path, world_size: int, resume: bool) -> None:
    """``--resume`` needs the shard folder of a run with the same number of processes."""
    if not resume:
        return
    if not shards.is_dir():
        raise SaetoolError(f"nothing to resume: no shard folder {shards}", hint="run without --resume to start afresh")
    worlds = {int(m.group(2)) for p in shards.iterdir() if (m := _SHARD.match(p.name))}
    other = sorted(worlds - {world_size})
    if other:
        raise SaetoolError(
            f"cannot resume {shards}: it was made by {other[0]} processes, this run has {world_size}",
            hint=f"resume with --nproc-per-node/--nnodes giving {other[0]} processes, or run without --resume",
        )


def _clear_shards(shards: Path) -> None:
    """Remove the shards an earlier (unfinished or finished) run left (only saetool's names)."""
    if not shards.is_dir():
        return
    old = [p for p in shards.iterdir() if _SHARD.match(p.name)]
    if old:
        log(f"[dim]discarding {len(old)} shard file(s) of an earlier run in {shards} (use --resume to continue one)[/dim]")
    for p in old:
        p.unlink(missing_ok=True)


def _write_shard(config: "ExtractConfig", model: "HookedModel", path: Path, share: Share, group: "Group", *, resume: bool, progress: bool) -> dict[str, Any]:
    """Run this rank's batches into its shard file; return what the merged file records about it."""
    hooks = resolve_hooks(config, model)
    check_context_size(config, model)
    settings = extract_settings(config, hooks)
    shard_info = {"rank": group.rank, "world_size": group.world_size, "host": socket.gethostname(),
                  "first_window": share.first_window, "stop_window": share.stop_window,
                  "seq_offset": share.seq_offset, "row_offset": share.row_offset, "tokens": share.tokens}
    done_file = resume and path.exists() and _finished_shard_matches(path, settings, share)
    resumed: int | None = None
    if not done_file:
        provenance = build_provenance(model=model.model_id, backend=model.backend_name, hooks=hooks, corpus=describe_corpus(config.corpus), extract=settings, shard=shard_info)
        with ArtifactWriter(path, KIND, provenance, overwrite=True, resume=resume and partial_path(path).exists(), keep_partial_on_error=True) as writer:
            fh = writer.file
            assert fh is not None
            if writer.resumed:
                done_seq, done_tok = reopen(writer, settings)
                resumed = share.cumulative.index(done_tok) if done_tok in share.cumulative else None
                if done_tok not in share.cumulative:
                    raise SaetoolError(f"cannot resume {writer.partial}: it holds {done_tok} rows, not a whole number of this rank's batches", hint="run without --resume to start afresh")
                done_batches = share.cumulative.index(done_tok)
            else:
                create_layout(writer, settings, hooks, model)
                done_seq = done_tok = done_batches = 0
            fh.attrs["shard"] = json.dumps(shard_info, sort_keys=True)
            if share.tokens > done_tok:
                windows = make_windows(config, model.tokenizer)
                start = share.first_window + done_batches * config.batch_size
                mine = itertools.islice(windows, start, share.stop_window)
                write_batches(writer, model, hooks, mine, replace(config, num_tokens=share.tokens), done_seq, done_tok, progress, seq_offset=share.seq_offset,
                              warn_end=False)
    with h5py.File(path, "r") as fh:
        dims = {hook: int(fh[f"activations/{hook}"].shape[1]) for hook in hooks}
        n_tokens, n_seq = int(fh.attrs["n_tokens"]), int(fh.attrs["n_sequences"])
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items() if k not in ("provenance", "complete", "shard")}
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
        storage = {hook: str(fh[f"activations/{hook}"].dtype) for hook in hooks}
        saetool_dtype = {hook: str(fh[f"activations/{hook}"].attrs.get("saetool_dtype", "float32")) for hook in hooks}
    if n_tokens != share.tokens:
        raise SaetoolError(f"rank {group.rank} stored {n_tokens} rows, {share.tokens} were planned (did the corpus change?)", hint="run without --resume to start afresh")
    return {
        **shard_info, "path": path.name, "sha256": file_sha256(path), "kept": bool(done_file), "resumed_after": resumed, "batches": share.stop_batch - share.first_batch, "n_tokens": n_tokens, "n_sequences": n_seq,
        "settings": settings, "hooks": hooks, "dims": dims, "storage": storage, "saetool_dtype": saetool_dtype,
        "attrs": attrs, "model": model.model_id, "backend": model.backend_name,
    }


def _finished_shard_matches(path: Path, settings: dict[str, Any], share: Share) -> bool:
    """A shard a resumed run can keep: complete, same settings, the rows this rank is to store."""
    try:
        with h5py.File(path, "r") as fh:
            before = json.loads(fh.attrs.get("config", "{}"))
            ok = bool(fh.attrs.get("complete")) and int(fh.attrs.get("n_tokens", -1)) == share.tokens
            shard = json.loads(fh.attrs.get("shard", "{}"))
    except (OSError, ValueError):
        return False
    same = not changed_settings(before, settings, RESUME_KEYS)
    return ok and same and shard.get("row_offset") == share.row_offset


def _write_merged(out: Path, records: list[dict[str, Any]], group: "Group", *, overwrite: bool) -> None:
    """``OUT``: the shards' datasets as virtual datasets, one provenance for the run."""
    first = records[0]
    settings, hooks = first["settings"], first["hooks"]
    folder = shard_dir_for(out).name
    total_tok = sum(r["n_tokens"] for r in records)
    total_seq = sum(r["n_sequences"] for r in records)
    ctx = int(settings["context_size"])
    provenance = build_provenance(
        model=first["model"], backend=first["backend"], hooks=hooks, corpus=describe_corpus(settings["corpus"]), extract=settings,
        distributed={
            **group.describe(),
            "shard_folder": folder,
            "shards": [{k: r[k] for k in ("rank", "host", "path", "sha256", "n_tokens", "n_sequences", "row_offset", "seq_offset", "first_window", "stop_window", "settings")} for r in records],
        },
    )

    def virtual(group_h5: "h5py.Group", name: str, source: str, shape_tail: tuple[int, ...], dtype: Any, rows_of: str, fill: Any) -> "h5py.Dataset":
        total = total_tok if rows_of == "n_tokens" else total_seq
        layout = h5py.VirtualLayout(shape=(total, *shape_tail), dtype=dtype)
        at = 0
        for r in records:
            n = r[rows_of]
            if n:
                layout[at : at + n] = h5py.VirtualSource(f"{folder}/{r['path']}", source, shape=(n, *shape_tail), dtype=dtype)
            at += n
        return group_h5.create_virtual_dataset(name, layout, fillvalue=fill)

    with ArtifactWriter(out, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        for key, value in first["attrs"].items():
            if key not in ("saetool_kind", "schema_version"):
                fh.attrs[key] = value
        fh.attrs["config"] = json.dumps(settings, sort_keys=True)
        fh.attrs["n_tokens"] = total_tok
        fh.attrs["n_sequences"] = total_seq
        acts = fh.create_group("activations")
        for hook in hooks:
            dt = np.dtype(first["storage"][hook])
            fill = np.array(np.nan, dtype=dt) if dt.kind == "f" else np.array(0x7FC0, dtype=dt)  # NaN (bfloat16 bits when stored as uint16)
            ds = virtual(acts, hook, f"activations/{hook}", (first["dims"][hook],), dt, "n_tokens", fill)
            ds.attrs["saetool_dtype"] = first["saetool_dtype"][hook]
        norms = fh.create_group("norms")
        for hook in hooks:
            virtual(norms, hook, f"norms/{hook}", (), np.dtype("float32"), "n_tokens", np.array(np.nan, dtype="float32")).attrs["saetool_dtype"] = "float32"
        tokens = fh.create_group("tokens")
        for name, dt in (("token_ids", "int32"), ("seq_index", "int64"), ("position", "int32")):
            virtual(tokens, name, f"tokens/{name}", (), np.dtype(dt), "n_tokens", -1).attrs["saetool_dtype"] = dt
        seqs = fh.create_group("sequences")
        virtual(seqs, "token_ids", "sequences/token_ids", (ctx,), np.dtype("int32"), "n_sequences", -1).attrs["saetool_dtype"] = "int32"
    log(f"wrote {out}: {total_tok} tokens from {len(records)} shards in {shard_dir_for(out)}/")
