#!/usr/bin/env python
"""``train_quality.py``'s grid with a candidate rule for TopK's default learning
rate in place of the trainer's: how a rule that is not (yet) the default would
fare. The rule multiplies the default rate (both the decoder's and the
encoder's, so every grid column moves with it) by

* ``(32 / k) ** --k-exponent``, k being the grid's own (``train_quality.py``'s
  ``--syn-k`` for the synthetic grid, its ``--k`` for the real one: run one
  grid at a time), in full up to 256 steps and fading geometrically to 1 at
  ``--fade-end`` steps (0: no fade);
* ``sqrt(width / 4)`` within ``[1, --width-cap]`` (width = d_sae / d_in; 1: no
  such factor): a rate that does not fall with the SAE's width between 4x and
  ``4 x --width-cap ** 2`` x d_in;
* with ``--lift-short-cap``, the short-run factor's cap raised from 2 to
  ``2 sqrt(s)`` (``s = sqrt(width / 4)`` within ``[1, 2]``): wider SAEs' shortest
  runs faster still.

Every argument after ``--`` goes to ``train_quality.py``. Its tables go to
stdout; ``--output-md FILE`` writes them into a file of your own, never into
``docs/benchmarks.md`` (whose generated sections describe the trainer's rule).

    .venv/bin/python benchmarks/lr_rule_candidates.py --k-exponent 0.5 --fade-end 1024 --width-cap 2 -- \\
        --syn-batch-size 1024 --budgets 64,256,1024 --lr-multipliers 0.5,1,2 --skip real,ttq
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
LONG_RUN_STEPS = 256  # the rule's k factor acts in full up to here (as the trainer's short-run factor ends at 4x)


def rule_factor(d_sae: int, steps: int | None, d_in: int | None, args: argparse.Namespace) -> float:
    """What the candidate rule multiplies the trainer's default rate by."""
    from saetool.train.schedules import SHORT_RUN_WIDTH, SHORT_RUN_WIDTH_MAX, budget_lr_factor

    fade = 1.0
    if args.fade_end and steps:
        fade = min(1.0, max(0.0, math.log(args.fade_end / steps) / math.log(args.fade_end / LONG_RUN_STEPS)))
    factor = (32.0 / args.k) ** (args.k_exponent * fade)
    width = d_sae / d_in if d_in else 4.0
    factor *= min(args.width_cap, max(1.0, math.sqrt(width / 4)))
    if args.lift_short_cap and steps:  # the trainer's short-run factor with its cap of 2 raised to 2 sqrt(s)
        stretch = math.sqrt(min(SHORT_RUN_WIDTH_MAX, max(SHORT_RUN_WIDTH, width)) / SHORT_RUN_WIDTH)
        factor *= budget_lr_factor(steps, 2 * math.sqrt(stretch), width) / budget_lr_factor(steps, 2.0, width)
    return factor


def grid_k(rest: list[str]) -> int:
    """The k of the one grid ``train_quality.py`` runs with ``rest`` (its defaults: 32 real, 8 synthetic)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--syn-k", type=int, default=8)
    p.add_argument("--skip", default="")
    p.add_argument("--output-md", default=None)
    known, _ = p.parse_known_args(rest)
    skip = set(known.skip.split(","))
    if ("real" in skip) == ("synthetic" in skip):
        raise SystemExit("lr_rule_candidates.py: run one grid at a time (--skip real,ttq or --skip synthetic,ttq after --): the rule's k is the grid's")
    if known.output_md and Path(known.output_md).resolve() == DOCS.resolve():
        raise SystemExit(f"lr_rule_candidates.py: --output-md {known.output_md}: the candidate rule's tables do not belong in the generated sections; give a file of your own")
    return known.syn_k if "real" in skip else known.k


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k-exponent", type=float, default=0.5, help="the k factor (32 / k) ** E (0: none; default: %(default)s)")
    p.add_argument("--fade-end", type=int, default=1024, help="steps from which the k factor is 1 (0: never fades; default: %(default)s)")
    p.add_argument("--width-cap", type=float, default=1.0, help="the width factor sqrt(width / 4) at most this (1: none; default: %(default)s)")
    p.add_argument("--lift-short-cap", action="store_true", help="raise the short-run factor's cap for SAEs wider than 4x d_in")
    args, rest = p.parse_known_args(argv)
    if (args.fade_end and args.fade_end <= LONG_RUN_STEPS) or args.width_cap < 1:
        p.error(f"--fade-end must be above {LONG_RUN_STEPS} (or 0) and --width-cap at least 1")
    rest = [a for a in rest if a != "--"]
    args.k = grid_k(rest)
    if "--output-md" not in rest and not any(a.startswith("--output-md=") for a in rest):
        rest += ["--output-md", ""]  # train_quality.py's default would rewrite docs/benchmarks.md
    return args, rest


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    from saetool.train.architectures import SAEArchitecture

    trainer_rate = SAEArchitecture.lr_for

    def lr_for(self: SAEArchitecture, d_sae: int, steps: int | None, **kw: object) -> float:
        return rule_factor(d_sae, steps, kw.get("d_in"), args) * trainer_rate(self, d_sae, steps, **kw)  # type: ignore[arg-type]

    SAEArchitecture.lr_for = lr_for  # type: ignore[method-assign]
    import train_quality

    return train_quality.main(rest)


if __name__ == "__main__":
    sys.exit(main())
