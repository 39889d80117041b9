#!/usr/bin/env python
"""Held-out quality of TopK SAEs trained on the same number of tokens in
batches of different sizes: what a smaller ``--batch-size`` buys a run that
would otherwise take few steps (the fix the trainer's too-short warning names,
and the batch ``saetool train`` takes without ``--batch-size``, marked 'default').

For each ``--activations`` file and each budget in ``--tokens``, a TopK SAE of
``--width`` x d_model features (k ``--k``, every other setting saetool's
default: the learning rate follows the step count) trains on the file's first
``--train-rows`` rows (shuffled, several passes where the budget asks for more
rows) for ``tokens / batch`` steps of each batch size in ``--batches``, with
``saetool.train.train_on_batches`` as ``train_quality.py`` does, and is scored
with its scoring on the file's last ``--heldout-rows`` rows (other sequences):
FVU without the massive-activation rows and the features that never fire.
Seconds are wall time of training, one run each: a guide, not a measurement
(CPU time per token grows as batches shrink).

Run from the repository root (``acts.h5`` and ``gemma.h5`` as in "train quality"):

    .venv/bin/python benchmarks/rows_per_step.py --activations acts.h5 --activations gemma.h5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import log, machine_info, machine_line, markdown_table, section_intro, set_offline_env, update_section  # noqa: E402
from train_quality import ints  # noqa: E402

SECTION = "## train quality: rows per step"


def positive_ints(text: str) -> list[int]:
    """``train_quality.py``'s comma list of integers, each at least 1."""
    values = ints(text)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas (got {text!r})")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", action="append", required=True, help="activations artifact (first hook); repeat for several")
    p.add_argument("--tokens", type=positive_ints, default=[32768, 131072], help="training tokens per run, comma list (default: 32768,131072)")
    p.add_argument("--batches", type=positive_ints, default=[128, 256, 512, 1024, 4096], help="rows per step, comma list (default: 128,256,512,1024,4096)")
    p.add_argument("--train-rows", type=int, default=16384, help="training rows: the file's first (default: %(default)s)")
    p.add_argument("--heldout-rows", type=int, default=8192, help="held-out rows: the file's last (default: %(default)s)")
    p.add_argument("--width", type=int, default=4, help="d_sae as a multiple of d_model (default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="TopK k (default: %(default)s)")
    p.add_argument("--section", default=SECTION, help="the markdown section to rewrite (default: %(default)s)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose section is rewritten; '' to skip (default: %(default)s)")
    args = p.parse_args(argv)
    if min(args.train_rows, args.heldout_rows, args.width, args.k) < 1:
        p.error("--train-rows, --heldout-rows, --width and --k must be at least 1")
    if max(args.batches) > args.train_rows:
        p.error("every batch must fit in --train-rows")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    set_offline_env()
    import train_quality as tq

    info = machine_info(packages=("torch",))
    log(f"machine: {machine_line(info)}")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for path in args.activations:
        x, held, data = tq.load_real(argparse.Namespace(activations=path, train_rows=args.train_rows, heldout_rows=args.heldout_rows), Path("."))
        d_sae = args.width * int(x.shape[1])
        for tokens in args.tokens:
            for batch in sorted(args.batches):
                steps = max(1, tokens // batch)
                result, seconds = tq.train_one(x, d_sae, args.k, steps, batch, None, None)
                scores = tq.heldout_scores(result.sae.encode, result.sae.decode, held, d_sae)
                row = {"data": data["label"], "d_sae": d_sae, "tokens": tokens, "batch": batch, "steps": steps, "lr": result.training["lr"],
                       "seconds": seconds, "warned": result.training.get("convergence_warning") is not None, **scores}
                log(f"{row['data']} {tokens:,} tokens, {batch} rows x {steps} steps: FVU {row['fvu']:.4f}, never fired {row['never_fired']:.1%}, {seconds:.1f} s")
                rows.append(row)
    markdown = summarise(args, argv, rows, info, time.perf_counter() - started)
    print(markdown)
    if args.output_md:
        update_section(args.output_md, args.section, markdown)
        log(f"updated the '{args.section}' section of {args.output_md}")
    return 0


def summarise(args: argparse.Namespace, argv: list[str], rows: list[dict[str, Any]], info: dict[str, Any], seconds: float) -> str:
    from saetool.train.convergence import DEFAULT_BATCH, default_batch_size, smaller_batch

    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["tokens"]), []).append(r)
    best = {key: min(r["fvu"] for r in runs) for key, runs in groups.items()}
    table = markdown_table(
        ["data", "d_sae", "tokens", "rows per step", "steps", "default lr", "held-out FVU", "÷ best", "never fired", "warned", "train s"],
        [(r["data"], f"{r['d_sae']:,}", f"{r['tokens']:,}", f"{r['batch']:,}" + (" (default)" if r["batch"] == default_batch_size(r["tokens"]) else ""), f"{r['steps']:,}", f"{r['lr']:.2e}",
          f"{r['fvu']:.3f}", f"{r['fvu'] / best[(r['data'], r['tokens'])]:.3f}", f"{r['never_fired']:.1%}", "yes" if r["warned"] else "no", f"{r['seconds']:.1f}")
         for r in rows],
        "llrrrrrrrlr",
    )
    ratios = []
    for (data, tokens), runs in groups.items():
        small, large = min(runs, key=lambda r: r["batch"]), max(runs, key=lambda r: r["batch"])
        ref = next((r for r in runs if r["batch"] == 1024), large)
        if small is not large:
            ratios.append(f"{data}, {tokens:,} tokens: FVU x{small['fvu'] / large['fvu']:.2f} and x{small['fvu'] / ref['fvu']:.2f}, "
                          f"training time x{small['seconds'] / large['seconds']:.1f} and x{small['seconds'] / ref['seconds']:.1f}")
    summary = (f"The smallest batch ({min(args.batches):,} rows) against the largest ({max(args.batches):,}) and against 1,024 rows "
               "(where measured; else the largest again): " + "; ".join(ratios) + ".") if ratios else ""
    named = []
    for (data, tokens), runs in groups.items():
        by_batch = {r["batch"]: r for r in runs}
        for r in runs:
            size = smaller_batch(r["batch"], r["steps"]) if r["warned"] else None
            if size in by_batch:
                to = by_batch[size]
                named.append(f"{data}, {tokens:,} tokens, {r['batch']:,} rows: {size:,} rows, FVU x{to['fvu'] / r['fvu']:.2f}, "
                             f"never firing {to['never_fired']:.1%} (was {r['never_fired']:.1%}), training time x{to['seconds'] / r['seconds']:.1f}")
    chosen = []
    for (data, tokens), runs in groups.items():
        by_batch = {r["batch"]: r for r in runs}
        size = default_batch_size(tokens)
        if size in by_batch and DEFAULT_BATCH in by_batch and size != DEFAULT_BATCH:
            to, former = by_batch[size], by_batch[DEFAULT_BATCH]
            chosen.append(f"{data}, {tokens:,} tokens: {size:,} rows, FVU x{to['fvu'] / former['fvu']:.2f}, never firing {to['never_fired']:.1%} "
                          f"(was {former['never_fired']:.1%}), training time x{to['seconds'] / former['seconds']:.1f}")
    if chosen:
        summary += (f"\n\nThe batch `saetool train` takes without `--batch-size` (the rows marked 'default': {DEFAULT_BATCH:,} rows from "
                    f"{DEFAULT_BATCH * 256:,} tokens on, else the largest power of two from 128 that gives 256 steps) against {DEFAULT_BATCH:,} rows, "
                    "its only default until 2026-12-07: " + "; ".join(chosen) + ".")
    if named:
        summary += ("\n\nWhat the too-short warning of each warned run names (`--batch-size`, where that batch was measured here) and what it gives: "
                    + "; ".join(named) + ".")
    return "\n".join([
        *section_intro(__file__, argv, info, seconds),
        f"TopK SAEs (k {args.k}, {args.width}x d_model, saetool's defaults otherwise: the learning rate follows the step count) "
        f"trained on the same number of tokens from each file's first {args.train_rows:,} rows in batches of different sizes, "
        f"scored on its last {args.heldout_rows:,} rows (other sequences): FVU without the massive-activation rows, features never "
        "firing on the held-out rows, whether the trainer warned that the run looks too short to converge, and wall seconds of "
        "training (one run each, on a shared machine: a guide, not a timing).",
        "",
        table,
        "",
        summary,
    ])


if __name__ == "__main__":
    sys.exit(main())
