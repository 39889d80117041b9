#!/usr/bin/env python
"""Speed-up of ``torchrun --nproc-per-node N`` over one process, for extract and train.

Each row runs the real command as a subprocess, 1 process and N processes
alternately (the order rotates every round), and reports the median wall time
of the whole command (Python start-up and model loading included) and, for
training, the trainer's own tokens/s from the artifact's training record (its
loop only). The N-process runs use the same total work: the same ``--num-tokens``
for extract, and ``--batch-size`` divided by N per rank for train (the same
effective batch and the same number of steps).

One process uses all the machine's cores for its matmuls (torch's default);
torchrun gives each of N processes ``OMP_NUM_THREADS=1`` unless it is set, so on
a 2-core machine both sides use the same 2 cores.

    .venv/bin/python benchmarks/scaling.py                 # writes its block into docs/scaling.md
    .venv/bin/python benchmarks/scaling.py --nproc 2 --extract-tokens 1024 --train-steps 10 --output-md ''
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    OFFLINE_ENV,
    command_line,
    log,
    machine_info,
    machine_line,
    markdown_table,
    run_in_temp_dir,
)

BEGIN, END = "<!-- scaling-benchmark:begin -->", "<!-- scaling-benchmark:end -->"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2, help="processes of the torchrun rows (default: %(default)s)")
    p.add_argument("--model", default="smollm2-135m", help="model for the extract rows (default: %(default)s)")
    p.add_argument("--layer", type=int, default=15, help="extract blocks.LAYER.hook_resid_post (default: %(default)s)")
    p.add_argument("--extract-tokens", type=int, default=4096, help="--num-tokens of the extract rows (default: %(default)s)")
    p.add_argument("--train-tokens", type=int, default=65536, help="rows of the synthetic activation file for the train rows (default: %(default)s)")
    p.add_argument("--d-in", type=int, default=576, help="(default: %(default)s)")
    p.add_argument("--d-sae", type=int, default=4608, help="(default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4096, help="effective tokens per training step (default: %(default)s)")
    p.add_argument("--train-steps", type=int, default=20, help="(default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="rounds of 1-process/N-process runs (default: %(default)s)")
    p.add_argument("--skip-extract", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--output-md", default="docs/scaling.md", help="file whose generated block is rewritten; '' to skip (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the raw numbers as JSON to PATH ('-' for stdout)")
    p.add_argument("--tmp-dir", default=None)
    return p.parse_args(argv)


def saetool_cmd(nproc: int) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "saetool"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), "-m", "saetool"]


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the command and every process it started
    (``RUSAGE_CHILDREN``: torchrun waits for its workers, so they are counted)."""
    import resource

    env = {**os.environ, **OFFLINE_ENV}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-scaling-", args.tmp_dir, lambda folder: run(args, argv, folder))


def run(args: argparse.Namespace, argv: list[str], tmp: Path) -> int:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import torch  # noqa: F401  (machine_info reads its version and threads)

    info = machine_info(packages=("torch",))
    log(f"machine: {machine_line(info)}")
    rows: list[dict[str, Any]] = []
    if not args.skip_extract:
        ex = ["--quiet", "extract", "--model", args.model, "--hooks", f"blocks.{args.layer}.hook_resid_post",
              "--num-tokens", str(args.extract_tokens), "--context-size", "128", "--batch-size", "8", "--overwrite"]
        walls: dict[int, list[float]] = {1: [], args.nproc: []}
        cpus: dict[int, list[float]] = {1: [], args.nproc: []}
        for r in range(args.repeats):
            for n in ([1, args.nproc] if r % 2 == 0 else [args.nproc, 1]):
                wall, cpu = timed(saetool_cmd(n) + ex + ["-o", f"x{n}.h5"], tmp)
                walls[n].append(wall)
                cpus[n].append(cpu)
                log(f"  extract {n} process(es): {wall:.1f} s, {cpu:.1f} CPU s")
        rows.append({"stage": "extract", "what": f"{args.model}, {args.extract_tokens:,} tokens", "walls": walls, "cpu": cpus})
    if not args.skip_train:
        from saetool.train.synthetic import sparse_dictionary_data, write_activations

        x, _ = sparse_dictionary_data(args.train_tokens, args.d_in, args.d_sae, active=args.k, seed=123)
        write_activations(tmp / "acts.h5", {"h": x}, context_size=128)
        del x
        walls = {1: [], args.nproc: []}
        cpus = {1: [], args.nproc: []}
        tps: dict[int, list[float]] = {1: [], args.nproc: []}
        for r in range(args.repeats):
            for n in ([1, args.nproc] if r % 2 == 0 else [args.nproc, 1]):
                tr = ["--quiet", "train", "acts.h5", "--arch", "topk", "--d-sae", str(args.d_sae), "--k", str(args.k),
                      "--batch-size", str(args.batch_size // n), "--steps", str(args.train_steps), "--shuffle-buffer", "16384",
                      "--checkpoint-every", str(10 * args.train_steps), "-o", f"sae{n}.h5", "--overwrite"]
                wall, cpu = timed(saetool_cmd(n) + tr, tmp)
                cpus[n].append(cpu)
                import h5py

                with h5py.File(tmp / f"sae{n}.h5") as fh:
                    tps[n].append(float(json.loads(fh.attrs["training"])["tokens_per_second"]))
                walls[n].append(wall)
                log(f"  train {n} process(es): {wall:.1f} s, {cpu:.1f} CPU s, trainer {tps[n][-1]:,.0f} tokens/s")
        rows.append({"stage": "train", "what": f"TopK d_in {args.d_in}, d_sae {args.d_sae}, k {args.k}, {args.train_steps} steps x {args.batch_size} tokens", "walls": walls, "cpu": cpus, "tokens_per_second": tps})
    info["load_average_after"] = os.getloadavg()
    shown = [a for i, a in enumerate(argv) if a != "--json" and (i == 0 or argv[i - 1] != "--json") and not a.startswith("--json=")]
    result = {"machine": info, "nproc": args.nproc, "rows": rows, "command": command_line(__file__, shown)}
    md = render(result)
    print(md)
    if args.output_md:
        write_block(Path(args.output_md), md)
        log(f"updated the generated block of {args.output_md}")
    if args.json:
        payload = json.dumps(result, indent=2, default=str)
        print(payload) if args.json == "-" else Path(args.json).write_text(payload + "\n")
    return 0


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per stage: median wall 1 / N processes, speed-up, and the trainer's own speed-up."""
    n = result["nproc"]
    out = []
    for row in result["rows"]:
        w1, wn = statistics.median(row["walls"][1] if 1 in row["walls"] else row["walls"]["1"]), statistics.median(row["walls"][n] if n in row["walls"] else row["walls"][str(n)])
        entry = {"stage": row["stage"], "what": row["what"], "wall_1": w1, "wall_n": wn, "speedup": w1 / wn}
        if "cpu" in row:
            c = row["cpu"]
            c1, cn = statistics.median(c[1] if 1 in c else c["1"]), statistics.median(c[n] if n in c else c[str(n)])
            entry.update(cpu_1=c1, cpu_n=cn, cpu_ratio=cn / c1)
        if "tokens_per_second" in row:
            t = row["tokens_per_second"]
            t1, tn = statistics.median(t[1] if 1 in t else t["1"]), statistics.median(t[n] if n in t else t[str(n)])
            entry.update(tps_1=t1, tps_n=tn, loop_speedup=tn / t1)
        out.append(entry)
    return out


def render(result: dict[str, Any]) -> str:
    n = result["nproc"]
    info = result["machine"]
    rows = []
    for e in summary(result):
        loop = f"{e['tps_1']:,.0f} → {e['tps_n']:,.0f} tok/s ({e['loop_speedup']:.2f}x)" if "tps_1" in e else ""
        cpu = f"{e['cpu_1']:.1f} → {e['cpu_n']:.1f} ({e['cpu_ratio']:.2f}x)" if "cpu_1" in e else ""
        rows.append([e["stage"], e["what"], f"{e['wall_1']:.1f}", f"{e['wall_n']:.1f}", f"{e['speedup']:.2f}x", cpu, loop])
    load = info.get("load_average")
    busy = load is not None and load[0] > (info.get("cpus_usable") or 1)
    return "\n".join([
        f"_Written by `benchmarks/scaling.py` on {info['date']}._ Reproduce: `{result['command']}`",
        "",
        f"Machine: {machine_line(info)}. Load average before: {', '.join(f'{v:.2f}' for v in load or ())}; after: "
        f"{', '.join(f'{v:.2f}' for v in info.get('load_average_after') or ())}"
        + (" — **the machine was shared and busy**: other processes competed for the cores, so these figures are rough." if busy else "."),
        "",
        markdown_table(["stage", "workload", "1 process, median s", f"{n} processes, median s", "speed-up (wall)", "CPU s, all processes (1 → N)", "trainer loop (from the training record)"], rows, "llrrrll"),
        "",
        "On a machine shared with other work the wall-time speed-up also measures the scheduler: N processes "
        "claim a larger share of contended cores than one process with N threads (a speed-up above N on N "
        "cores means exactly that). The CPU seconds of all processes together are the fairer figure there: "
        "their ratio is the extra work the distributed path costs (start-up and model loading in every "
        "process, the collectives).",
    ])


def write_block(path: Path, body: str) -> None:
    """Replace the text between the markers (added at the end when missing)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
