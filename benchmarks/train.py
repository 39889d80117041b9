#!/usr/bin/env python
"""Benchmark SAE training: saetool's TopK trainer vs sae-lens's, and the machine's matmul rate.

All trainers see the SAME activation batches (``--batch-size`` rows each, a fixed
list, cycled), the same SAE shape (TopK, ``--d-in`` from the data, ``--d-sae``,
``--k``), Adam at the same constant-ish learning rate, gradient clipping at 1.
Rows, timed ``--repeats`` times, interleaved (the order rotates every round):

1. ``saetool train_on_batches``: the real trainer (``saetool.train.train_on_batches``)
   for ``--steps`` steps with the TopK sparse path (encoder matmul dense, the rest on
   the k chosen entries). tokens/s counts steps 2..N (start-up and the first step,
   which allocates, are excluded: timestamps come from the ``on_step`` callback).
2. the same with ``options={"dense": True}``: saetool's dense reference TopK step.
3. sae-lens ``SAETrainer.step`` on a ``TopKTrainingSAE``, the step its own ``fit()``
   runs (plus ``n_training_steps += 1``), same batches, same count of steps.
4. one float32 ``[B x d_in] @ [d_in x d_sae]`` matmul, repeated: the machine's
   measured matmul throughput.
5. saetool rows at 2x and 4x ``--d-sae`` (cost vs d_sae).

Afterwards ``saetool train`` runs as a subprocess on activation files of 1x and 4x
``--rss-tokens`` rows to record peak RSS.

Run from the repository root:

    .venv/bin/python benchmarks/train.py                       # synthetic activations
    .venv/bin/python benchmarks/train.py --activations acts.h5  # e.g. from saetool extract -n 8192
"""

from __future__ import annotations

import argparse
import json
import os
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
    update_section,
)

SECTION = "## train"
GOAL = 3.0  # saetool tokens/s over sae-lens tokens/s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", default=None, help="activations artifact to train on (first hook); default: synthetic data from saetool.train.synthetic")
    p.add_argument("--tokens", type=int, default=16384, help="rows of synthetic activations, or at most this many rows of --activations (default: %(default)s)")
    p.add_argument("--d-in", type=int, default=576, help="width of the synthetic activations (default: %(default)s)")
    p.add_argument("--d-sae", type=int, default=4608, help="(default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4096, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate for both trainers (default: %(default)s)")
    p.add_argument("--steps", type=int, default=6, help="training steps per measurement; the first is excluded from tokens/s (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every row (default: %(default)s)")
    p.add_argument("--matmuls", type=int, default=5, help="matmuls per throughput measurement (default: %(default)s)")
    p.add_argument("--d-sae-multiples", default="2,4", help="extra saetool rows at these multiples of --d-sae; '' for none (default: %(default)s)")
    p.add_argument("--max-interference", type=float, default=0.15, help="repeat a measurement when other processes used more than this share of the CPUs (default: %(default)s)")
    p.add_argument("--retries", type=int, default=0, help="at most this many repeats of a disturbed measurement (default: %(default)s)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose '## train' section is rewritten; '' to skip (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the raw numbers as JSON to PATH ('-' for stdout)")
    p.add_argument("--tmp-dir", default=None, help="where the activation files for the peak-RSS runs go (default: the system temp folder)")
    p.add_argument("--skip-sae-lens", action="store_true", help="leave out the sae-lens row")
    p.add_argument("--skip-dense", action="store_true", help="leave out saetool's dense reference row")
    p.add_argument("--skip-rss", action="store_true", help="leave out the peak-RSS subprocess runs")
    p.add_argument("--rss-tokens", type=int, default=32768, help="rows of the 1x activation file for the peak-RSS runs (default: %(default)s)")
    p.add_argument("--rss-multiples", default="1,4", help="multiples of --rss-tokens for the peak-RSS runs (default: %(default)s)")
    p.add_argument("--rss-shuffle-buffer", type=int, default=8192, help="--shuffle-buffer of the peak-RSS runs (default: %(default)s)")
    return p.parse_args(argv)


# -- data -----------------------------------------------------------------------------


def load_data(args) -> tuple[Any, dict[str, Any]]:
    """``[n, d_in]`` float32 activations and a description of where they came from."""
    import torch

    if args.activations:
        import h5py

        with h5py.File(args.activations, "r") as fh:
            hooks = json.loads(fh.attrs["hooks"]) if "hooks" in fh.attrs else list(fh["activations"])
            ds = fh[f"activations/{hooks[0]}"]
            n = min(int(ds.shape[0]), args.tokens)
            x = torch.from_numpy(ds[:n].astype("float32"))
            model = str(fh.attrs.get("model", "?"))
        return x, {"kind": "real", "path": str(args.activations), "model": model, "hook": hooks[0], "rows": n}
    from saetool.train.synthetic import sparse_dictionary_data

    x, _ = sparse_dictionary_data(args.tokens, args.d_in, args.d_sae, active=args.k, seed=0)
    return x.float().contiguous(), {"kind": "synthetic", "rows": args.tokens, "n_features": args.d_sae, "active": args.k}


# -- the rows -------------------------------------------------------------------------


def stamp() -> tuple[float, float]:
    """(wall clock, this process's CPU time), taken at the end of a step."""
    return time.perf_counter(), time.process_time()


def loop_seconds(stamps: list[tuple[float, float]]) -> dict[str, float]:
    """Wall and CPU seconds of steps 2..N from the end-of-step stamps [s_1, ..., s_N]."""
    return {"loop_s": stamps[-1][0] - stamps[0][0], "loop_cpu_s": stamps[-1][1] - stamps[0][1]}


#: sae-lens's default ``dead_feature_window`` (steps); saetool's ``dead_tokens`` is set to the same.
SAE_LENS_DEAD_WINDOW = 1000


def saetool_case(name: str, batches, args, d_sae: int, dense: bool) -> Case:
    from saetool.train import TrainConfig, train_on_batches

    def run(_state):
        stamps: list[float] = []
        # a feature counts as dead (and AuxK trains it) after sae-lens's default window (1000 steps) in both
        # trainers, so neither computes the AuxK loss in a short run (saetool's defaults, a quarter and a
        # sixteenth of the run, would); one learning rate for encoder and decoder, as sae-lens has
        window = SAE_LENS_DEAD_WINDOW * args.batch_size
        config = TrainConfig(arch="topk", d_sae=d_sae, k=args.k, batch_size=args.batch_size, lr=args.lr, encoder_lr_ratio=1.0, seed=0,
                             dead_tokens=window, aux_dead_tokens=window, options={"dense": True} if dense else {})
        result = train_on_batches(batches[: args.steps], config, steps=args.steps, on_step=lambda info: stamps.append(stamp()))
        return stamps, result.training

    def teardown(_state, out):
        stamps, training = out
        if len(stamps) != args.steps:
            raise SystemExit(f"{name}: ran {len(stamps)} of {args.steps} steps")
        return {**loop_seconds(stamps), "final_mse": training["final"]["scaled_mse"], "final_l0": training["final"]["l0"]}

    return Case(name, run, teardown=teardown, info={"d_sae": d_sae, "dense": dense, "impl": "saetool"})


def sae_lens_case(name: str, batches, args, d_in: int) -> Case:
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    def setup():
        torch.manual_seed(0)
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=args.d_sae, k=args.k, normalize_activations="none", dtype="float32", device="cpu"))
        cfg = SAETrainerConfig(
            total_training_samples=args.batch_size * args.steps, train_batch_size_samples=args.batch_size,
            lr=args.lr, lr_end=args.lr, lr_scheduler_name="constant", device="cpu", autocast=False,
        )
        return SAETrainer(cfg, sae, data_provider=iter(()))

    def run(trainer):
        stamps: list[float] = []
        loss = None
        for i in range(args.steps):
            out = trainer.step(batches[i])
            trainer.n_training_steps += 1
            stamps.append(stamp())
            loss = out.loss.detach()
        return stamps, float(loss)

    def teardown(trainer, out):
        stamps, loss = out
        return {**loop_seconds(stamps), "final_loss": loss}

    return Case(name, run, setup, teardown, info={"d_sae": args.d_sae, "impl": "sae-lens"})


def matmul_case(name: str, args, d_in: int) -> Case:
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(args.batch_size, d_in, generator=g)
    b = torch.randn(d_in, args.d_sae, generator=g)
    c = torch.empty(args.batch_size, args.d_sae)
    torch.mm(a, b, out=c)  # warm-up

    def run(_state):
        first = stamp()
        for _ in range(args.matmuls):
            torch.mm(a, b, out=c)
        return [first, stamp()]

    def teardown(_state, stamps):
        return loop_seconds(stamps)

    return Case(name, run, teardown=teardown, info={"impl": "matmul"})


# -- peak memory ----------------------------------------------------------------------


def measure_rss(args, x, tmp_root: Path) -> list[dict[str, Any]]:
    """``saetool train`` as a subprocess on 1x and 4x --rss-tokens rows; peak RSS of each."""
    import torch

    from saetool.train.synthetic import write_activations

    saetool = Path(sys.executable).with_name("saetool")
    exe = [str(saetool)] if saetool.exists() else [sys.executable, "-m", "saetool.cli.main"]
    hook = "blocks.15.hook_resid_post"
    out: list[dict[str, Any]] = []
    files = []
    for mult in [int(m) for m in args.rss_multiples.split(",") if m.strip()]:
        n = args.rss_tokens * mult
        reps = -(-n // x.shape[0])
        data = x.repeat(reps, 1)[:n].contiguous()  # the benchmark's activations, tiled
        path = write_activations(tmp_root / f"acts-{mult}x.h5", {hook: data}, context_size=128, overwrite=True)
        files.append((mult, n, path))
        del data
    for mult, n, path in files:
        target = tmp_root / f"sae-{mult}x.h5"
        cmd = exe + [
            "--quiet", "train", str(path), "--arch", "topk", "--d-sae", str(args.d_sae), "--k", str(args.k),
            "--batch-size", str(args.batch_size), "--shuffle-buffer", str(args.rss_shuffle_buffer), "-o", str(target), "--overwrite",
        ]
        log(f"peak RSS: saetool train on {n:,} rows ...")
        res = run_peak_rss(cmd, env=os.environ.copy(), timeout_s=300)
        if res.returncode != 0:
            raise SystemExit(f"saetool train failed ({res.returncode}):\n{res.output_tail}")
        log(f"  peak RSS {human_bytes(res.peak_rss_bytes)}, {res.wall_s:.1f} s")
        out.append({"multiple": mult, "num_tokens": n, "peak_rss_bytes": res.peak_rss_bytes, "wall_s": res.wall_s,
                    "input_bytes": path.stat().st_size, "activation_bytes": n * x.shape[1] * 4, "command": cmd})
        target.unlink(missing_ok=True)
    del torch
    return out


# -- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-train-", args.tmp_dir, lambda folder: run(args, argv, folder))


def run(args: argparse.Namespace, argv: list[str], tmp_root: Path) -> int:
    set_offline_env()
    os.environ.setdefault("TQDM_DISABLE", "1")
    wall_start = time.perf_counter()

    info = machine_info(packages=("torch", "sae-lens", "numpy", "h5py"))
    log(f"machine: {machine_line(info)}")
    x, data_info = load_data(args)
    d_in = int(x.shape[1])
    n_batches = x.shape[0] // args.batch_size
    if n_batches < 1:
        raise SystemExit(f"need at least --batch-size={args.batch_size} rows, have {x.shape[0]}")
    distinct = [x[i * args.batch_size:(i + 1) * args.batch_size].contiguous() for i in range(n_batches)]
    batches = [distinct[i % n_batches] for i in range(args.steps)]
    log(f"data: {data_info['kind']}, {x.shape[0]} x {d_in}; {n_batches} distinct batches of {args.batch_size}, cycled over {args.steps} steps")

    base = "saetool train_on_batches, TopK sparse path"
    cases = [saetool_case(f"{base} (d_sae {args.d_sae})", batches, args, args.d_sae, dense=False)]
    if not args.skip_dense:
        cases.append(saetool_case(f"saetool train_on_batches, dense reference (d_sae {args.d_sae})", batches, args, args.d_sae, dense=True))
    if not args.skip_sae_lens:
        cases.append(sae_lens_case(f"sae-lens SAETrainer.step, TopKTrainingSAE (d_sae {args.d_sae})", batches, args, d_in))
    cases.append(matmul_case(f"matmul [{args.batch_size}x{d_in}]@[{d_in}x{args.d_sae}] float32", args, d_in))
    for m in [int(v) for v in args.d_sae_multiples.split(",") if v.strip()]:
        cases.append(saetool_case(f"{base} (d_sae {args.d_sae * m}, {m}x)", batches, args, args.d_sae * m, dense=False))

    # warm-up (imports, first-call allocations): one short run of every trainer row
    warm = argparse.Namespace(**{**vars(args), "steps": 2})
    for case in cases:
        if case.info.get("impl") == "saetool":
            saetool_case("warm", batches, warm, case.info["d_sae"], case.info["dense"]).run(None)
        elif case.info.get("impl") == "sae-lens":
            c = sae_lens_case("warm", batches, warm, d_in)
            c.run(c.setup())

    log(f"timing {len(cases)} rows x {args.repeats} repeats, interleaved")
    timings = run_interleaved(cases, args.repeats, max_interference=args.max_interference if args.retries else None, retries=args.retries)
    info["load_average_after_timing"] = os.getloadavg()
    rss = [] if args.skip_rss else measure_rss(args, x, tmp_root)
    info["load_average_after_rss"] = os.getloadavg()

    result = summarise(args, argv, info, data_info, d_in, cases, timings, rss)
    result["benchmark_wall_s"] = time.perf_counter() - wall_start
    print(result["text"])
    if args.output_md:
        update_section(args.output_md, SECTION, result["markdown"])
        log(f"updated the '{SECTION}' section of {args.output_md}")
    if args.json:
        payload = json.dumps({k: v for k, v in result.items() if k not in ("markdown", "text")}, indent=2, default=str)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    log(f"benchmark took {result['benchmark_wall_s']:.0f} s")
    return 0


# -- report ---------------------------------------------------------------------------


def summarise(args, argv, info, data_info, d_in, cases, timings, rss) -> dict[str, Any]:
    B, S = args.batch_size, args.d_sae
    timed_steps = args.steps - 1
    rows: dict[str, dict[str, Any]] = {}
    for case in cases:
        t = timings[case.name]
        loops = [e["loop_s"] for e in t.extras]
        med = statistics.median(loops)
        cpu_med = statistics.median(e["loop_cpu_s"] for e in t.extras)
        row = {"name": case.name, **case.info, "loop_s": loops, "median_loop_s": med, "loop_cpu_s": [e["loop_cpu_s"] for e in t.extras], "median_loop_cpu_s": cpu_med, "call_wall_s": t.seconds,
               "call_cpu_s": t.cpu_seconds, "interference": t.interference, "extras": t.extras}
        if case.info["impl"] == "matmul":
            row["gflops"] = 2 * B * d_in * S * args.matmuls / med / 1e9
        else:
            row["step_s"] = med / timed_steps
            row["step_cpu_s"] = cpu_med / timed_steps
            row["tokens_per_s"] = B * timed_steps / med
        rows[case.name] = row
    names = [c.name for c in cases]
    ours = rows[names[0]]
    sae_lens = next((r for r in rows.values() if r["impl"] == "sae-lens"), None)
    dense = next((r for r in rows.values() if r.get("dense")), None)
    mm = next(r for r in rows.values() if r["impl"] == "matmul")
    ratio = ours["tokens_per_s"] / sae_lens["tokens_per_s"] if sae_lens else None
    per_round = None
    if sae_lens:
        per_round = [(sl / o) for o, sl in zip(ours["loop_s"], sae_lens["loop_s"])]
    cpu_ratio = sae_lens["step_cpu_s"] / ours["step_cpu_s"] if sae_lens else None
    useful = 4 * B * d_in * S  # encoder forward + encoder weight gradient, both as dense matmuls
    fwd_only = 2 * B * d_in * S
    achieved = useful / ours["step_s"] / 1e9
    frac = achieved / mm["gflops"]
    frac_fwd = fwd_only / ours["step_s"] / 1e9 / mm["gflops"]
    matmul_step_s = fwd_only / (mm["gflops"] * 1e9)

    cmd = command_line(__file__, argv)
    load0 = info.get("load_average")
    load1 = info.get("load_average_after_timing")
    fmt_load = lambda la: ", ".join(f"{v:.2f}" for v in la) if la else "?"  # noqa: E731

    table = []
    for name in names:
        r = rows[name]
        runs = ", ".join(f"{v:.2f}" for v in r["loop_s"])
        others = statistics.median(r["interference"]) if r["interference"] else float("nan")
        if r["impl"] == "matmul":
            table.append([name, f"{r['median_loop_s'] / args.matmuls:.3f} per matmul", f"{r['median_loop_cpu_s'] / args.matmuls:.3f}", f"{r['gflops']:.1f} GFLOP/s", "", runs, f"{others:.0%}"])
        else:
            rel = f"{r['tokens_per_s'] / sae_lens['tokens_per_s']:.2f}" if sae_lens else ""
            table.append([name, f"{r['step_s']:.3f}", f"{r['step_cpu_s']:.3f}", f"{r['tokens_per_s']:,.0f}", rel, runs, f"{others:.0%}"])
    headers = ["row", "median s / step", "median CPU s / step", "tokens/s", "tokens/s ÷ sae-lens", f"runs ({timed_steps} steps, wall s)", "others' CPU"]
    md_table = markdown_table(headers, table, "lrrrrlr")

    scale_rows = []
    sc = [r for r in rows.values() if r["impl"] == "saetool" and not r.get("dense")]
    for r in sorted(sc, key=lambda r: r["d_sae"]):
        m = r["d_sae"] / S
        scale_rows.append([f"{r['d_sae']:,} ({m:g}x)", f"{r['step_s']:.3f}", f"{r['step_s'] / ours['step_s']:.2f}x", f"{r['tokens_per_s']:,.0f}",
                           f"{4 * B * d_in * r['d_sae'] / r['step_s'] / 1e9 / mm['gflops']:.2f}"])
    scale_table = markdown_table(["d_sae", "s / step", "÷ 1x step time", "tokens/s", "useful FLOP/s ÷ matmul"], scale_rows, "rrrrr")

    if data_info["kind"] == "real":
        data_line = (f"**real** activations: the first {data_info['rows']:,} rows of `{data_info['hook']}` of `{data_info['model']}` "
                     f"(the file passed as `--activations` was made with `saetool extract --model {data_info['model']} --hooks {data_info['hook']} -n {data_info['rows']} -o {data_info['path']}`; "
                     f"without `--activations` the script uses synthetic activations instead)")
    else:
        data_line = (f"**synthetic** activations ({data_info['rows']:,} x {d_in}, `saetool.train.synthetic.sparse_dictionary_data`: "
                     f"{data_info['n_features']} random unit directions, about {data_info['active']} active per token)")
    goal_met = ratio is not None and ratio >= GOAL

    lines = [
        f"_Written by `benchmarks/train.py` on {info['date']}; rerun it to refresh this section._",
        "",
        "Reproduce (from the repository root; the script sets `HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1` itself):",
        "",
        "```bash",
        cmd,
        "```",
        "",
        f"Machine: {machine_line(info)}. Load average (1, 5, 15 min) before timing: {fmt_load(load0)}; after timing: {fmt_load(load1)}; "
        f"after the peak-RSS runs: {fmt_load(info.get('load_average_after_rss'))} (above {info['cpus_usable']} means other processes competed for the cores).",
        "",
        f"Workload: TopK SAE, d_in {d_in}, d_sae {S:,}, k {args.k}, batch {B:,} tokens, float32, Adam (β 0.9, 0.999) at lr {args.lr:g}, "
        f"gradient-norm clipping at 1, on {data_line}. The {x_batches(data_info, B)} batches are cut once and every trainer row "
        f"gets the same list of {args.steps} batches (cycled). Each measurement trains a fresh SAE for {args.steps} steps; **tokens/s counts steps "
        f"2..{args.steps}** ({timed_steps} x {B:,} tokens, from the end-of-step timestamps), so start-up (input scale, b_dec initialisation, "
        f"allocating Adam state) and the first step are excluded from every row alike. {args.repeats} interleaved rounds (the order rotates "
        f"each round); medians. 'CPU s' is this process's CPU time over the same steps (all threads; a second opinion when other processes compete for the cores, though waiting threads can spin and add to it). 'others' CPU' is the median share of the machine's CPU time used by other processes during a measurement.",
        "",
        md_table,
        "",
    ]
    if sae_lens:
        lines.append(
            f"**saetool / sae-lens: {ratio:.2f}x** tokens/s (ratio of medians; per round "
            + ", ".join(f"{v:.2f}x" for v in per_round)
            + f"; in this process's CPU time per step {cpu_ratio:.2f}x). Goal ≥ {GOAL:g}x on CPU: **{'met' if goal_met else 'NOT met'}**."
        )
        lines.append("")
    if dense:
        lines.append(f"The sparse path is {dense['step_s'] / ours['step_s']:.2f}x faster per step than saetool's own dense reference TopK step (same numbers, dense decode and gradients).")
        lines.append("")
    lines.append(
        f"**Matmul throughput**: the machine does {mm['gflops']:.1f} GFLOP/s on the float32 [{B}x{d_in}]@[{d_in}x{S}] matmul "
        f"({matmul_step_s:.3f} s each), measured in the same run. saetool's useful work per step is counted as the encoder forward "
        f"matmul plus the encoder weight gradient, both as dense matmuls: **4 · B · d_in · d_sae = 4 · {B} · {d_in} · {S} = {useful / 1e9:.1f} GFLOP**; "
        f"at {ours['step_s']:.3f} s per step that is {achieved:.1f} GFLOP/s, **{frac:.0%} of the measured matmul rate**. "
        f"Note that the sparse path computes the encoder weight gradient from the k chosen entries only (2 · B · k · d_in FLOP), so the "
        f"only dense matmul it actually runs is the forward (2 · B · d_in · d_sae = {fwd_only / 1e9:.1f} GFLOP): counted that way the "
        f"step reaches {frac_fwd:.0%} of the matmul rate, i.e. one step costs {1 / frac_fwd:.2f} forward matmuls."
    )
    lines.append("")
    lines.append("What each row includes:")
    lines.append("")
    lines.append(
        f"- **saetool train_on_batches**: `saetool.train.train_on_batches(batches, TrainConfig(arch='topk', d_sae=..., k={args.k}, "
        f"batch_size={B}, lr={args.lr:g}, encoder_lr_ratio=1, dead_tokens=aux_dead_tokens={SAE_LENS_DEAD_WINDOW} · {B}), steps={args.steps}, on_step=...)`: the real training loop (objective with the TopK sparse "
        f"encode/decode and sparse backward, AuxK machinery, gradient clipping, Adam, decoder-norm constraint, dead-feature counters, "
        f"history). Input normalisation and b_dec geometric-median initialisation happen at start-up and are excluded. "
        f"The dense reference row sets `options={{'dense': True}}`."
    )
    if sae_lens:
        lines.append(
            f"- **sae-lens SAETrainer.step**: sae-lens {info['packages'].get('sae-lens')}: `SAETrainer(SAETrainerConfig(lr={args.lr:g}, "
            f"lr_scheduler_name='constant', ...), TopKTrainingSAE(TopKTrainingSAEConfig(d_in={d_in}, d_sae={S}, k={args.k}, "
            f"normalize_activations='none')), ...)` built outside the timing, then `trainer.step(batch)` and "
            f"`trainer.n_training_steps += 1` per batch: what its `fit()` runs per step without logging, checkpoints and the "
            f"progress bar (forward, AuxK loss, backward, `clip_grad_norm_(…, 1.0)`, Adam, LR and coefficient schedulers, "
            f"feature-firing statistics). Its other settings are sae-lens's defaults (e.g. `rescale_acts_by_decoder_norm=True`, "
            f"`use_sparse_activations=False`, `dead_feature_window=1000`). saetool's `dead_tokens` and `aux_dead_tokens` are set to the same window "
            f"(1000 steps x {B} tokens; its defaults would be a quarter and a sixteenth of the run), so no feature is dead within {args.steps} steps "
            f"in either trainer and neither computes the AuxK loss here."
        )
    lines.append(f"- **matmul**: `torch.mm(a, b, out=c)` with random float32 operands, {args.matmuls} times per measurement; GFLOP/s = 2 · B · d_in · d_sae · {args.matmuls} / seconds.")
    lines.append("")
    lines.append("### train: cost vs d_sae")
    lines.append("")
    lines.append("saetool's TopK sparse path at 1x, 2x and 4x d_sae (same batches, same k, in the interleaved rounds above); 'useful FLOP/s' as above (4 · B · d_in · d_sae per step).")
    lines.append("")
    lines.append(scale_table)
    if rss:
        lines.append("")
        lines.append("### train: peak memory")
        lines.append("")
        shown = " ".join(rss[0]["command"][1:]).replace(str(tmp_root_of(rss)), "<tmp>").replace(f"acts-{rss[0]['multiple']}x", "acts-Nx").replace(f"sae-{rss[0]['multiple']}x", "sae-Nx")
        lines.append(
            f"`saetool train` run as a subprocess (`saetool {shown}`, `N` = 1x/4x) on activation files of 1x and 4x {args.rss_tokens:,} "
            f"rows (the benchmark's activations, tiled, written with `saetool.train.synthetic.write_activations`); one pass over the "
            f"training rows (95% of the sequences; 5% are held out for validation, at most 16,384 tokens). Peak RSS is the kernel's "
            f"`ru_maxrss` of that process. Wall time includes Python start-up, imports and writing the SAE. `--shuffle-buffer "
            f"{args.rss_shuffle_buffer}` is set so the buffer (a fixed cap of rows x d_in x 4 bytes = "
            f"{human_bytes(args.rss_shuffle_buffer * d_in * 4)}; the default 65,536 rows would be {human_bytes(65536 * d_in * 4)}) is full at both sizes."
        )
        lines.append("")
        rss_rows = [[f"{r['num_tokens']:,} ({r['multiple']}x)", human_bytes(r["peak_rss_bytes"]), f"{r['wall_s']:.1f}", human_bytes(r["input_bytes"])] for r in rss]
        lines.append(markdown_table(["tokens in the file", "peak RSS", "wall s", "input file"], rss_rows, "rrrr"))
        if len(rss) >= 2:
            growth = rss[-1]["peak_rss_bytes"] - rss[0]["peak_rss_bytes"]
            data_growth = rss[-1]["activation_bytes"] - rss[0]["activation_bytes"]
            flat = growth < 0.1 * max(data_growth, 1) + 32 * 2**20
            from saetool.train.trainer import SCALE_ROWS
            lines.append("")
            lines.append(
                f"Peak RSS grows by {human_bytes(growth)} from {rss[0]['multiple']}x to {rss[-1]['multiple']}x tokens, while the "
                f"activations grow by {human_bytes(data_growth)}: memory is {'flat' if flat else 'NOT flat'} in the number of tokens. "
                f"(Start-up holds the first min({SCALE_ROWS:,}, steps x batch) rows to estimate the input scale and b_dec, so "
                f"runs shorter than {SCALE_ROWS // B} steps use less; the shuffle buffer and up to {16384:,} validation rows are the other "
                f"data-sized terms, both capped.)"
            )
    markdown = "\n".join(lines)
    text = md_table + "\n\n" + scale_table + ("\n\n" + "\n".join(f"RSS {r['multiple']}x: {human_bytes(r['peak_rss_bytes'])} ({r['wall_s']:.1f} s)" for r in rss) if rss else "")
    text += f"\nratio {ratio}, matmul {mm['gflops']:.1f} GFLOP/s, useful fraction {frac:.2f} (forward only {frac_fwd:.2f})"
    return {
        "config": vars(args), "command": cmd, "machine": info, "data": data_info, "d_in": d_in, "rows": rows,
        "saetool_over_sae_lens": ratio, "saetool_over_sae_lens_per_round": per_round, "saetool_over_sae_lens_cpu": cpu_ratio, "goal": GOAL, "goal_met": goal_met,
        "matmul_gflops": mm["gflops"], "useful_flop_per_step": useful, "achieved_gflops": achieved, "fraction_of_matmul": frac,
        "fraction_of_matmul_forward_only": frac_fwd, "peak_rss": rss, "markdown": markdown, "text": text,
    }


def x_batches(data_info, batch_size) -> str:
    n = data_info["rows"] // batch_size
    return f"{n} distinct"


def tmp_root_of(rss) -> str:
    return str(Path(rss[0]["command"][rss[0]["command"].index("-o") + 1]).parent)


if __name__ == "__main__":
    raise SystemExit(main())
