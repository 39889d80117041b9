#!/usr/bin/env python
"""Run every benchmark in ``benchmarks/`` one after the other and write the suite table.

Each script still measures its own comparisons side by side in one run and
rewrites its own section of ``docs/benchmarks.md``; this runner gives them one
size, collects their raw numbers (``--json``) and writes a summary table into
the block between ``<!-- benchmark-suite:begin -->`` and
``<!-- benchmark-suite:end -->`` at the top of the page. Every figure in it is a
ratio (or a difference) of two measurements taken in the same script run.

Scripts, in order (a missing one is noted and skipped):

* ``extract.py``: saetool extract vs bare forward vs sae-lens caching; peak RSS at 1x and 4x tokens;
* ``train.py``: saetool vs sae-lens trainer, fraction of the matmul rate, cost vs d_sae; peak RSS at 1x and 4x tokens;
* ``interpret.py``: vectorised top-k vs a heap per feature;
* ``scaling.py``: ``torchrun`` with 2 processes vs 1 (writes its block into ``docs/scaling.md``);
* a GPU train benchmark (saetool vs sae-lens trainer on CUDA, and the GPU's matmul rate), run by
  this file itself when ``torch.cuda.is_available()``; otherwise the table says it was skipped.

    .venv/bin/python benchmarks/run_all.py                  # --size small: each script's defaults
    .venv/bin/python benchmarks/run_all.py --size full      # more repeats; for the published numbers
    .venv/bin/python benchmarks/run_all.py --size tiny --output-md /tmp/bench.md   # a smoke run (minutes)

Run nothing else on the machine meanwhile: the scripts record how much other
processes disturbed them, but a busy machine still blurs the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import DOC_HEADER, OFFLINE_ENV, command_line, human_bytes, log, machine_info, machine_line, markdown_table  # noqa: E402

BEGIN, END = "<!-- benchmark-suite:begin -->", "<!-- benchmark-suite:end -->"

#: Arguments per script and size. ``tiny`` proves the pipeline works (numbers not meaningful).
SIZES: dict[str, dict[str, list[str]]] = {
    "tiny": {
        "extract.py": ["--num-tokens", "256", "--context-size", "32", "--batch-size", "4", "--layer", "3", "--repeats", "1", "--retries", "0", "--rss-multiples", "1,4"],
        "train.py": ["--tokens", "2048", "--d-in", "64", "--d-sae", "256", "--k", "8", "--batch-size", "256", "--steps", "3", "--repeats", "1",
                     "--rss-tokens", "2048", "--rss-multiples", "1,4", "--rss-shuffle-buffer", "1024"],
        "interpret.py": ["--tokens", "4096", "--d-sae", "512", "--k", "8", "--chunk-rows", "1024", "--repeats", "1"],
        "scaling.py": ["--extract-tokens", "256", "--train-tokens", "4096", "--d-in", "64", "--d-sae", "256", "--k", "8", "--batch-size", "256", "--train-steps", "3", "--repeats", "1"],
        "gpu": ["--tokens", "8192", "--d-in", "256", "--d-sae", "2048", "--k", "16", "--batch-size", "1024", "--steps", "4", "--repeats", "1"],
    },
    "small": {
        "extract.py": ["--rss-multiples", "1,4"],
        "train.py": [],
        "interpret.py": [],
        "scaling.py": [],
        "gpu": [],
    },
    "full": {
        "extract.py": ["--repeats", "5", "--rss-multiples", "1,4,16"],
        "train.py": ["--repeats", "5", "--steps", "8"],
        "interpret.py": ["--repeats", "7"],
        "scaling.py": ["--repeats", "3"],
        "gpu": ["--repeats", "5", "--steps", "20", "--tokens", "131072", "--d-in", "2304", "--d-sae", "36864", "--k", "64", "--batch-size", "4096"],
    },
}
SCRIPTS = ("extract.py", "train.py", "interpret.py", "scaling.py")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="workload size (default: %(default)s)")
    p.add_argument("--only", default="", help="comma list of benchmarks to run: extract,train,interpret,scaling,gpu (default: all)")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="page whose suite block (and each script's section) is rewritten; '' to write nothing (default: %(default)s)")
    p.add_argument("--scaling-md", default="docs/scaling.md", help="page whose generated block scaling.py rewrites; '' for none (default: %(default)s)")
    p.add_argument("--json-dir", default=None, help="keep every script's raw JSON here (default: a temporary folder)")
    p.add_argument("--gpu", choices=("auto", "skip"), default="auto", help="run the GPU train benchmark when CUDA is available (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--gpu-worker", metavar="JSON", default=None, help=argparse.SUPPRESS)
    args, extra = p.parse_known_args(argv)
    args.extra = extra
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if args.gpu_worker:
        return gpu_worker(args.gpu_worker, args.extra)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    json_dir = Path(args.json_dir) if args.json_dir else Path(tempfile.mkdtemp(prefix="saetool-bench-all-"))
    json_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    try:
        for script in SCRIPTS:
            name = script[:-3]
            if only and name not in only:
                continue
            results[name] = run_script(script, args, json_dir)
        if not only or "gpu" in only:
            results["gpu"] = run_gpu(args, json_dir)
    finally:
        if not args.json_dir:
            shutil.rmtree(json_dir, ignore_errors=True)
    if args.dry_run:
        return 0
    import torch  # noqa: F401  (machine_info records its version)

    info = machine_info(packages=("torch", "transformers", "sae-lens", "h5py"))
    body = render(args, argv, info, results, time.perf_counter() - started)
    print(body)
    if args.output_md:
        write_block(Path(args.output_md), body)
        log(f"updated the suite block of {args.output_md}")
    return 0 if all(r["status"] in ("ok", "missing", "skipped") for r in results.values()) else 1


# -- running -------------------------------------------------------------------------------


def script_args(script: str, args: argparse.Namespace, out_json: Path) -> list[str]:
    extra = list(SIZES[args.size].get(script, []))
    if script == "scaling.py":
        extra += ["--output-md", args.scaling_md]
    else:
        extra += ["--output-md", args.output_md]
    return extra + ["--json", str(out_json)]


def run_script(script: str, args: argparse.Namespace, json_dir: Path) -> dict[str, Any]:
    path = HERE / script
    if not path.exists():
        log(f"{script}: not present, skipped")
        return {"status": "missing"}
    out = json_dir / f"{script[:-3]}.json"
    cmd = [sys.executable, str(path), *supported(script_args(script, args, out), path)]
    return run_command(script, cmd, out, args)


def supported(options: list[str], script: Path) -> list[str]:
    """``options`` minus the flags (and their values) the script's ``--help`` does not list,
    so a size preset cannot break a script that lacks one of its knobs."""
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    text = proc.stdout
    out: list[str] = []
    i = 0
    while i < len(options):
        flag = options[i]
        takes_value = i + 1 < len(options) and not options[i + 1].startswith("--")
        if flag in text:
            out += options[i : i + 1 + takes_value]
        else:
            log(f"   ({script.name} has no {flag}; left out)")
        i += 1 + takes_value
    return out


def run_command(label: str, cmd: list[str], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    shown = command_line(cmd[1], cmd[2:])
    log(f"== {label}: {shown}")
    if args.dry_run:
        return {"status": "dry-run", "command": shown}
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ})
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        tail = proc.stderr.strip().splitlines()[-5:]
        log(f"   FAILED ({proc.returncode}) after {wall:.0f} s:\n   " + "\n   ".join(tail))
        return {"status": "failed", "command": shown, "wall_s": wall, "error": " ".join(tail)[-400:]}
    log(f"   done in {wall:.0f} s")
    return {"status": "ok", "command": shown, "wall_s": wall, "data": json.loads(out.read_text())}


def run_gpu(args: argparse.Namespace, json_dir: Path) -> dict[str, Any]:
    if args.gpu == "skip":
        return {"status": "skipped", "why": "--gpu skip"}
    import torch

    if not torch.cuda.is_available():
        log("gpu: no CUDA device here, skipped")
        return {"status": "skipped", "why": "no CUDA device on this machine"}
    out = json_dir / "gpu.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--gpu-worker", str(out), *SIZES[args.size]["gpu"]]
    return run_command("gpu train", cmd, out, args)


# -- the GPU train benchmark (runs in its own process) --------------------------------------


def gpu_worker(out: str, argv: list[str]) -> int:
    """saetool's TopK trainer vs sae-lens's on CUDA, on the same batches, and the GPU's matmul rate."""
    p = argparse.ArgumentParser(prog="run_all.py --gpu-worker")
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--d-in", type=int, default=2304)
    p.add_argument("--d-sae", type=int, default=18432)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-4)
    a = p.parse_args(argv)
    import torch

    from common import Case, run_interleaved
    from saetool.train import TrainConfig, train_on_batches
    from saetool.train.synthetic import sparse_dictionary_data

    dev = torch.device("cuda")
    x, _ = sparse_dictionary_data(a.tokens, a.d_in, a.d_sae, active=a.k, seed=0)
    n = max(1, x.shape[0] // a.batch_size)
    batches = [x[(i % n) * a.batch_size:((i % n) + 1) * a.batch_size].to(dev) for i in range(a.steps)]

    def stamp() -> float:
        torch.cuda.synchronize()
        return time.perf_counter()

    def saetool_run(_state: Any) -> list[float]:
        stamps: list[float] = []
        from train import SAE_LENS_DEAD_WINDOW

        window = SAE_LENS_DEAD_WINDOW * a.batch_size  # as benchmarks/train.py sets it for the CPU comparison
        cfg = TrainConfig(arch="topk", d_sae=a.d_sae, k=a.k, batch_size=a.batch_size, lr=a.lr, encoder_lr_ratio=1.0, seed=0, device="cuda", dead_tokens=window, aux_dead_tokens=window)
        train_on_batches(batches, cfg, steps=a.steps, on_step=lambda info: stamps.append(stamp()))
        return stamps

    cases = [Case("saetool train_on_batches (TopK, sparse path)", saetool_run, teardown=lambda s, r: r[-1] - r[0])]
    try:
        from sae_lens.config import SAETrainerConfig
        from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.training.sae_trainer import SAETrainer

        def lens_setup() -> Any:
            torch.manual_seed(0)
            sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=a.d_in, d_sae=a.d_sae, k=a.k, normalize_activations="none", dtype="float32", device="cuda"))
            cfg = SAETrainerConfig(total_training_samples=a.batch_size * a.steps, train_batch_size_samples=a.batch_size, lr=a.lr, lr_end=a.lr,
                                   lr_scheduler_name="constant", device="cuda", autocast=False)
            return SAETrainer(cfg, sae, data_provider=iter(()))

        def lens_run(trainer: Any) -> list[float]:
            stamps = []
            for b in batches:
                trainer.step(b)
                trainer.n_training_steps += 1
                stamps.append(stamp())
            return stamps

        cases.append(Case("sae-lens SAETrainer.step (TopKTrainingSAE)", lens_run, lens_setup, lambda s, r: r[-1] - r[0]))
    except ImportError:
        pass
    A = torch.randn(a.batch_size, a.d_in, device=dev)
    B = torch.randn(a.d_in, a.d_sae, device=dev)
    C = torch.empty(a.batch_size, a.d_sae, device=dev)

    def matmul_run(_state: Any) -> list[float]:
        first = stamp()
        for _ in range(20):
            torch.mm(A, B, out=C)
        return [first, stamp()]

    cases.append(Case("matmul float32", matmul_run, teardown=lambda s, r: r[-1] - r[0]))
    for case in cases:  # warm-up: kernels, allocator
        case.run(case.setup())
    timings = run_interleaved(cases, a.repeats)
    loop = {name: statistics.median(t.extras) for name, t in timings.items()}
    steps = a.steps - 1
    tps = {name: steps * a.batch_size / s for name, s in loop.items() if not name.startswith("matmul")}
    matmul_flops = 2 * a.batch_size * a.d_in * a.d_sae * 20 / loop["matmul float32"]
    saetool_step = loop[cases[0].name] / steps
    result = {
        "device": torch.cuda.get_device_name(0), "config": vars(a), "tokens_per_second": tps, "matmul_tflops": matmul_flops / 1e12,
        "saetool_over_sae_lens": (tps[cases[0].name] / tps[cases[1].name]) if len(tps) > 1 else None,
        "fraction_of_matmul": (4 * a.batch_size * a.d_in * a.d_sae / saetool_step) / matmul_flops,
    }
    Path(out).write_text(json.dumps(result, indent=2))
    return 0


# -- the table -----------------------------------------------------------------------------


def _row(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any] | None:
    return next((r for r in rows if str(r.get("method", r.get("name", ""))).startswith(prefix)), None)


def _rss_rows(data: dict[str, Any], label: str) -> list[list[str]]:
    rss = sorted(data.get("peak_rss") or [], key=lambda r: r["multiple"])
    one = next((r for r in rss if r["multiple"] == 1), None)
    four = next((r for r in rss if r["multiple"] == 4), None)
    if not (one and four):
        return []
    grew = four["peak_rss_bytes"] - one["peak_rss_bytes"]
    data_grew = (four.get("file_bytes") or four.get("input_bytes") or 0) - (one.get("file_bytes") or one.get("input_bytes") or 0)
    ratio = f"; it grew {grew / data_grew:.2f}x as much as the data" if data_grew > 0 else ""
    return [["memory", f"peak RSS of `saetool {label}`, 4x vs 1x tokens",
             f"{human_bytes(one['peak_rss_bytes'])} → {human_bytes(four['peak_rss_bytes'])} ({four['peak_rss_bytes'] / one['peak_rss_bytes']:.2f}x{ratio})",
             "goal: flat (growth well below the data's)"]]


def extract_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = data.get("rows", [])
    out = [["extract", "saetool overhead over the bare truncated forward", f"{data['saetool_overhead_vs_bare_truncated']:+.1%}", "ratio of medians, same batches; goal ≤ 5%"]]
    sae, lens = _row(rows, "saetool"), _row(rows, "sae-lens CacheActivationsRunner")
    if sae and lens:
        out.append(["extract", "saetool ÷ sae-lens activation caching (tokens/s)", f"{lens['median_s'] / sae['median_s']:.2f}x", "ratio of medians, same windows"])
    return out + _rss_rows(data, "extract")


def train_rows(data: dict[str, Any]) -> list[list[str]]:
    out = []
    if data.get("saetool_over_sae_lens") is not None:
        out.append(["train", "saetool ÷ sae-lens trainer (tokens/s), TopK", f"{data['saetool_over_sae_lens']:.2f}x", f"ratio of medians, same batches; goal ≥ {data.get('goal', 3)}x on CPU"])
    out.append(["train", "saetool's useful FLOP/s ÷ the machine's matmul rate", f"{data['fraction_of_matmul']:.0%}", f"matmul measured in the same run: {data['matmul_gflops']:.1f} GFLOP/s"])
    sparse = sorted((r for r in data.get("rows", {}).values() if r.get("impl") == "saetool" and not r.get("dense")), key=lambda r: r["d_sae"])
    if len(sparse) > 1:
        base = sparse[0]
        costs = ", ".join(f"{r['d_sae'] // base['d_sae']}x: {r['step_s'] / base['step_s']:.2f}x" for r in sparse[1:])
        out.append(["train", "step time vs d_sae (÷ 1x)", costs, f"1x = d_sae {base['d_sae']:,}"])
    return out + _rss_rows(data, "train")


def interpret_rows(data: dict[str, Any]) -> list[list[str]]:
    """interpret.py's ratio (vectorised top-k vs heap per feature), and any other top-level ratio."""
    out = []
    if isinstance(data.get("ratio"), (int, float)):
        out.append(["interpret", "vectorised top-k ÷ heap per feature (speed)", f"{data['ratio']:.2f}x", "ratio of medians, same codes; goal ≥ 10x"])
    for key, value in data.items():
        if key == "ratio":
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and any(w in key for w in ("speedup", "ratio", "_over_")):
            out.append(["interpret", key.replace("_", " "), f"{value:.2f}x", "from interpret.py's JSON"])
    return out or [["interpret", "(no ratio found in interpret.py's JSON)", "", ""]]


def scaling_rows(data: dict[str, Any]) -> list[list[str]]:
    from scaling import summary

    n = data["nproc"]
    out = []
    for e in summary(data):
        out.append(["scaling", f"{e['stage']}: torchrun {n} processes vs 1, wall time", f"{e['speedup']:.2f}x", f"{e['wall_1']:.1f} s → {e['wall_n']:.1f} s, whole command"])
        if "loop_speedup" in e:
            out.append(["scaling", f"train: trainer loop, {n} processes vs 1", f"{e['loop_speedup']:.2f}x", "tokens/s from the training records"])
    return out


def gpu_rows(data: dict[str, Any]) -> list[list[str]]:
    out = []
    if data.get("saetool_over_sae_lens") is not None:
        out.append(["train (GPU)", f"saetool ÷ sae-lens trainer (tokens/s) on {data['device']}", f"{data['saetool_over_sae_lens']:.2f}x", "ratio of medians, same batches"])
    out.append(["train (GPU)", f"saetool's useful FLOP/s ÷ matmul rate on {data['device']}", f"{data['fraction_of_matmul']:.0%}", f"matmul: {data['matmul_tflops']:.1f} TFLOP/s float32, same run"])
    return out


ROWS: dict[str, Callable[[dict[str, Any]], list[list[str]]]] = {
    "extract": extract_rows, "train": train_rows, "interpret": interpret_rows, "scaling": scaling_rows, "gpu": gpu_rows,
}


def render(args: argparse.Namespace, argv: list[str], info: dict[str, Any], results: dict[str, dict[str, Any]], wall: float) -> str:
    rows: list[list[str]] = []
    for name, res in results.items():
        if res["status"] == "ok":
            try:
                rows.extend(ROWS[name](res["data"]))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                rows.append([name, f"(could not read its JSON: {type(exc).__name__}: {exc})", "", ""])
        elif res["status"] == "missing":
            rows.append([name, f"skipped: benchmarks/{name}.py is not present", "", ""])
        elif res["status"] == "skipped":
            rows.append(["train (GPU)" if name == "gpu" else name, f"skipped: {res['why']}", "", "rerun on a machine with a GPU"])
        else:
            rows.append([name, f"FAILED: {res.get('error', '')}", "", ""])
    size_note = {
        "tiny": "**size `tiny`: a smoke run that proves the suite works; the figures are not meaningful.**",
        "small": "size `small` (each script's defaults).",
        "full": "size `full`.",
    }[args.size]
    load = info.get("load_average")
    return "\n".join([
        "## Summary",
        "",
        f"_Written by `benchmarks/run_all.py` on {info['date']} in {wall / 60:.0f} min; {size_note}_ "
        f"Reproduce: `{command_line(__file__, argv)}`. Each figure is a ratio of measurements taken side by side in one "
        "script run; the sections below have the details, and the exact command of each.",
        "",
        f"Machine: {machine_line(info)}. Load average at the end: {', '.join(f'{v:.2f}' for v in load or ())} "
        "(above the core count means other processes competed for the cores).",
        "",
        markdown_table(["benchmark", "figure", "value", "how"], rows, "llrl"),
    ])


def write_block(path: Path, body: str) -> None:
    """Replace the suite block; a missing block goes before the first ``## `` section."""
    text = path.read_text() if path.exists() else DOC_HEADER
    block = f"{BEGIN}\n{body.strip()}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block.rstrip("\n") + rest.split(END, 1)[1]
    else:
        lines = text.splitlines(keepends=True)
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        text = "".join(lines[:at]) + ("" if not lines[:at] or lines[at - 1].strip() == "" else "\n") + block + "\n" + "".join(lines[at:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
