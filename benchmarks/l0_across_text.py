#!/usr/bin/env python
"""Measure how a threshold SAE's L0 depends on the text it reads: the L0 a
target-L0 run steers to in training against the L0 and held-out FVU of the
finished SAE on every slice of an activations file, seen and unseen.

SAEs of ``--width`` x d_model features (``--archs``, default JumpReLU with its
default target L0, and TopK at the same k as the comparison whose L0 cannot
move) train for ``--steps`` steps of ``--batch-size`` rows on the file's first
``--train-rows`` rows with ``saetool.train.train_on_batches``, as
``sparsity_defaults.py`` does. Each is then scored on consecutive slices of
``--slice-rows`` rows and on the file's last ``--slice-rows`` (for
``acts.h5``, the "train quality" grids' held-out rows) with
``train_quality.py``'s scoring: L0 over all rows, and FVU without the
massive-activation rows. A JumpReLU SAE's L0 follows the
text: the table shows whether it differs from the training L0 on seen rows,
on the unseen rows next to them, and on text further along the corpus.

Run from the repository root (``acts-278k.h5``: ``saetool extract --layers 15
-n 278528 -o acts-278k.h5``):

    .venv/bin/python benchmarks/l0_across_text.py --activations acts-278k.h5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, log, machine_info, machine_line, markdown_table, set_offline_env, update_section  # noqa: E402

SECTION = "## train quality: JumpReLU L0 across the corpus"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", required=True, help="activations artifact (first hook)")
    p.add_argument("--train-rows", type=int, default=131072, help="training rows: the file's first rows (default: %(default)s)")
    p.add_argument("--slice-rows", type=int, default=8192, help="rows per scored slice (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="rows per step (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1024, help="training steps (default: %(default)s)")
    p.add_argument("--width", type=int, default=4, help="d_sae as a multiple of d_model (default: %(default)s)")
    p.add_argument("--archs", default="jumprelu,topk", help="(default: %(default)s)")
    p.add_argument("--section", default=SECTION, help="the markdown section to rewrite (default: %(default)s)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose section is rewritten; '' to skip (default: %(default)s)")
    args = p.parse_args(argv)
    for name in ("train_rows", "slice_rows", "batch_size", "steps", "width"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.train_rows < args.batch_size:
        p.error("--train-rows must be at least --batch-size")
    args.archs = list(dict.fromkeys(a.strip() for a in args.archs.split(",") if a.strip()))
    if not args.archs:
        p.error("--archs names no architecture")
    return args


def slice_starts(rows: int, slice_rows: int) -> list[int]:
    """Starts of the consecutive whole slices, then of the file's last slice if it is not one of them."""
    starts = list(range(0, rows - slice_rows + 1, slice_rows))
    if rows - slice_rows not in starts:
        starts.append(rows - slice_rows)
    return starts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    set_offline_env()
    import h5py
    import torch
    import train_quality as tq
    from sparsity_defaults import train_sae, training_l0

    info = machine_info(packages=("torch",))
    log(f"machine: {machine_line(info)}")
    started = time.perf_counter()
    with h5py.File(args.activations, "r") as fh:
        ds = fh[f"activations/{json.loads(fh.attrs['hooks'])[0]}"]
        rows = int(ds.shape[0])
        if rows < args.train_rows + args.slice_rows:
            raise SystemExit(f"{args.activations} has {rows} rows; need --train-rows + --slice-rows = {args.train_rows + args.slice_rows}")
        x_train = torch.from_numpy(ds[: args.train_rows].astype("float32"))
        d_sae = args.width * int(x_train.shape[1])
        trained = {arch: train_sae(x_train, arch, d_sae, args.steps, args.batch_size, {})[0] for arch in args.archs}
        del x_train
        scores: dict[str, dict[int, dict[str, float]]] = {arch: {} for arch in args.archs}
        for s in slice_starts(rows, args.slice_rows):  # one slice in memory at a time, scored by every SAE
            x = torch.from_numpy(ds[s : s + args.slice_rows].astype("float32"))
            for arch, result in trained.items():
                scores[arch][s] = tq.heldout_scores(result.sae.encode, result.sae.decode, x, d_sae)
    results: dict[str, dict[str, Any]] = {}
    for arch, result in trained.items():
        results[arch] = {"train_l0": training_l0(result), "target_l0": result.config.target_l0, "slices": scores[arch]}
        log(f"{arch}: training L0 {results[arch]['train_l0']:.1f}; " + ", ".join(f"{s}: {r['l0']:.1f}" for s, r in scores[arch].items()))
    markdown = summarise(args, argv, rows, results, info, time.perf_counter() - started)
    print(markdown)
    if args.output_md:
        update_section(args.output_md, args.section, markdown)
        log(f"updated the '{args.section}' section of {args.output_md}")
    return 0


def summarise(args, argv: list[str], rows: int, results: dict[str, dict[str, Any]], info: dict[str, Any], seconds: float) -> str:
    archs = list(results)
    starts = list(next(iter(results.values()))["slices"])
    table = markdown_table(
        ["rows", "in the training rows"] + [f"{a} {m}" for a in archs for m in ("L0", "FVU")],
        [(f"{s:,}-{s + args.slice_rows - 1:,}" + (" (last)" if s == rows - args.slice_rows else ""),
          "yes" if s + args.slice_rows <= args.train_rows else ("partly" if s < args.train_rows else "no"))
         + tuple(v for a in archs for v in (f"{results[a]['slices'][s]['l0']:.1f}", f"{results[a]['slices'][s]['fvu']:.3f}"))
         for s in starts],
        "ll" + "r" * (2 * len(archs)),
    )
    passes = args.steps * args.batch_size / args.train_rows
    trained = "; ".join(f"{a} {results[a]['train_l0']:.1f}" + (f" (target {results[a]['target_l0']:g})" if results[a].get("target_l0") else "")
                        for a in archs)
    return "\n".join([
        f"_Written by `benchmarks/l0_across_text.py` on {info['date']} in {seconds / 60:.0f} min; rerun it to refresh this section._",
        "",
        f"{args.width}x d_model features, {args.steps} steps of {args.batch_size} rows on the first {args.train_rows:,} of "
        f"`{Path(args.activations).name}`'s {rows:,} rows ({passes:.3g} pass{'' if passes == 1 else 'es'}), then L0 (all rows) "
        f"and FVU (ordinary rows) on each slice of {args.slice_rows:,} rows. "
        f"Training L0 (the training batches', last 5% of the steps): {trained}. Machine: {machine_line(info)}.",
        "",
        "```bash",
        command_line(__file__, argv),
        "```",
        "",
        table,
    ])


if __name__ == "__main__":
    sys.exit(main())
