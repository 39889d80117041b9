#!/usr/bin/env python
"""Benchmark ``saetool train --hooks``: N SAEs in one pass vs one ``train --hook`` at a time.

Both modes train the same N TopK SAEs (one per hook of ``--activations``, same
settings, same per-hook seeds, so the same weights bit for bit) from the same
file; each runs in its own subprocess so its peak RSS and bytes read are its own:

1. **one pass**: ``saetool.train.multi.train_saes(config, [acts], hooks, DIR)``.
2. **one at a time**: ``saetool.train.train_sae(config with hook=h, [acts], OUT)`` for each hook in turn, in one
   process (imports once), each hashing the input for its provenance as a separate command does.

Reported per mode: wall seconds of the training calls (imports excluded), SAE
tokens per second (each SAE's training tokens x N / wall seconds: the rate
at which the run as a whole trains SAEs), bytes read per SAE (the process's
``rchar`` from ``/proc/self/io`` over the training calls, / N: every byte
read through ``read``/``pread``, page-cache hits included), the kernel's peak
RSS of the process, and the per-SAE peak that ``train --hooks`` estimates
(:func:`saetool.train.multi.estimate_peak_bytes`) for comparison. Rounds
alternate the order of the two modes.

Run from the repository root (activations of every SmolLM2 layer first):

    .venv/bin/saetool extract --layers all -n 8192 -o /tmp/acts30.h5
    nice -n 10 .venv/bin/python benchmarks/train_multi.py --activations /tmp/acts30.h5 --output-md docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OFFLINE_ENV, command_line, human_bytes, log, machine_info, machine_line, markdown_table, median, run_peak_rss, set_offline_env, update_section  # noqa: E402

HEADING = "## train: several hooks in one pass"


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def _config(args: argparse.Namespace) -> Any:
    from saetool.train import TrainConfig

    return TrainConfig(arch="topk", d_sae=args.d_sae, k=args.k, batch_size=args.batch_size, steps=args.steps, shuffle_buffer=args.shuffle_buffer, checkpoint_every=10**9, seed=0)


def child(args: argparse.Namespace) -> int:
    """One mode in this process; prints one JSON line."""
    from dataclasses import replace

    from saetool.artifacts.activations import ActivationsFile
    from saetool.train import train_sae
    from saetool.train.api import resolve_hooks
    from saetool.train.multi import train_saes

    config = _config(args)
    with ActivationsFile(args.activations) as f:
        hooks = resolve_hooks(args.hooks, f.hooks)
    out = Path(args.out)
    before, start = _rchar(), time.perf_counter()
    if args.child == "multi":
        train_saes(config, [args.activations], hooks, out / "set", progress=False, overwrite=True)
    else:
        from saetool.artifacts import provenance

        for h in hooks:
            provenance._PARENT_SHA256.clear()  # as separate commands would: each hashes the input for its provenance
            train_sae(replace(config, hook=h), [args.activations], out / f"{h}.h5", progress=False, overwrite=True)
    wall = time.perf_counter() - start
    print(json.dumps({"mode": args.child, "n": len(hooks), "wall_s": wall, "rchar": _rchar() - before}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activations", required=True, help="activations artifact with the hooks (e.g. saetool extract --layers all)")
    parser.add_argument("--hooks", default="all", help="all, or a comma-separated list")
    parser.add_argument("--d-sae", type=int, default=1152)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--shuffle-buffer", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output-md", help="update this markdown file's section")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--from-json", help="only render the markdown of an earlier run's --json")
    parser.add_argument("--child", choices=("multi", "single"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_offline_env()
    if args.child:
        return child(args)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        body = _markdown(args, result, result.get("file_dtype"), result.get("argv") or [])
        print(body)
        if args.output_md:
            update_section(args.output_md, HEADING, body)
        return 0

    from saetool.artifacts.activations import ActivationsFile
    from saetool.train.api import resolve_hooks
    from saetool.train.multi import estimate_peak_bytes

    with ActivationsFile(args.activations) as f:
        hooks = resolve_hooks(args.hooks, f.hooks)
        widths = [f.d(h) for h in hooks]
        n_tokens, file_dtype = f.n_tokens, f.artifact.file.attrs.get("dtype")
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    runs: dict[str, list[dict[str, Any]]] = {"multi": [], "single": []}
    load_before = os.getloadavg()
    forwarded = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("activations", "hooks", "d_sae", "k", "batch_size", "steps", "shuffle_buffer")]
    for r in range(args.repeats):
        for mode in (("single", "multi") if r % 2 == 0 else ("multi", "single")):
            with tempfile.TemporaryDirectory(prefix="train_multi-") as tmp:
                log(f"round {r + 1}: {mode}")
                proc = run_peak_rss([sys.executable, __file__, *forwarded, f"--child={mode}", f"--out={tmp}"], env=env)
                if proc.returncode != 0:
                    log(proc.output_tail)
                    return 1
                record = json.loads(proc.output_tail.strip().splitlines()[-1])
                record.update(peak_rss=proc.peak_rss_bytes, process_wall_s=proc.wall_s)
                runs[mode].append(record)
                log(json.dumps(record))
    tokens = args.steps * args.batch_size
    est = estimate_peak_bytes(_config(args), widths[0], args.d_sae)
    result = {"runs": runs, "hooks": hooks, "n_tokens": n_tokens, "tokens_per_sae": tokens, "estimate_per_sae": est, "machine": machine_info(),
              "load": [load_before, os.getloadavg()], "file_bytes": Path(args.activations).stat().st_size, "file_dtype": file_dtype, "argv": argv if argv is not None else sys.argv[1:]}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    body = _markdown(args, result, file_dtype, argv if argv is not None else sys.argv[1:])
    print(body)
    if args.output_md:
        update_section(args.output_md, HEADING, body)
    return 0


def _markdown(args: argparse.Namespace, result: dict[str, Any], file_dtype: Any, argv: list[str]) -> str:
    n, tokens = len(result["hooks"]), result["tokens_per_sae"]
    rows, summary = [], {}
    for mode, label in (("multi", f"one pass (`train --hooks`, {n} SAEs)"), ("single", f"one at a time ({n} x `train --hook`)")):
        runs = result["runs"][mode]
        wall = median(r["wall_s"] for r in runs)
        read = median(r["rchar"] for r in runs) / n
        rss = max(r["peak_rss"] for r in runs)
        summary[mode] = (wall, read)
        rows.append([label, ", ".join(f"{r['wall_s']:.1f}" for r in runs), f"{wall / n:.2f}", f"{n * tokens / wall:,.0f}", human_bytes(read), human_bytes(rss)])
    est = result["estimate_per_sae"]
    speed = summary["single"][0] / summary["multi"][0]
    reads = summary["single"][1] / summary["multi"][1]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return "\n".join([
        f"_Written by `benchmarks/train_multi.py` on {stamp}; rerun it to refresh this section._",
        "",
        "Reproduce (from the repository root):",
        "",
        "```bash",
        ".venv/bin/saetool extract --layers all -n 8192 -o /tmp/acts30.h5",
        "nice -n 10 " + command_line(Path("benchmarks/train_multi.py"), argv),
        "```",
        "",
        machine_line(result["machine"])
        + (f". Load average (1, 5, 15 min) at the start: {', '.join(f'{v:.2f}' for v in result['load'][0])}; at the end: {', '.join(f'{v:.2f}' for v in result['load'][1])} (above 2 means other processes competed for the cores)." if result.get("load") else ""),
        "",
        f"Workload: {n} TopK SAEs, one per hook of SmolLM2-135M's residual stream (`saetool extract --layers all`, {result['n_tokens']:,} tokens, {file_dtype} in the file), "
        f"d_sae {args.d_sae}, k {args.k}, batch {args.batch_size}, {args.steps} steps ({tokens:,} tokens per SAE), shuffle buffer {args.shuffle_buffer} rows, float32, CPU. "
        "Both modes make the same SAEs (bit for bit: tests/test_train_multi.py). Each mode runs in its own subprocess; rounds alternate the order. "
        "'wall s' covers the training calls (imports excluded): start-up (counting training rows, the held-out rows, scale and b_dec), the steps, the final metrics and writing the artifacts. "
        "'SAE tokens/s' = N x tokens per SAE / wall s. 'read per SAE' is the process's `rchar` (every byte read through read/pread, page-cache hits included) over the training calls, / N.",
        "",
        markdown_table(["mode", "wall s per round", "s per SAE (median)", "SAE tokens/s", "read per SAE", "peak RSS"], rows, "lrrrrr"),
        "",
        f"**One pass / one at a time: {speed:.2f}x** the SAE tokens per second, and {reads:.2f}x fewer bytes read per SAE.",
        *([
            "",
            f"Where the bytes go: each run hashes its input once for the provenance (sha256 of the whole {human_bytes(result['file_bytes'])} file), "
            f"so one at a time reads it N times and one pass once. The rest (the rows, the token index, the held-out rows) is "
            f"{human_bytes(summary['single'][1] - result['file_bytes'])} per SAE one at a time and {human_bytes(summary['multi'][1] - result['file_bytes'] / n)} in one pass: "
            "one pass reads the same rows, once for all SAEs, instead of each hook's rows in its own run.",
        ] if result.get("file_bytes") else []),
        "",
        f"Memory: `train --hooks` estimates {human_bytes(est['state'] + est['data'] + est['step'])} per SAE at its peak here "
        f"(parameters, gradients and Adam {human_bytes(est['state'])}; its share of the shuffle buffer, the start-up rows and the held-out rows, counted at `--val-tokens`, {human_bytes(est['data'])}; one step's activations {human_bytes(est['step'])}, held by one SAE at a time), "
        f"so about {human_bytes(n * (est['state'] + est['data']) + est['step'])} for the {n} SAEs on top of the interpreter and torch (about the one-at-a-time peak); compare the peak RSS above.",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
