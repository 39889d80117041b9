#!/usr/bin/env python
"""Benchmark ``saetool extract`` against a bare forward pass and sae-lens.

All methods see the SAME token windows: BBC News packed once, up front, with
saetool's own packer (``pack_windows``), cut to exactly the batches that
``saetool extract --num-tokens N`` runs its model on. Model loading is left out
of every row (each method gets an already loaded model). Rows:

1. ``saetool extract_activations``: the whole Python API call behind
   ``saetool extract`` with a loaded model: reading and tokenising the corpus,
   the truncated forward (saetool stops after the hooked layer), capture,
   special-token filtering, and writing + committing a real HDF5 artifact.
2. bare forward, truncated: the plain transformers model under
   ``torch.inference_mode``, stopped right after decoder layer L by a forward
   hook that raises (embedding + mask + rotary + layers 0..L: the least work
   that yields the same activations). The baseline for "capture + write".
3. bare forward, full model: all layers and the LM head (logits), for context.
4. sae-lens ``CacheActivationsRunner.run()``: sae-lens 6.x's way to cache
   activations to disk (a Hugging Face ``datasets`` Arrow folder), on a
   TransformerLens ``TransformerBridge`` built around a second copy of the same
   weights, fed the same windows as a pre-tokenised ``datasets.Dataset``.
5. sae-lens ``ActivationsStore.get_raw_llm_batch``: the activation fetching
   inside row 4 (bridge forward with ``stop_at_layer``), without the writing.

Each row runs ``--repeats`` times, interleaved (the order rotates every round);
the table shows medians and ratios to row 2. Afterwards ``saetool extract`` runs
as a subprocess at 1x, 4x and 16x ``--num-tokens`` to record peak RSS.

Run from the repository root:

    .venv/bin/python benchmarks/extract.py            # updates docs/benchmarks.md
    .venv/bin/python benchmarks/extract.py --output-md '' --json -   # print raw numbers only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Case,
    command_line,
    human_bytes,
    log,
    machine_info,
    machine_line,
    markdown_table,
    run_in_temp_dir,
    run_interleaved,
    run_peak_rss,
    set_offline_env,
    time_once,
    update_section,
)

SECTION = "## extract"
GOAL = 0.05  # capture + write overhead of saetool over the bare truncated forward


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="saetool model name (default: %(default)s)")
    p.add_argument("--corpus", default="bbc-news", help="saetool corpus spec (default: %(default)s)")
    p.add_argument("--num-tokens", type=int, default=4096, help="activation rows saetool stores per run (default: %(default)s)")
    p.add_argument("--context-size", type=int, default=128, help="tokens per window, BOS included (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default: %(default)s)")
    p.add_argument("--layer", type=int, default=15, help="hook blocks.LAYER.hook_resid_post (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every row (default: %(default)s)")
    p.add_argument("--max-interference", type=float, default=0.15,
                   help="repeat a measurement when other processes used more than this share of the CPUs during it (default: %(default)s)")
    p.add_argument("--retries", type=int, default=1, help="at most this many repeats of a disturbed measurement; 0 to keep all (default: %(default)s)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose '## extract' section is rewritten; '' to skip (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the raw numbers as JSON to PATH ('-' for stdout)")
    p.add_argument("--tmp-dir", default=None, help="where the benchmark writes its HDF5/Arrow outputs (default: the system temp folder)")
    p.add_argument("--skip-sae-lens", action="store_true", help="leave out the sae-lens rows")
    p.add_argument("--skip-rss", action="store_true", help="leave out the peak-RSS subprocess runs")
    p.add_argument("--rss-multiples", default="1,4,16", help="--num-tokens multiples for the peak-RSS runs (default: %(default)s)")
    return p.parse_args(argv)


# -- the windows every method sees ------------------------------------------------------


def plan_batches(windows, special_ids, num_tokens: int, batch_size: int):
    """The batches ``extract_activations`` runs its model on, and what it stores.

    Mirrors ``saetool.extract.core.write_batches``: windows are taken ``batch_size`` at a
    time; a batch is run whenever tokens are still missing; special tokens (BOS,
    the EOS between documents) are not stored; the last batch is run whole even
    if only some of its windows are needed. Checked against the written file.
    """
    import itertools

    import numpy as np

    from saetool.corpus.packing import stored_positions

    it = iter(windows)
    batches, stored, n_seq = [], 0, 0
    while stored < num_tokens:
        chunk = list(itertools.islice(it, batch_size))
        if not chunk:
            break
        batch = np.stack(chunk)
        keep = stored_positions(batch, special_ids, num_tokens - stored)
        if keep.size == 0:
            continue
        batches.append(batch)
        stored += int(keep.size)
        n_seq += int(keep[-1] // batch.shape[1]) + 1
    return batches, stored, n_seq


# -- the rows -----------------------------------------------------------------------


class _Stop(Exception):
    pass


def layer_output(base, layer_module, ids):
    """The output of ``layer_module`` for ``ids``, running nothing after it."""
    import torch

    captured = {}

    def grab(module, inputs, output):
        captured["x"] = output[0] if isinstance(output, tuple) else output
        raise _Stop

    handle = layer_module.register_forward_hook(grab)
    try:
        with torch.inference_mode():
            try:
                base(input_ids=ids, use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
    return captured["x"].clone()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-extract-", args.tmp_dir, lambda folder: run(args, argv, folder))


def run(args: argparse.Namespace, argv: list[str], tmp_root: Path) -> int:
    set_offline_env()
    os.environ.setdefault("TQDM_DISABLE", "1")  # sae-lens's and datasets' progress bars (saetool's is off too)
    wall_start = time.perf_counter()

    import numpy as np
    import torch

    from saetool.corpus.packing import pack_windows
    from saetool.corpus.resolve import iter_documents
    from saetool.extract.api import ExtractConfig, extract_activations
    from saetool.models.registry import load_model, resolve_model

    hook = f"blocks.{args.layer}.hook_resid_post"
    info = machine_info(packages=("torch", "transformers", "transformer-lens", "sae-lens", "datasets", "h5py", "numpy"))
    log(f"machine: {machine_line(info)}")

    # -- load once; loading is not part of any row
    seconds, model = time_once(lambda: load_model(args.model))
    log(f"loaded {model!r} in {seconds:.1f} s")
    if not 0 <= args.layer < model.n_layers:
        raise SystemExit(f"--layer must be in 0..{model.n_layers - 1}")
    hf = model.model
    tok = model.tokenizer
    source = resolve_model(args.model)

    # -- the windows, packed once with saetool's packer
    def pack():
        docs = iter_documents(args.corpus)
        windows = pack_windows(docs, tok, args.context_size, prepend_bos=True, corpus_name=args.corpus)
        return plan_batches(windows, tok.all_special_ids, args.num_tokens, args.batch_size)

    pack_s, (batches_np, n_stored, n_seq) = time_once(pack)
    batches = [torch.from_numpy(b.astype(np.int64)) for b in batches_np]
    n_windows = sum(b.shape[0] for b in batches_np)
    n_fwd = n_windows * args.context_size
    all_windows = np.concatenate(batches_np)
    log(
        f"{len(batches)} batches, {n_windows} windows x {args.context_size} = {n_fwd} tokens forwarded; "
        f"saetool stores {n_stored} tokens from the first {n_seq} windows (packing took {pack_s:.2f} s)"
    )
    if n_stored < args.num_tokens:
        log(f"warning: the corpus ran out after {n_stored} tokens")

    layer_module = model.layers[args.layer]  # the decoder layer whose output is hook_resid_post
    base = hf.base_model  # the decoder stack, without the LM head

    # -- warm up (first-call costs: oneDNN kernels, imports of h5py/rich/datasets)
    with torch.inference_mode():
        hf(input_ids=batches[0], use_cache=False)
    warm = tmp_root / "warmup.h5"
    extract_activations(
        ExtractConfig(model=args.model, corpus=args.corpus, hooks=[hook], num_tokens=args.context_size, context_size=args.context_size, batch_size=args.batch_size),
        warm, overwrite=True, progress=False, model=model,
    )
    warm.unlink()

    facts: dict[str, Any] = {}
    cases: list[Case] = []
    reference = layer_output(base, layer_module, batches[0])  # [batch, pos, d_model] of the first batch

    # 1. saetool
    counter = {"n": 0}

    def saetool_setup():
        counter["n"] += 1
        return tmp_root / f"saetool-{counter['n']}.h5"

    real_run_with_cache = model.run_with_cache

    def saetool_run(out: Path):
        config = ExtractConfig(
            model=args.model, corpus=args.corpus, hooks=[hook], num_tokens=args.num_tokens,
            context_size=args.context_size, batch_size=args.batch_size,
        )
        spent = [0.0]

        def timed_run_with_cache(*a, **k):  # two perf_counter calls per batch: negligible
            start = time.perf_counter()
            try:
                return real_run_with_cache(*a, **k)
            finally:
                spent[0] += time.perf_counter() - start

        model.run_with_cache = timed_run_with_cache
        try:
            return extract_activations(config, out, overwrite=True, progress=False, model=model), spent[0]
        finally:
            del model.run_with_cache  # back to the class's method

    def saetool_teardown(out: Path, result):
        path, seconds_in_forward = result
        if "saetool_file_bytes" not in facts:
            facts["saetool_file_bytes"] = path.stat().st_size
            facts.update(check_saetool_file(path, hook, all_windows, n_stored, n_seq, reference))
        path.unlink()
        return seconds_in_forward

    cases.append(Case("saetool extract_activations (HDF5 write)", saetool_run, saetool_setup, saetool_teardown))

    # 2. bare forward, truncated after layer L
    def bare_truncated(_state):
        captured = [None]

        def stop(module, inputs, output):
            captured[0] = output[0] if isinstance(output, tuple) else output  # keep a reference, copy nothing
            raise _Stop

        handle = layer_module.register_forward_hook(stop)
        try:
            with torch.inference_mode():
                for ids in batches:
                    try:
                        base(input_ids=ids, use_cache=False)
                    except _Stop:
                        pass
        finally:
            handle.remove()
        return captured[0]

    cases.append(Case(f"bare forward, layers 0..{args.layer} (truncated)", bare_truncated))

    # 3. bare forward, full model with logits
    def bare_full(_state):
        with torch.inference_mode():
            for ids in batches:
                hf(input_ids=ids, use_cache=False)

    cases.append(Case(f"bare forward, all {model.n_layers} layers + logits", bare_full))

    # 4./5. sae-lens
    sae_notes: list[str] = []
    if not args.skip_sae_lens:
        sae_cases, sae_notes = make_sae_lens_cases(args, source, hook, model, batches_np, n_fwd, tmp_root, facts, reference, warmup_batch=batches[0])
        cases.extend(sae_cases)

    log(f"timing {len(cases)} rows x {args.repeats} repeats, interleaved")
    timings = run_interleaved(cases, args.repeats, max_interference=args.max_interference if args.retries else None, retries=args.retries)

    info["load_average_after_timing"] = os.getloadavg()
    rss = [] if args.skip_rss else measure_rss(args, hook, tmp_root)

    facts["saetool_in_forward_s"] = timings[cases[0].name].extras
    result = summarise(args, argv, info, timings, cases, n_fwd, n_stored, n_seq, n_windows, len(batches), pack_s, facts, rss, sae_notes)
    result["benchmark_wall_s"] = time.perf_counter() - wall_start
    print(result["text_table"])
    if args.output_md:
        update_section(args.output_md, SECTION, result["markdown"])
        log(f"updated the '{SECTION}' section of {args.output_md}")
    if args.json:
        payload = json.dumps({k: v for k, v in result.items() if k not in ("markdown", "text_table")}, indent=2, default=str)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    log(f"benchmark took {result['benchmark_wall_s']:.0f} s")
    return 0


def check_saetool_file(path, hook, all_windows, n_stored, n_seq, reference) -> dict[str, Any]:
    """Same windows, same token count, same activations as the bare truncated forward."""
    import numpy as np
    import torch

    from saetool.artifacts.store import open_artifact

    with open_artifact(path, "activations") as art:
        seqs = art["sequences/token_ids"][...]
        n_tokens = int(art.attrs["n_tokens"])
        acts = art[f"activations/{hook}"]
        seq_index = art["tokens/seq_index"][...]
        position = art["tokens/position"][...]
        rows_first = np.flatnonzero(seq_index < reference.shape[0])
        stored_first = torch.from_numpy(acts[rows_first[0]: rows_first[-1] + 1])
        pos_first = (seq_index[rows_first], position[rows_first])
    if n_tokens != n_stored or seqs.shape[0] != n_seq or not np.array_equal(seqs, all_windows[:n_seq]):
        raise SystemExit(
            f"saetool's file does not match the planned windows (stored {n_tokens} vs {n_stored} tokens, "
            f"{seqs.shape[0]} vs {n_seq} windows): the benchmark's plan_batches no longer mirrors extract"
        )
    bare = reference[torch.from_numpy(pos_first[0]), torch.from_numpy(pos_first[1])]
    return {
        "saetool_vs_bare_max_abs_diff": float((bare - stored_first).abs().max()),
        "saetool_windows_checked": True,
    }


def make_sae_lens_cases(args, source, hook, model, batches_np, n_fwd, tmp_root, facts, reference, warmup_batch):
    """sae-lens 6.x CacheActivationsRunner (+ its ActivationsStore alone) on the same windows."""
    from unittest import mock

    import datasets
    import numpy as np
    import sae_lens.cache_activations_runner as car
    import torch
    from datasets import Dataset, load_from_disk
    from sae_lens import CacheActivationsRunner, CacheActivationsRunnerConfig
    from transformer_lens.model_bridge import TransformerBridge

    datasets.disable_progress_bars()
    notes: list[str] = []
    ctx = args.context_size
    if any(b.shape[0] != args.batch_size for b in batches_np):
        notes.append("the last batch is short (the corpus ran out); sae-lens runs only whole batches, so its rows leave it out")
        batches_np = [b for b in batches_np if b.shape[0] == args.batch_size]
        n_fwd = sum(b.shape[0] for b in batches_np) * ctx
    windows = np.concatenate(batches_np)
    n_batches = len(batches_np)

    seconds, (hf2, tok2) = time_once(lambda: source.load_hf())
    seconds2, bridge = time_once(lambda: TransformerBridge.boot_transformers(source.hf_id, hf_model=hf2, tokenizer=tok2, device="cpu"))
    log(f"sae-lens: loaded a second copy of the weights ({seconds:.1f} s) and booted a TransformerBridge ({seconds2:.1f} s)")
    with torch.inference_mode():
        bridge.run_with_cache(warmup_batch, names_filter=[hook], stop_at_layer=args.layer + 1, prepend_bos=False)

    bytes_per_token = model.d_model * 4
    cfg_kwargs = dict(
        dataset_path="saetool-bench-windows",  # a label only: the data comes from override_dataset
        model_name=source.hf_id,
        model_batch_size=args.batch_size,
        hook_name=hook,
        d_in=model.d_model,
        training_tokens=n_fwd,
        context_size=ctx,
        model_class_name="HookedTransformer",  # never loaded: load_model is patched to return the bridge
        shuffle=False,
        dtype="float32",
        device="cpu",
        # one shard holding exactly n_fwd tokens, i.e. n_batches forward batches
        buffer_size_gb=(n_fwd * bytes_per_token + bytes_per_token // 2) / 1e9,
        prepend_bos=True,  # the windows already start with BOS; the store passes prepend_bos=False to the model
        streaming=False,
    )

    def make_runner(out_dir: Path | None):
        cfg = CacheActivationsRunnerConfig(new_cached_activations_path=str(out_dir) if out_dir else str(tmp_root / "unused"), **cfg_kwargs)
        if cfg.n_buffers != 1 or cfg.n_batches_in_buffer != n_batches:
            raise SystemExit(f"sae-lens config plans {cfg.n_buffers} buffers of {cfg.n_batches_in_buffer} batches, expected 1 of {n_batches}")
        dataset = Dataset.from_dict({"input_ids": windows.tolist()})
        with mock.patch.object(car, "load_model", lambda **kw: bridge):
            return CacheActivationsRunner(cfg, override_dataset=dataset)

    counter = {"n": 0}

    def runner_setup():
        counter["n"] += 1
        out = tmp_root / f"saelens-{counter['n']}"
        return out

    def runner_run(out: Path):
        # constructing the runner (activations store over the dataset) is part of sae-lens's
        # caching; loading the model is not (patched to hand over the booted bridge)
        return make_runner(out).run()

    def runner_teardown(out: Path, dataset):
        if "sae_lens_dir_bytes" not in facts:
            facts["sae_lens_dir_bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            ds = load_from_disk(str(out))
            facts["sae_lens_rows"] = len(ds)
            tokens = np.asarray(ds["token_ids"])
            facts["sae_lens_same_windows"] = bool(np.array_equal(tokens, windows))
            first = torch.tensor(np.asarray(ds.select(range(reference.shape[0]))[hook]), dtype=torch.float32)
            diff = float((first - reference).abs().max())
            facts["sae_lens_vs_bare_max_abs_diff"] = diff
            facts["sae_lens_vs_bare_max_rel_diff"] = diff / float(reference.abs().max())
            del ds
        shutil.rmtree(out, ignore_errors=True)

    # warm up the runner path once (imports, datasets' first Arrow write)
    warm_dir = tmp_root / "saelens-warmup"
    runner_run(warm_dir)
    shutil.rmtree(warm_dir, ignore_errors=True)

    def store_setup():
        return make_runner(None).activations_store

    def store_run(store):
        n = 0
        for _ in range(n_batches):
            acts, _tokens = store.get_raw_llm_batch()
            n += acts.shape[0]
        return n

    cases = [
        Case("sae-lens CacheActivationsRunner.run (Arrow write)", runner_run, runner_setup, runner_teardown),
        Case("sae-lens ActivationsStore.get_raw_llm_batch (no write)", store_run, store_setup),
    ]
    facts["sae_lens_model"] = f"TransformerBridge.boot_transformers({source.hf_id!r}, hf_model=<plain HF model>, device='cpu')"
    facts["sae_lens_bridge_attn"] = getattr(getattr(hf2, "config", None), "_attn_implementation", None)
    return cases, notes


def measure_rss(args, hook, tmp_root) -> list[dict[str, Any]]:
    """``saetool extract`` as a subprocess at several --num-tokens; peak RSS of each."""
    saetool = Path(sys.executable).with_name("saetool")
    exe = [str(saetool)] if saetool.exists() else [sys.executable, "-m", "saetool.cli.main"]
    out: list[dict[str, Any]] = []
    for mult in [int(m) for m in args.rss_multiples.split(",") if m.strip()]:
        n = args.num_tokens * mult
        target = tmp_root / f"rss-{mult}.h5"
        cmd = exe + [
            "--quiet", "extract", "--model", args.model, "--corpus", args.corpus, "--hooks", hook,
            "--num-tokens", str(n), "--context-size", str(args.context_size), "--batch-size", str(args.batch_size),
            "-o", str(target), "--overwrite",
        ]
        log(f"peak RSS: saetool extract --num-tokens {n} ...")
        res = run_peak_rss(cmd, env=os.environ.copy(), timeout_s=540)
        if res.returncode != 0:
            raise SystemExit(f"saetool extract failed ({res.returncode}):\n{res.output_tail}")
        size = target.stat().st_size
        target.unlink()
        log(f"  peak RSS {human_bytes(res.peak_rss_bytes)}, {res.wall_s:.1f} s, file {human_bytes(size)}")
        out.append({"multiple": mult, "num_tokens": n, "peak_rss_bytes": res.peak_rss_bytes, "wall_s": res.wall_s, "file_bytes": size})
    return out


# -- report -------------------------------------------------------------------------


def _without_output_options(argv: list[str]) -> list[str]:
    """argv minus ``--json PATH`` (where the raw numbers went does not change them)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--json":
            skip = True
            continue
        if arg.startswith("--json="):
            continue
        out.append(arg)
    return out


def summarise(args, argv, info, timings, cases, n_fwd, n_stored, n_seq, n_windows, n_batches, pack_s, facts, rss, sae_notes):
    import torch

    names = [c.name for c in cases]
    saetool_name, trunc_name, full_name = names[0], names[1], names[2]
    base_med = timings[trunc_name].median
    rows_json = []
    table_rows = []
    for name in names:
        t = timings[name]
        fwd_rate = n_fwd / t.median
        stored_rate = n_stored / t.median if name == saetool_name else None
        rows_json.append({"method": name, "seconds": t.seconds, "median_s": t.median, "cpu_seconds": t.cpu_seconds,
                          "cpu_median_s": t.cpu_median, "forwarded_tokens_per_s": fwd_rate,
                          "stored_tokens_per_s": stored_rate, "ratio_to_bare_truncated": base_med / t.median, "spread": t.spread,
                          "interference": t.interference, "discarded_disturbed": t.discarded})
        table_rows.append([
            name,
            f"{t.median:.2f}",
            f"{t.cpu_median:.2f}",
            f"{fwd_rate:,.0f}",
            f"{stored_rate:,.0f}" if stored_rate else "",
            f"{base_med / t.median:.3f}",
            ", ".join(f"{s:.2f}" + ("*" if i > args.max_interference else "") for s, i in zip(t.seconds, t.interference)),
            f"{max(t.interference):.0%}" if t.interference else "",
        ])
    overhead = timings[saetool_name].median / base_med - 1
    # the same, round by round (paired), to show how much the noise moves it
    paired = [s / b - 1 for s, b in zip(timings[saetool_name].seconds, timings[trunc_name].seconds)]
    # rounds in which neither run was disturbed by other processes (chosen by interference, not by outcome)
    clean = [
        s / b - 1
        for s, b, i_s, i_b in zip(timings[saetool_name].seconds, timings[trunc_name].seconds,
                                  timings[saetool_name].interference, timings[trunc_name].interference)
        if not (i_s > args.max_interference) and not (i_b > args.max_interference)
    ]
    clean_overhead = statistics.median(clean) if clean else float("nan")
    end_to_end = (n_stored / timings[saetool_name].median) / (n_fwd / base_med)
    met = overhead <= GOAL

    cpu_overhead = timings[saetool_name].cpu_median / timings[trunc_name].cpu_median - 1
    best_overhead = min(timings[saetool_name].seconds) / min(timings[trunc_name].seconds) - 1
    outside = [total - fwd for total, fwd in zip(timings[saetool_name].seconds, facts.get("saetool_in_forward_s", []))]
    outside_share = [o / fwd for o, fwd in zip(outside, facts.get("saetool_in_forward_s", [])) if fwd > 0]
    outside_med = statistics.median(outside) if outside else float("nan")
    outside_share_med = statistics.median(outside_share) if outside_share else float("nan")
    headers = ["method", "median s", "median CPU s", "tok/s (forwarded)", "tok/s (stored)", "÷ bare truncated", "runs (wall s)", "others' CPU, worst run"]
    table = markdown_table(headers, table_rows, "lrrrrrlr")
    n_discarded = sum(len(timings[n].discarded) for n in names)
    text_table = "\n".join([
        table,
        "",
        f"saetool vs bare truncated forward, same batches: {overhead:+.1%} time overhead "
        f"(per round: {', '.join(f'{p:+.1%}' for p in paired)}; median over the {len(clean)} undisturbed rounds {clean_overhead:+.1%}; best of each {best_overhead:+.1%}; in CPU time {cpu_overhead:+.1%}); goal <= {GOAL:.0%}: {'met' if met else 'NOT met'}",
        f"saetool's time outside the model's forward (corpus, packing, filtering, HDF5): median {outside_med:.3f} s = {outside_share_med:+.1%} of its time inside the forward",
        f"end to end, saetool stored tok/s / bare truncated forwarded tok/s: {end_to_end:.3f}",
    ])

    cmd = command_line(Path(__file__), _without_output_options(argv))
    sae_rows = [n for n in names if n.startswith("sae-lens")]
    lines: list[str] = []
    lines.append(f"_Written by `benchmarks/extract.py` on {info['date']}; rerun it to refresh this section._")
    lines.append("")
    lines.append("Reproduce (from the repository root; the script sets `HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1` itself):")
    lines.append("")
    lines.append("```bash")
    lines.append(cmd)
    lines.append("```")
    lines.append("")
    lines.append(f"Machine: {machine_line(info)}. Load average (1, 5, 15 min) before timing: "
                 f"{', '.join(f'{x:.2f}' for x in info.get('load_average', ()))}; after: "
                 f"{', '.join(f'{x:.2f}' for x in info.get('load_average_after_timing', ()))} (above 2 means other processes competed for the cores).")
    lines.append("")
    lines.append(
        f"Workload: `{args.model}`, hook `blocks.{args.layer}.hook_resid_post`, float32, corpus `{args.corpus}` packed once with "
        f"saetool's packer into windows of {args.context_size} tokens (BOS + {args.context_size - 1}). Every row runs the model on the same "
        f"{n_batches} batches x {args.batch_size} windows = **{n_fwd:,} tokens**: exactly the batches `saetool extract --num-tokens "
        f"{args.num_tokens}` runs. saetool stores {n_stored:,} of them (from the first {n_seq} windows; BOS and the EOS between "
        f"documents are not stored, and the last batch is run whole although only part of it is needed). Model loading is outside every "
        f"row. {args.repeats} interleaved rounds (the order rotates each round); medians of wall time. 'tok/s (forwarded)' = "
        f"{n_fwd:,} / median wall seconds for every row, so the rows compare equal work; 'tok/s (stored)' = activation rows written / "
        f"median wall seconds. 'median CPU s' is this process's CPU time (all threads), a second opinion when other processes "
        f"compete for the cores. 'others' CPU' is the share of the machine's CPU time that other processes used during a run "
        f"(from `/proc/stat`); a run above {args.max_interference:.0%} was repeated up to {args.retries} times and the least "
        f"disturbed attempt kept ({n_discarded} attempts were set aside this time; all are in `--json`); runs still above it are "
        f"marked `*`."
    )
    lines.append("")
    lines.append(table)
    lines.append("")
    disturbed = [n for n in names if timings[n].interference and statistics.median(timings[n].interference) > args.max_interference]
    if disturbed:
        lines.append(
            f"**Warning: other processes used more than {args.max_interference:.0%} of the CPUs during most runs of "
            f"{len(disturbed)} row(s); the numbers below are unreliable. Rerun on a quieter machine.**"
        )
        lines.append("")
    verdict = "met" if met else "**not met**"
    lines.append(
        f"**Capture + write overhead of saetool over the bare truncated forward: {overhead:+.1%}** (ratio of medians on identical "
        f"batches). Cross-checks: per round {', '.join(f'{p:+.1%}' for p in paired)}; median over the {len(clean)} rounds in which "
        f"neither run was disturbed {clean_overhead:+.1%}; fastest run vs fastest run {best_overhead:+.1%}; in process CPU time "
        f"{cpu_overhead:+.1%}. Goal ≤ {GOAL:.0%}: {verdict}. The differences between these estimates are the machine's noise: "
        f"saetool cannot be faster than the bare forward it contains."
    )
    lines.append("")
    lines.append(
        f"Measured inside the saetool row itself (a timer around each `model.run_with_cache` call, so not affected by noise between "
        f"rows): the time spent outside the model's forward (resolving and reading the corpus, tokenising and packing, special-token "
        f"filtering, the finiteness check, HDF5 writes, flushes and the commit) is a median {outside_med:.3f} s per run, "
        f"**{outside_share_med:+.1%}** on top of its forward time. The capture hooks themselves run inside the forward; their cost "
        f"is what the ratio of medians above adds beyond this."
    )
    lines.append("")
    lines.append(
        f"End to end, saetool's stored tokens/s is {end_to_end:.3f}x the bare truncated forward's tokens/s: besides the overhead above, "
        f"{n_fwd - n_stored:,} of the {n_fwd:,} forwarded tokens are not stored ({n_stored / n_fwd:.1%} kept): "
        f"{n_windows - n_seq} of {n_windows} windows in the last batch are computed and dropped, and each window's BOS plus "
        f"any EOS separators are excluded by design (`--exclude-special`). The first part shrinks as `--num-tokens` grows."
    )
    lines.append("")
    lines.append("What each row includes:")
    lines.append("")
    lines.append(
        f"- **{saetool_name}**: one `extract_activations(config, out, overwrite=True, progress=False, model=<loaded TransformersModel>)` "
        f"call: resolving and reading the corpus, tokenising and packing it (packing these windows alone took {pack_s:.2f} s), "
        f"the forward that stops after layer {args.layer}, capture, special-token filtering, finiteness check, and writing and "
        f"committing a real HDF5 artifact (activations, token ids, positions, windows, provenance; "
        f"{human_bytes(facts.get('saetool_file_bytes'))}) in a temporary folder on local disk. Its file holds exactly the planned "
        f"windows, and its activations equal the bare truncated forward's (max abs diff "
        f"{facts.get('saetool_vs_bare_max_abs_diff', float('nan')):.1e})."
    )
    lines.append(
        f"- **{trunc_name}**: the same `transformers` model object, its decoder stack (`model.base_model`) called on each batch "
        f"under `torch.inference_mode()` with a forward hook on layer {args.layer} that raises to stop: embedding, attention mask, "
        f"rotary embedding and layers 0..{args.layer}, nothing else. The output tensor is kept, not copied or written."
    )
    lines.append(f"- **{full_name}**: the whole causal LM on each batch (all layers, final norm, LM head logits), `use_cache=False`, for context.")
    if sae_rows:
        lines.append(
            f"- **{sae_rows[0]}**: sae-lens {info['packages'].get('sae-lens')}'s activation caching: constructing "
            f"`CacheActivationsRunner(cfg, override_dataset=<datasets.Dataset with one 'input_ids' row per window>)` and its `run()`, "
            f"which runs the model batch by batch through `ActivationsStore.get_raw_llm_batch` (TransformerLens `run_with_cache` with "
            f"`stop_at_layer={args.layer + 1}`), concatenates the buffer in memory, and saves it with `datasets` as an Arrow shard "
            f"(activations and token ids of all {n_fwd:,} tokens, BOS included; {human_bytes(facts.get('sae_lens_dir_bytes'))}), then "
            f"consolidates it and fingerprints the result. Config: `shuffle=False`, `dtype='float32'`, `buffer_size_gb` sized so that "
            f"one shard holds exactly these {n_batches} batches. The model is a TransformerLens `TransformerBridge` booted around a "
            f"second, plain copy of the same weights (`source.load_hf()`); `sae_lens.cache_activations_runner.load_model` is patched to "
            f"return it so that loading stays outside the row. The cached token ids equal saetool's windows: "
            f"{facts.get('sae_lens_same_windows')}; the cached activations of the first batch differ from the bare forward's by at most "
            f"{facts.get('sae_lens_vs_bare_max_abs_diff', float('nan')):.1e} "
            f"({facts.get('sae_lens_vs_bare_max_rel_diff', float('nan')):.1e} of the largest activation)."
        )
        lines.append(
            f"- **{sae_rows[1]}**: the same store's `get_raw_llm_batch()` called {n_batches} times (the fetching part of the row above, "
            f"activations kept in memory, nothing written)."
        )
        for note in sae_notes:
            lines.append(f"- Note: {note}.")
    if rss:
        lines.append("")
        lines.append("### extract: peak memory")
        lines.append("")
        lines.append(
            "`saetool extract` run as a subprocess (`saetool --quiet extract --model "
            f"{args.model} --hooks blocks.{args.layer}.hook_resid_post --num-tokens N --context-size {args.context_size} "
            f"--batch-size {args.batch_size} -o <tmp> --overwrite`); peak RSS is the kernel's `ru_maxrss` of that process. "
            "Wall time includes Python start-up and loading the model."
        )
        lines.append("")
        rss_rows = [[f"{r['num_tokens']:,} ({r['multiple']}x)", human_bytes(r["peak_rss_bytes"]), f"{r['wall_s']:.1f}", human_bytes(r["file_bytes"])] for r in rss]
        lines.append(markdown_table(["--num-tokens", "peak RSS", "wall s", "output file"], rss_rows, "rrrr"))
        if len(rss) >= 2:
            steps = []
            for a, b in zip(rss, rss[1:]):
                growth = b["peak_rss_bytes"] - a["peak_rss_bytes"]
                data_growth = b["file_bytes"] - a["file_bytes"]
                steps.append((a, b, growth, data_growth, growth / max(data_growth, 1)))
            last_ratio = steps[-1][4]
            lines.append("")
            lines.append(
                "From step to step, peak RSS grows by "
                + "; ".join(f"{human_bytes(g)} from {a['multiple']}x to {b['multiple']}x while the output grows by {human_bytes(d)} "
                            f"(ratio {r:.2f})" for a, b, g, d, r in steps)
                + ". A ratio of 1 or more would mean the activations are held in memory. "
                + (f"Over the last step it is {last_ratio:.2f}: memory does not grow with `--num-tokens` (what growth "
                   f"remains is well below the data written, i.e. not the activations)."
                   if last_ratio < 0.5 else
                   f"**Over the last step it is {last_ratio:.2f}: memory grows with `--num-tokens`; look for what is kept per batch.**")
            )
    markdown = "\n".join(lines)
    return {
        "config": vars(args),
        "command": cmd,
        "machine": info,
        "tokens_forwarded": n_fwd,
        "tokens_stored": n_stored,
        "windows_forwarded": n_windows,
        "windows_stored": n_seq,
        "batches": n_batches,
        "pack_s": pack_s,
        "rows": rows_json,
        "saetool_overhead_vs_bare_truncated": overhead,
        "saetool_overhead_per_round": paired,
        "saetool_cpu_overhead_vs_bare_truncated": cpu_overhead,
        "saetool_best_vs_best_overhead": best_overhead,
        "saetool_overhead_undisturbed_rounds": clean,
        "saetool_outside_forward_s": outside,
        "saetool_outside_forward_share": outside_share,
        "goal": GOAL,
        "goal_met": met,
        "end_to_end_stored_rate_ratio": end_to_end,
        "facts": facts,
        "peak_rss": rss,
        "torch_version": torch.__version__,
        "markdown": markdown,
        "text_table": text_table,
    }


if __name__ == "__main__":
    raise SystemExit(main())
