#!/usr/bin/env python
"""Benchmark the sparsity defaults of the architectures with a sparsity coefficient
(JumpReLU, ReLU): held-out FVU, L0 and never-firing features of their default
settings against the alternatives, on real activations.

For each activations file (``--activations``, repeatable) and budget
(``--budgets`` steps of ``--batch-size`` rows), SAEs of ``--width`` x d_model
features train on the file's first ``--train-rows`` rows with
``saetool.train.train_on_batches`` and are scored on its last
``--heldout-rows`` rows (other sequences) with ``train_quality.py``'s scoring:
FVU without the massive-activation rows (and over all rows), L0 (and the
training batches' L0 over the last 5% of the steps, what a target L0 steers),
and the share of features that never fire on the held-out rows. Settings per architecture:

* JumpReLU: the defaults (the coefficient steered to L0 32), the former
  defaults (a fixed coefficient 1), and the defaults with the input uncentred.
* ReLU: the defaults (a fixed L1 coefficient 5, rate 4e-4 at 2**14 features),
  the former defaults (rate 1e-4), the defaults uncentred, and steered to L0 32
  (``target_l0``).

Run from the repository root:

    .venv/bin/python benchmarks/sparsity_defaults.py --activations acts.h5 --activations gemma.h5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, log, machine_info, machine_line, markdown_table, set_offline_env, update_section  # noqa: E402

SECTION = "## train quality: JumpReLU and ReLU"
SETTINGS: dict[str, list[tuple[str, dict[str, Any]]]] = {  # a value "FORMER_RELU_LR" is that reference rate scaled to the width
    "jumprelu": [("defaults (target L0 32)", {}), ("former: coefficient 1", {"sparsity_coeff": 1.0}), ("uncentred", {"apply_b_dec_to_input": False})],
    "relu": [("defaults (coefficient 5)", {}), ("former: rate 1e-4", {"lr": "FORMER_RELU_LR"}), ("uncentred", {"apply_b_dec_to_input": False}),
             ("target L0 32", {"target_l0": 32.0})],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", action="append", required=True, help="activations artifact (first hook); repeat for several models")
    p.add_argument("--train-rows", type=int, default=16384, help="training rows: the file's first rows (default: %(default)s)")
    p.add_argument("--heldout-rows", type=int, default=8192, help="held-out rows: the file's last rows (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="rows per step (default: %(default)s)")
    p.add_argument("--budgets", default="64,256,1024", help="training steps (default: %(default)s)")
    p.add_argument("--width", type=int, default=4, help="d_sae as a multiple of d_model (default: %(default)s)")
    p.add_argument("--archs", default="jumprelu,relu", help="(default: %(default)s)")
    p.add_argument("--section", default=SECTION, help="the markdown section to rewrite (default: %(default)s)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose section is rewritten; '' to skip (default: %(default)s)")
    return p.parse_args(argv)


def train_sae(x_train, arch: str, d_sae: int, steps: int, batch_size: int, options: dict[str, Any]) -> tuple[Any, float]:
    """(the finished run, seconds of training): ``steps`` batches of ``x_train``'s rows, seed 0."""
    import train_quality as tq

    from saetool.train import TrainConfig, train_on_batches
    from saetool.train.schedules import FORMER_RELU_LR, default_lr

    if options.get("lr") == "FORMER_RELU_LR":
        options = {**options, "lr": default_lr(FORMER_RELU_LR, d_sae)}
    options = {"log_every": 1, **options}  # a history row per step, for training_l0; training itself is unchanged
    config = TrainConfig(arch=arch, d_sae=d_sae, batch_size=batch_size, seed=0, **options)
    started = time.perf_counter()
    result = train_on_batches(tq.batches(x_train, batch_size), config, steps=steps)
    return result, time.perf_counter() - started


def training_l0(result) -> float:
    """The training batches' L0 over the last 5% of the steps (at least the last one): what a target L0 steers.
    Each history row holds the mean over the steps since the row before, so rows are weighted by those steps."""
    import numpy as np

    steps = np.asarray(result.history["step"], dtype=float)
    covered = np.diff(steps, prepend=0.0)
    last = steps > steps[-1] - max(1.0, 0.05 * steps[-1])
    return float(np.average(np.asarray(result.history["l0"], dtype=float)[last], weights=covered[last]))


def train_and_score(x_train, held, arch: str, d_sae: int, steps: int, batch_size: int, options: dict[str, Any]) -> dict[str, Any]:
    import train_quality as tq

    result, seconds = train_sae(x_train, arch, d_sae, steps, batch_size, options)
    scores = tq.heldout_scores(result.sae.encode, result.sae.decode, held, d_sae)
    return {**scores, "seconds": seconds, "train_l0": training_l0(result), "sparsity_coeff": result.training.get("sparsity_coeff")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    set_offline_env()
    import train_quality as tq

    info = machine_info(packages=("torch",))
    log(f"machine: {machine_line(info)}")
    started = time.perf_counter()
    rows = []
    for path in args.activations:
        load_args = argparse.Namespace(activations=path, train_rows=args.train_rows, heldout_rows=args.heldout_rows)
        x_train, held, data = tq.load_real(load_args, Path("."))
        d_sae = args.width * int(x_train.shape[1])
        for arch in args.archs.split(","):
            for steps in tq.ints(args.budgets):
                for label, options in SETTINGS[arch]:
                    r = train_and_score(x_train, held, arch, d_sae, steps, args.batch_size, options)
                    log(f"{data['label']} {arch} {steps} steps {label}: FVU {r['fvu']:.3f}, L0 {r['l0']:.1f}, never fired {r['never_fired']:.1%}")
                    rows.append((data["label"], arch, steps, label, r))
    markdown = summarise(args, argv, rows, info, time.perf_counter() - started)
    print(markdown)
    if args.output_md:
        update_section(args.output_md, args.section, markdown)
        log(f"updated the '{args.section}' section of {args.output_md}")
    return 0


def summarise(args, argv: list[str], rows: list, info: dict[str, Any], seconds: float) -> str:
    table = markdown_table(
        ["data", "arch", "steps", "settings", "held-out FVU (ordinary rows)", "FVU (all rows)", "L0", "L0 in training", "never fire", "final coefficient"],
        [(data, arch, steps, label, f"{r['fvu']:.3f}", f"{r['fvu_all']:.3f}", f"{r['l0']:.1f}", f"{r['train_l0']:.1f}", f"{r['never_fired']:.1%}",
          f"{r['sparsity_coeff']:.3g}" if r.get("sparsity_coeff") is not None else "") for data, arch, steps, label, r in rows],
        "lllllrrrrr",
    )
    return "\n".join([
        f"_Written by `benchmarks/sparsity_defaults.py` on {info['date']} in {seconds / 60:.0f} min; rerun it to refresh this section._",
        "",
        f"{args.width}x d_model features, {args.batch_size} rows per step, trained on each file's first {args.train_rows:,} rows and scored on its "
        f"last {args.heldout_rows:,} (the \"train quality\" grid's split and scoring). Machine: {machine_line(info)}.",
        "",
        "```bash",
        command_line(__file__, argv),
        "```",
        "",
        table,
    ])


if __name__ == "__main__":
    sys.exit(main())
