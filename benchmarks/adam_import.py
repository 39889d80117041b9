"""Start-up cost of ``torch.optim.Adam`` against saetool's own Adam (``saetool/train/adam.py``).

saetool keeps a small hand-written Adam (PyTorch's update arithmetic) because
``torch.optim``'s first step imports the TorchDynamo compiler. This script
measures what that saves: in fresh interpreters that have imported torch and
made one parameter with a gradient, the time to import each optimizer, build it
and take the first step, interleaved over ``--rounds`` rounds (medians). It
rewrites the ``### train: Adam import`` section of ``docs/benchmarks.md``.

    .venv/bin/python benchmarks/adam_import.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, log, machine_info, machine_line, markdown_table, median, update_section  # noqa: E402

#: What each row times (import, build, first step), after ``import torch`` and making ``p``.
ROWS = {
    "torch.optim.Adam": "import torch.optim; o = torch.optim.Adam([p], lr=1e-3); o.step()",
    "saetool.train.adam.Adam": "from saetool.train.adam import Adam; o = Adam([p], lr=1e-3); o.step()",
}
PROBE = (
    "import sys, time, torch; p = torch.nn.Parameter(torch.randn(256, 64)); p.grad = torch.randn(256, 64); "
    "t = time.perf_counter(); {stmt}; print(time.perf_counter() - t, 'torch._dynamo' in sys.modules)"
)


def measure(stmt: str) -> float:
    """Seconds to run ``stmt`` in a fresh interpreter that has already imported torch (and whether it loaded TorchDynamo)."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=stmt)], capture_output=True, text=True, check=True)
    seconds, dynamo = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), dynamo == "True"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds (each row once per round, order rotating).")
    parser.add_argument("--output-md", default="docs/benchmarks.md", help="Markdown file whose section is rewritten ('' to skip).")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)

    names = list(ROWS)
    times: dict[str, list[float]] = {name: [] for name in names}
    dynamo: dict[str, bool] = {}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            seconds, dynamo[name] = measure(ROWS[name])
            times[name].append(seconds)
        log(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n.split()[0]} {times[n][-1]:.3f} s" for n in names))
    optim, ours = (median(times[n]) for n in names)
    info = machine_info(("torch",))
    rows = [(name, f"{median(times[name]) * 1000:.0f} ms", "yes" if dynamo[name] else "no", ", ".join(f"{t * 1000:.0f}" for t in times[name])) for name in names]
    body = "\n".join([
        f"_Written by `benchmarks/adam_import.py` on {info['date']}; rerun it to refresh this section._",
        "",
        "Reproduce (from the repository root):",
        "",
        "```bash",
        command_line(__file__, sys.argv[1:] if argv is None else argv),
        "```",
        "",
        f"Machine: {machine_line(info)}. Load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (above the core count means other processes competed for the cores, which slows both rows).",
        "",
        f"Each row is a fresh interpreter that has imported torch and made one 256 x 64 parameter with a gradient; the time covers importing the optimizer, building it and its first step. {args.rounds} interleaved rounds, medians.",
        "",
        markdown_table(("optimizer", "median", "TorchDynamo imported", "rounds (ms)"), rows, "lrll"),
        "",
        f"**`torch.optim.Adam`'s first step costs {optim:.2f} s; saetool's own Adam {ours * 1000:.0f} ms** ({optim - ours:.2f} s saved on every `saetool train`). "
        "That is why `saetool/train/adam.py` stays hand-written (PyTorch's update arithmetic, `torch._fused_adam_` where it exists; "
        "`tests/test_train_scaling.py::test_adam_matches_torch_optim` checks its steps against `torch.optim.Adam`).",
    ])
    print(body)
    if args.output_md:
        update_section(args.output_md, "### train: Adam import", body)
    if args.json:
        Path(args.json).write_text(json.dumps({"torch_optim_s": optim, "saetool_adam_s": ours, "rounds": times, "dynamo": dynamo}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
