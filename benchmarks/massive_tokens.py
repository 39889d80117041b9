#!/usr/bin/env python
"""Massive-activation tokens: train with and without ``--max-norm-ratio``, evaluate both.

Trains the README quick start's SAE (TopK, d_sae 2304, k 32, 64 steps of 1024
tokens) on TRAIN twice -- every token, and without tokens farther than R x the
median distance from the median row -- and evaluates both on HELDOUT (activations the SAEs did not see): FVU on
every row and on the ordinary rows, and CE loss recovered with the SAE spliced
in at every position but BOS (``saetool evaluate``). It also reports how the
held-out variance splits between massive and ordinary tokens. Writes the
``## massive-activation tokens`` section of docs/benchmarks.md.

    saetool extract --layers 15 --num-tokens 8192 -o train.h5
    saetool extract --corpus bbc-news:tech --layers 15 --num-tokens 8192 -o heldout.h5
    .venv/bin/python benchmarks/massive_tokens.py train.h5 heldout.h5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, log, machine_info, machine_line, markdown_table, set_offline_env, update_section  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train", type=Path, help="training activations (blocks.15.hook_resid_post of smollm2-135m)")
    p.add_argument("heldout", type=Path, help="held-out activations of the same hook")
    p.add_argument("--ratio", type=float, default=10.0, help="--max-norm-ratio of the excluding run (default: %(default)s)")
    p.add_argument("--num-tokens", type=int, default=65536, help="training tokens (default: %(default)s)")
    p.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens evaluated (default: %(default)s)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="file to write the section into ('' to skip)")
    return p.parse_args(argv)


def variance_share(path: Path, ratio: float, n: int) -> tuple[int, int, float, float, float, float]:
    """(massive rows, rows, their share of the variance, median norm, largest norm, median distance from the median row) of the first n rows."""
    import torch

    from saetool.artifacts.activations import ActivationsFile
    from saetool.artifacts.norms import NormFilter, row_norms

    with ActivationsFile(path) as f:
        x = f.read(f.hooks[0], 0, n, dtype=torch.float64)
    rule = NormFilter.from_rows(x, ratio)
    massive = ~rule.keep(x)
    dev = (x - x.mean(0)).pow(2).sum(1)
    norms = row_norms(x)
    return int(massive.sum()), len(x), float(dev[massive].sum() / dev.sum()), float(norms.median()), float(norms.max()), rule.median


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_offline_env()
    from saetool.evaluate.api import EvalConfig, evaluate_sae
    from saetool.train import TrainConfig, train_sae

    rows = []
    with tempfile.TemporaryDirectory(prefix="saetool-massive-") as tmp:
        for label, ratio in (("every token", None), (f"--max-norm-ratio {args.ratio:g}", args.ratio)):
            cfg = TrainConfig(arch="topk", d_sae=2304, k=32, batch_size=1024, num_tokens=args.num_tokens, max_norm_ratio=ratio, seed=0)
            log(f"training ({label})")
            result = train_sae(cfg, [args.train], Path(tmp) / f"sae{len(rows)}.h5", progress=False)
            excluded = result.training.get("norm_filter", {}).get("excluded_tokens", {}).get("train", 0)
            log(f"evaluating ({label})")
            ev = evaluate_sae(result.path, args.heldout, EvalConfig(num_tokens=args.eval_tokens, max_norm_ratio=args.ratio))
            m, mo = ev.metrics, ev.metrics_ordinary
            rows.append([label, excluded, f"{1 - m['explained_variance']:.3f}", f"{1 - mo['explained_variance']:.3f}", f"{m['ce_loss_recovered']:.3f}",
                         f"{m['ce_loss_sae'] - m['ce_loss_clean']:.3f}", f"{m['l0']:.1f}"])
            log(str(rows[-1]))
    n_massive, n, share, median, largest, distance = variance_share(args.heldout, args.ratio, args.eval_tokens)
    table = markdown_table(["training tokens", "left out", "held-out FVU, all rows", f"FVU without the {n_massive} massive", "CE loss recovered", "CE increase (nats)", "L0"], rows)
    body = (
        f"Held-out set: {n} rows, median norm {median:.0f}, largest {largest:.0f}; {n_massive} rows farther than {args.ratio:g} x the median distance "
        f"({distance:.0f}) from the median row hold "
        f"{100 * share:.0f}% of its variance. TopK SAE (d_sae 2304, k 32) trained on {args.num_tokens} tokens; CE loss recovered with the SAE "
        f"spliced in at every position but BOS.\n\n{table}\n\n{machine_line(machine_info())}\n\n```\n{command_line(__file__, argv if argv is not None else sys.argv[1:])}\n```\n"
    )
    print(body)
    if args.output_md:
        update_section(args.output_md, "## massive-activation tokens", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
