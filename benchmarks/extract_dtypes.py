#!/usr/bin/env python
"""``saetool extract`` in float32 and bfloat16, side by side: tokens/s and error.

Three rows, each the whole ``extract_activations`` call (corpus, forward,
capture, HDF5 write) on the same windows with an already loaded model:

1. ``--dtype float32`` (the reference);
2. ``--dtype bfloat16`` (model weights and compute in bfloat16);
3. ``--dtype float32 --storage-dtype bfloat16`` (float32 compute, bfloat16 on disk).

Rows run ``--repeats`` times, interleaved (the order rotates each round); the
table shows median tokens/s, the ratio to row 1, and the median over stored
tokens of the per-token relative error ``||x - x_fp32|| / ||x_fp32||``, plus
the bytes per stored value. Also recorded: whether this CPU has bfloat16
matrix instructions (oneDNN's own check).

    nice -n 10 .venv/bin/python benchmarks/extract_dtypes.py            # updates docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Case, command_line, log, machine_info, machine_line, run_in_temp_dir, run_interleaved, set_offline_env, update_section  # noqa: E402

SECTION = "## extract dtypes"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--num-tokens", type=int, default=512)
    p.add_argument("--context-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output-md", default="docs/benchmarks.md")
    p.add_argument("--tmp-dir", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-dtypes-", args.tmp_dir, lambda folder: run(args, argv, folder))


def run(args: argparse.Namespace, argv: list[str], folder: Path) -> int:
    set_offline_env()
    import torch

    from saetool.artifacts.activations import ActivationsFile
    from saetool.extract.api import ExtractConfig, extract_activations
    from saetool.models.registry import load_model

    info = machine_info(packages=("torch", "transformers", "h5py"))
    log(f"machine: {machine_line(info)}")
    hook = f"blocks.{args.layer}.hook_resid_post"
    models = {"float32": load_model(args.model, dtype="float32"), "bfloat16": load_model(args.model, dtype="bfloat16")}
    try:
        bf16_isa = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16_isa = None
    rows = {
        "float32": ("float32", None),
        "bfloat16 compute": ("bfloat16", None),
        "float32 compute, bfloat16 storage": ("float32", "bfloat16"),
    }
    counter = {"n": 0}

    def case(name: str, dtype: str, storage: str | None) -> Case:
        def setup():
            counter["n"] += 1
            return folder / f"{counter['n']}.h5"

        def go(out: Path):
            cfg = ExtractConfig(model=args.model, hooks=[hook], num_tokens=args.num_tokens, context_size=args.context_size,
                                batch_size=args.batch_size, dtype=dtype, storage_dtype=storage)
            return extract_activations(cfg, out, overwrite=True, progress=False, model=models[dtype])

        def teardown(out: Path, path: Path):
            keep = folder / f"{name}.h5"
            if not keep.exists():
                path.rename(keep)
            else:
                path.unlink()

        return Case(name, go, setup, teardown)

    for name, (dtype, storage) in rows.items():  # warm-up, not timed
        case(name, dtype, storage).run(folder / "warm.h5")
    timings = run_interleaved([case(n, *v) for n, v in rows.items()], args.repeats, max_interference=None)
    with ActivationsFile(folder / "float32.h5") as f:
        ref = f.read(hook).float()
        n_tokens = f.n_tokens
    table = ["| row | tokens/s (median, wall) | x float32 (wall) | x float32 (CPU time) | median per-token relative error | bytes per value |",
             "|---|---|---|---|---|---|"]
    base = timings["float32"].median
    base_cpu = statistics.median(timings["float32"].cpu_seconds)
    for name in rows:
        with ActivationsFile(folder / f"{name}.h5") as f:
            x = f.read(hook).float()
            size = f.artifact.file[f"activations/{hook}"].dtype.itemsize
        err = statistics.median(((x - ref).norm(dim=1) / ref.norm(dim=1)).tolist())
        t = timings[name].median
        cpu = statistics.median(timings[name].cpu_seconds)
        table.append(f"| {name} | {n_tokens / t:.0f} | {base / t:.2f} | {base_cpu / cpu:.2f} | {err:.2%} | {size} |")
        log(f"{name}: {n_tokens / t:.0f} tokens/s, {base / t:.2f}x wall, {base_cpu / cpu:.2f}x CPU, error {err:.2%}, {timings[name].seconds}")
    body = [
        f"`saetool extract` of {args.num_tokens} tokens at `{hook}` on {args.model} (context {args.context_size}, batch {args.batch_size}), "
        f"{args.repeats} interleaved repeats, medians; `x float32` is float32's time over the row's (above 1: faster), by wall clock and by "
        f"this process's CPU time (the fairer figure on a shared machine; other processes used {_others(timings):.0%} of the CPUs). Machine: {machine_line(info)}. "
        f"bfloat16 matrix instructions on this CPU (oneDNN): {'yes' if bf16_isa else 'no' if bf16_isa is False else 'unknown'}.",
        "",
        *table,
        "",
        *([
            "Without bfloat16 matrix instructions (AVX-512 BF16 or AMX) PyTorch's CPU kernels compute bfloat16 through slower paths, so bfloat16 "
            "compute cannot beat float32 here; what bfloat16 buys on such a CPU is disk: `--dtype float32 --storage-dtype bfloat16` runs at "
            "float32's speed and stores half the bytes, with the error of one rounding. `extract` warns when `--dtype bfloat16` is asked for on such a CPU.",
            "",
        ] if bf16_isa is False else []),
        "Reproduce:",
        "",
        "```bash",
        command_line(__file__, argv),
        "```",
    ]
    text = "\n".join(body)
    print(text)
    if args.output_md:
        update_section(args.output_md, SECTION, text)
    return 0


def _others(timings) -> float:
    shares = [x for t in timings.values() for x in t.interference]
    return statistics.median(shares) if shares else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
