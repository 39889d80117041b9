#!/usr/bin/env python
"""Benchmark SAE quality for the training defaults: held-out FVU over a grid of
learning rate x schedule at several budgets and widths, dictionary recovery on
synthetic data, and wall time to a held-out explained variance vs sae-lens.

Three parts, in one run:

1. **Grid on real activations.** TopK SAEs (k ``--k``) at widths ``--widths``
   x d_model and budgets ``--budgets`` steps of ``--batch-size`` rows, trained
   with ``saetool.train.train_on_batches`` at every learning rate in
   ``--lr-multipliers`` x saetool's default learning rate for that width and
   budget (the budget factor included) and every schedule in ``--schedules`` (other settings: saetool's defaults),
   and once with saetool's former defaults (the input not centred: ``apply_b_dec_to_input=False``). Each SAE is
   scored on held-out rows: the last ``--heldout-rows`` rows of the activation
   file, whole sequences the SAE never trained on (it trains on the first
   ``--train-rows`` rows). FVU = squared error / total variance around the
   held-out mean (= 1 - explained variance, what ``saetool evaluate`` reports),
   on the ordinary rows: without the massive-activation ones (norm above 10x
   the median, ``evaluate``'s rule), which otherwise dominate it; all rows too.
   A cell passes when the defaults (no ``lr``, no schedule given) are within
   ``--tolerance`` of the best FVU in that cell.
2. **Grid on synthetic data** (``saetool.train.synthetic.sparse_dictionary_data``:
   ``--syn-features`` unit directions in ``--syn-d`` dimensions, about
   ``--syn-active`` active per token): the same grid at the same budgets and
   widths (``--widths`` x ``--syn-d``), with the mean max cosine of the true
   directions to the learned decoder rows.
3. **Time to quality.** saetool's defaults vs sae-lens's (``TopKTrainingSAE``
   and ``SAETrainer`` with their default settings: lr 3e-4 constant, no warmup,
   no input normalisation), both TopK with the same width, k and batches:
   wall seconds of training until held-out explained variance reaches
   ``--ev-goal`` (held-out EV is measured every ``--eval-every`` steps; that time
   is not counted). saetool runs first; sae-lens is then stopped once its training time passes ``--ttq-cap-factor`` x saetool's, so
   the run either measures sae-lens's time or shows the speed-up is at least
   the cap.

Run from the repository root:

    .venv/bin/python benchmarks/train_quality.py                       # extracts the activations itself
    .venv/bin/python benchmarks/train_quality.py --activations acts.h5  # saetool extract --layers 15 -n 73728 -o acts.h5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from saetool.artifacts.norms import DEFAULT_MAX_NORM_RATIO  # noqa: E402

from common import command_line, log, machine_info, machine_line, markdown_table, run_in_temp_dir, set_offline_env, update_section  # noqa: E402

SECTION = "## train quality"
DEFAULT = "defaults"
DATA_LABELS = {"smollm2-135m": "SmolLM2", "gemma3-270m": "Gemma 3"}  # the grid's 'data' column for the embedded models (others: the model's name)
SAE_LENS = "sae-lens defaults"  # the optional reference column (--sae-lens-column)
FORMER = "former: uncentred"  # saetool's defaults before the encoder subtracted b_dec from its input


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", default=None, help="activations artifact (first hook); default: extract --extract-tokens rows of SmolLM2 layer 15 into a temp folder")
    p.add_argument("--extract-tokens", type=int, default=73728, help="rows to extract without --activations (default: %(default)s)")
    p.add_argument("--train-rows", type=int, default=65536, help="training rows: the file's first rows (default: %(default)s)")
    p.add_argument("--heldout-rows", type=int, default=8192, help="held-out rows: the file's last rows (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1024, help="rows per step, every run (default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="TopK k on real activations (default: %(default)s)")
    p.add_argument("--budgets", default="64,256,1024", help="training steps (default: %(default)s)")
    p.add_argument("--widths", default="4,16", help="d_sae as multiples of d_model (default: %(default)s)")
    p.add_argument("--lr-multipliers", default="0.5,1,2,4", help="learning rates as multiples of the default for the width (default: %(default)s)")
    p.add_argument("--schedules", default="wsd,cosine,constant", help="(default: %(default)s)")
    p.add_argument("--full-grid", action="store_true", help="every lr multiplier with every schedule (default: the multipliers with wsd, the other schedules at 1x)")
    p.add_argument("--section", default=SECTION, help="the markdown section to rewrite (default: %(default)s)")
    p.add_argument("--tolerance", type=float, default=0.05, help="the defaults pass a cell within this relative margin of its best FVU (default: %(default)s)")
    p.add_argument("--syn-d", type=int, default=64, help="synthetic data: dimensions (default: %(default)s)")
    p.add_argument("--syn-features", type=int, default=256, help="synthetic data: true features (default: %(default)s; d_sae: --widths x --syn-d)")
    p.add_argument("--syn-active", type=float, default=5.0, help="synthetic data: mean active features per token (default: %(default)s)")
    p.add_argument("--syn-k", type=int, default=8, help="synthetic data: TopK k (default: %(default)s)")
    p.add_argument("--syn-batch-size", type=int, default=4096, help="synthetic data: rows per step (default: %(default)s)")
    p.add_argument("--ev-goal", type=float, default=0.8, help="time to quality: held-out explained variance to reach (default: %(default)s)")
    p.add_argument("--ttq-width", type=int, default=4, help="time to quality: d_sae as a multiple of d_model (default: %(default)s)")
    p.add_argument("--ttq-max-steps", type=int, default=1024, help="time to quality: saetool's longest budget (default: %(default)s)")
    p.add_argument("--ttq-cap-factor", type=float, default=5.0, help="time to quality: stop sae-lens once its training time passes this x saetool's (default: %(default)s)")
    p.add_argument("--ttq-lens-max-steps", type=int, default=100000, help="time to quality: sae-lens's step limit (default: %(default)s)")
    p.add_argument("--ttq-start-steps", type=int, default=16, help="time to quality: saetool's first budget (default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=16, help="time to quality: steps between held-out evaluations (default: %(default)s)")
    p.add_argument("--train-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig setting for every run of the grid, the defaults' run included (repeatable; e.g. aux_coeff=0.03125)")
    p.add_argument("--sae-lens-column", action="store_true", help="the grid: also train sae-lens's TopK with its defaults in every cell (a column, not a candidate for 'best')")
    p.add_argument("--skip", default="", help="comma list of parts to leave out: real,synthetic,ttq")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose section is rewritten; '' to skip (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the raw numbers as JSON to PATH")
    p.add_argument("--tmp-dir", default=None, help="where extracted activations go (default: the system temp folder)")
    args = p.parse_args(argv)
    args.options = train_options(args.train_option, p)
    return args


def train_options(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as TrainConfig settings (values read as JSON, else kept as text)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--train-option {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


# -- data -----------------------------------------------------------------------------


def load_real(args, tmp: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(train rows, held-out rows, description): the first and last rows of the file."""
    import h5py
    import torch

    path = args.activations
    if path is None:
        path = str(tmp / "acts.h5")
        cmd = [sys.executable, "-m", "saetool", "extract", "--layers", "15", "-n", str(args.extract_tokens), "-o", path, "--quiet"]
        log("extracting: " + " ".join(cmd[2:]))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with h5py.File(path, "r") as fh:
        hooks = json.loads(fh.attrs["hooks"])
        ds = fh[f"activations/{hooks[0]}"]
        n = int(ds.shape[0])
        if n < args.train_rows + args.heldout_rows:
            raise SystemExit(f"{path} has {n} rows; need --train-rows + --heldout-rows = {args.train_rows + args.heldout_rows}")
        train = torch.from_numpy(ds[: args.train_rows].astype("float32"))
        held = torch.from_numpy(ds[n - args.heldout_rows :].astype("float32"))
        settings = json.loads(fh.attrs.get("config", "{}"))
        info = {"kind": "real", "path": str(path), "model": str(fh.attrs.get("model", "?")), "hook": hooks[0], "rows": n,
                "context_size": int(fh.attrs.get("context_size", 0)), "corpus": str(settings.get("corpus", "?"))}
    info["label"] = DATA_LABELS.get(info["model"], info["model"])
    return train, held, info


def batches(x, batch_size: int, seed: int = 0) -> Iterator[Any]:
    """Endless batches of ``x``: a fresh random permutation every epoch."""
    import torch

    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0] - batch_size + 1, batch_size):
            yield x[perm[i : i + batch_size]]


def heldout_scores(encode: Callable[[Any], Any], decode: Callable[[Any], Any], held, d_sae: int) -> dict[str, float]:
    """FVU on the ordinary held-out rows (``fvu``: the figure the grid judges),
    on all of them (``fvu_all``), how many rows are massive, L0 and the fraction
    of features never active on the held-out rows. A row is massive when its
    distance from the median held-out row exceeds saetool's default
    ``--max-norm-ratio`` x the median distance (the rule ``evaluate`` reports
    "without massive" by): the few such rows of SmolLM2 and Gemma 3 hold most
    of a held-out set's variance, so the FVU of all rows mostly measures them
    (docs/tutorial.md)."""
    import torch
    from saetool.artifacts.norms import NormFilter

    keep = NormFilter.from_rows(held, DEFAULT_MAX_NORM_RATIO).keep(held)
    means = {"all": held.double().mean(0), "ordinary": held[keep].double().mean(0)}
    sq = {"all": 0.0, "ordinary": 0.0}
    var = {"all": 0.0, "ordinary": 0.0}
    l0 = 0.0
    fired = torch.zeros(d_sae, dtype=torch.bool)
    with torch.no_grad():
        for i in range(0, held.shape[0], 1024):
            x = held[i : i + 1024]
            f = encode(x)
            err = (decode(f).double() - x.double()).pow(2).sum(1)
            ordinary = keep[i : i + 1024]
            for part, rows in (("all", slice(None)), ("ordinary", ordinary)):
                sq[part] += float(err[rows].sum())
                var[part] += float((x[rows].double() - means[part]).pow(2).sum())
            active = f != 0
            l0 += float(active.sum())
            fired |= active.any(0)
    return {"fvu": sq["ordinary"] / var["ordinary"], "fvu_all": sq["all"] / var["all"], "massive": int((~keep).sum()),
            "l0": l0 / held.shape[0], "never_fired": float((~fired).double().mean())}


def mean_max_cosine(W_dec, dictionary) -> float:
    """For every true direction, the best cosine to a learned decoder row; the mean."""
    import torch

    dec = torch.nn.functional.normalize(W_dec.detach().float(), dim=1)
    return float((dictionary.float() @ dec.t()).max(1).values.mean())


# -- the grid -------------------------------------------------------------------------


def grid_configs(args) -> list[tuple[str, float | None, str | None, dict[str, Any]]]:
    """(label, lr multiplier or None, schedule or None, other settings) for every run of
    a cell; the defaults first. Every multiplier with every schedule (``--full-grid``),
    or every multiplier with wsd plus every other schedule at 1x; then saetool's former
    defaults (the encoder's input not centred: ``apply_b_dec_to_input=False``)."""
    out: list[tuple[str, float | None, str | None, dict[str, Any]]] = [(DEFAULT, None, None, {})]
    for schedule in args.schedules.split(","):
        for m in floats(args.lr_multipliers):
            if (m == 1 and schedule == "wsd") or not (args.full_grid or schedule == "wsd" or m == 1):
                continue
            out.append((f"{m:g}x lr, {schedule}", m, schedule, {}))
    out.append((FORMER, None, None, {"apply_b_dec_to_input": False}))
    return out


def topk_config(d_in: int, d_sae: int, k: int, steps: int, batch_size: int, multiplier: float | None, schedule: str | None, options: dict[str, Any] | None = None):
    """The TrainConfig of one grid run: saetool's TopK defaults but for ``multiplier`` x the default
    rate for this width and budget, ``schedule`` and ``options`` (``None``: the default; ``arch`` in
    ``options``: a TopK variant a benchmark registered, whose default rates are TopK's)."""
    from saetool.train.architectures import get_architecture
    from saetool.train import TrainConfig

    kw: dict[str, Any] = {}
    if multiplier is not None:
        kw["lr"] = multiplier * get_architecture("topk").lr_for(d_sae, steps, d_in=d_in)
    if schedule is not None:
        kw["lr_schedule"] = schedule
    options = dict(options or {})
    return TrainConfig(arch=options.pop("arch", "topk"), d_sae=d_sae, k=k, batch_size=batch_size, seed=0, **{**options, **kw})


def train_one(x_train, d_sae: int, k: int, steps: int, batch_size: int, multiplier: float | None, schedule: str | None, options: dict[str, Any] | None = None):
    from saetool.train import train_on_batches

    config = topk_config(int(x_train.shape[1]), d_sae, k, steps, batch_size, multiplier, schedule, options)
    started = time.perf_counter()
    result = train_on_batches(batches(x_train, batch_size), config, steps=steps)
    return result, time.perf_counter() - started


def run_grid(name: str, x_train, held, widths: list[int], args, *, k: int, batch_size: int, dictionary=None) -> list[dict[str, Any]]:
    d_in = int(x_train.shape[1])
    rows = []
    for d_sae in widths:
        for steps in ints(args.budgets):
            cell = []
            for label, m, schedule, settings in grid_configs(args):
                result, seconds = train_one(x_train, d_sae, k, steps, batch_size, m, schedule, {**args.options, **settings})
                sae = result.sae
                scores = heldout_scores(sae.encode, sae.decode, held, d_sae)
                if dictionary is not None:
                    scores["mmcs"] = mean_max_cosine(sae.W_dec, dictionary)
                cell.append({"label": label, "lr": result.training["lr"], "schedule": result.config.lr_schedule, "seconds": seconds, **scores})
            best = min(cell, key=lambda r: r["fvu"])
            best_grid = min((r for r in cell if r["label"] != FORMER), key=lambda r: r["fvu"])  # the lr x schedule grid alone
            if args.sae_lens_column:  # after 'best': a reference, not one of saetool's settings
                lens, seconds = train_sae_lens(x_train, d_sae, k, steps, batch_size)
                scores = heldout_scores(lens.encode, lens.decode, held, d_sae)
                if dictionary is not None:
                    scores["mmcs"] = mean_max_cosine(lens.W_dec, dictionary)
                cell.append({"label": SAE_LENS, "lr": 3e-4, "schedule": "constant", "seconds": seconds, **scores})
            default = cell[0]
            row = {"data": name, "d_sae": d_sae, "width": d_sae / d_in, "steps": steps, "runs": cell, "best": best, "default": default,
                   "ratio": default["fvu"] / best["fvu"], "passed": default["fvu"] <= best["fvu"] * (1 + args.tolerance),
                   "best_grid": best_grid, "passed_grid": default["fvu"] <= best_grid["fvu"] * (1 + args.tolerance)}
            log("cell " + json.dumps({"data": name, "d_sae": d_sae, "steps": steps, "runs": cell}))  # every run's figures, should the run be cut short
            log(f"{name} d_sae {d_sae} {steps} steps: default FVU {default['fvu']:.4f} (lr {default['lr']:.2e}), best {best['fvu']:.4f} ({best['label']}), "
                + ("pass" if row["passed"] else "FAIL"))
            rows.append(row)
    return rows


# -- time to quality ------------------------------------------------------------------


def time_to_quality_saetool(x_train, held, d_sae: int, args) -> dict[str, Any]:
    """Shortest budget (doubling, then halfway back) at which a run with saetool's
    defaults ends at held-out EV >= goal: a decaying schedule is judged where it
    ends, as a user would run it. Wall time of that one run."""
    tried: list[dict[str, Any]] = []

    def attempt(steps: int) -> dict[str, Any]:
        result, seconds = train_one(x_train, d_sae, args.k, steps, args.batch_size, None, None)
        scores = heldout_scores(result.sae.encode, result.sae.decode, held, d_sae)
        ev = 1 - scores["fvu_all"]
        row = {"steps": steps, "seconds": seconds, "ev": ev, "ev_ordinary": 1 - scores["fvu"], "lr": result.training["lr"]}
        log(f"time to quality, saetool defaults: {steps} steps, {seconds:.1f} s, held-out EV {ev:.3f}")
        tried.append(row)
        return row

    steps, below = args.ttq_start_steps, 0
    while steps <= args.ttq_max_steps:
        row = attempt(steps)
        if row["ev"] >= args.ev_goal:
            if below and steps - below > 8:
                mid = attempt((below + steps) // 2)
                if mid["ev"] >= args.ev_goal:
                    row = mid
            return {"reached": True, "steps": row["steps"], "seconds": row["seconds"], "ev": row["ev"], "ev_ordinary": row["ev_ordinary"], "tried": tried}
        below, steps = steps, steps * 2
    return {"reached": False, "steps": None, "seconds": None, "tried": tried}


def sae_lens_trainer(d_in: int, d_sae: int, k: int, steps: int, batch_size: int) -> tuple[Any, Any]:
    """sae-lens's ``TopKTrainingSAE`` and ``SAETrainer`` with their default settings
    (lr 3e-4 constant, no warmup, no input normalisation) for a ``steps``-step run;
    the caller feeds it batches with ``trainer.step``."""
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype="float32", device="cpu"))
    lr = SAETrainerConfig.__dataclass_fields__["lr"].default  # 3e-4, constant; lr_end as sae-lens's runner config sets it (unused by a constant schedule)
    cfg = SAETrainerConfig(total_training_samples=batch_size * steps, train_batch_size_samples=batch_size, lr_end=lr / 10, device="cpu", autocast=False)
    return sae, SAETrainer(cfg, sae, data_provider=iter(()))


def train_sae_lens(x_train, d_sae: int, k: int, steps: int, batch_size: int):
    """(sae-lens's SAE after ``steps`` steps of the grid's batches with its defaults, seconds)."""
    import torch

    sae, trainer = sae_lens_trainer(int(x_train.shape[1]), d_sae, k, steps, batch_size)
    stream = batches(x_train, batch_size)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step(next(stream))
        trainer.n_training_steps += 1
    sae.eval()
    return sae, time.perf_counter() - started


def time_to_quality_sae_lens(x_train, held, d_sae: int, args, cap_seconds: float | None) -> dict[str, Any]:
    """sae-lens's TopK SAE and trainer with their defaults (constant lr 3e-4), the
    same batches; held-out EV every --eval-every steps (not timed); stopped once
    its training time passes ``cap_seconds`` (or --ttq-lens-max-steps steps)."""
    max_steps = args.ttq_lens_max_steps
    sae, trainer = sae_lens_trainer(int(x_train.shape[1]), d_sae, args.k, max_steps, args.batch_size)
    stream = batches(x_train, args.batch_size)
    seconds, curve = 0.0, []
    for step in range(1, max_steps + 1):
        batch = next(stream)
        t0 = time.perf_counter()
        trainer.step(batch)
        trainer.n_training_steps += 1
        seconds += time.perf_counter() - t0
        if step % args.eval_every == 0:
            sae.eval()
            scores = heldout_scores(sae.encode, sae.decode, held, d_sae)
            ev = 1 - scores["fvu_all"]
            sae.train()
            curve.append({"steps": step, "seconds": seconds, "ev": ev, "ev_ordinary": 1 - scores["fvu"]})
            log(f"time to quality, sae-lens defaults: {step} steps, {seconds:.1f} s, held-out EV {ev:.3f}")
            if ev >= args.ev_goal:
                return {"reached": True, "steps": step, "seconds": seconds, "ev": ev, "ev_ordinary": curve[-1]["ev_ordinary"], "curve": curve}
            if cap_seconds is not None and seconds > cap_seconds:
                log(f"time to quality, sae-lens defaults: stopped at the cap ({seconds:.1f} s > {cap_seconds:.1f} s), {step} steps, held-out EV {ev:.3f}")
                return {"reached": False, "capped": True, "steps": None, "stopped_steps": step, "seconds": seconds, "ev": ev, "curve": curve}
    return {"reached": False, "capped": False, "steps": None, "stopped_steps": max_steps, "seconds": seconds, "ev": curve[-1]["ev"] if curve else None, "curve": curve}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-train-quality-", args.tmp_dir, lambda folder: run(args, argv, folder))


def run(args: argparse.Namespace, argv: list[str], tmp: Path) -> int:
    set_offline_env()
    os.environ.setdefault("TQDM_DISABLE", "1")
    started = time.perf_counter()
    info = machine_info(packages=("torch", "sae-lens"))
    log(f"machine: {machine_line(info)}")
    skip = set(args.skip.split(","))
    out: dict[str, Any] = {"info": info, "argv": argv, "grid": []}
    if not {"real", "ttq"} <= skip:
        x_train, held, data = load_real(args, tmp)
        out["data"] = data
        d_in = int(x_train.shape[1])
        log(f"real activations: {data['hook']} of {data['model']}, train on the first {len(x_train):,} rows, held out the last {len(held):,}")
        if "real" not in skip:
            out["grid"] += run_grid(data["label"], x_train, held, [w * d_in for w in ints(args.widths)], args, k=args.k, batch_size=args.batch_size)
        if "ttq" not in skip:
            d_sae = args.ttq_width * d_in
            load_before = os.getloadavg()
            ours = time_to_quality_saetool(x_train, held, d_sae, args)
            cap = args.ttq_cap_factor * ours["seconds"] if ours["reached"] else None
            theirs = time_to_quality_sae_lens(x_train, held, d_sae, args, cap)
            out["ttq"] = {"d_sae": d_sae, "saetool": ours, "sae_lens": theirs, "cap_factor": args.ttq_cap_factor, "load_before": load_before, "load_after": os.getloadavg()}
    if "synthetic" not in skip:
        from saetool.train.synthetic import sparse_dictionary_data

        n_train = args.syn_batch_size * 64
        x, dictionary = sparse_dictionary_data(n_train + 8192, args.syn_d, args.syn_features, active=args.syn_active, seed=0)
        out["synthetic"] = {"d": args.syn_d, "features": args.syn_features, "active": args.syn_active, "k": args.syn_k, "rows": n_train}
        widths = [w * args.syn_d for w in ints(args.widths)]
        out["synthetic"]["d_sae"] = widths
        out["grid"] += run_grid("synthetic", x[:n_train], x[n_train:], widths, args, k=args.syn_k, batch_size=args.syn_batch_size, dictionary=dictionary)
    out["seconds"] = time.perf_counter() - started
    info["load_average_after"] = os.getloadavg()
    markdown = summarise(args, argv, out)
    print(markdown)
    if args.output_md:
        update_section(args.output_md, args.section, markdown)
        log(f"updated the '{args.section}' section of {args.output_md}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    log(f"benchmark took {out['seconds']:.0f} s")
    return 0


def summarise(args, argv: list[str], out: dict[str, Any]) -> str:
    from saetool.train.schedules import ENCODER_LR_RATIO, TOPK_LR

    info = out["info"]
    load = lambda la: ", ".join(f"{v:.2f}" for v in la) if la else "?"  # noqa: E731
    lines = [
        f"_Written by `benchmarks/train_quality.py` on {info['date']} in {out['seconds'] / 60:.0f} min; rerun it to refresh this section._",
        "",
        "Reproduce (from the repository root):",
        "",
        "```bash",
        command_line(__file__, argv),
        "```",
        "",
        f"Machine: {machine_line(info)}. Load average (1, 5, 15 min) before: {load(info.get('load_average'))}; after: {load(info.get('load_average_after'))}.",
        "",
    ]
    grid = out["grid"]
    if grid:
        configs = [label for label, *_ in grid_configs(args)] + ([SAE_LENS] if args.sae_lens_column else [])
        data = out.get("data") if "real" not in args.skip.split(",") else None
        massive = next((r["default"]["massive"] for r in grid if r["data"] != "synthetic"), 0)
        lines.append("")
        if data:
            lines[-1] = (
                f"**Held-out FVU** (squared error / variance around the mean, = 1 - explained variance; lower is better) of TopK SAEs on "
                f"`{data['hook']}` of `{data['model']}`: trained on the first {args.train_rows:,} rows of "
                f"`saetool extract --model {data['model']} --hooks {data['hook']} -n {data['rows']}` (corpus `{data['corpus']}`), scored on the last {args.heldout_rows:,} rows (other sequences of the corpus, never trained on) without their "
                f"{massive} massive-activation row{'s' if massive != 1 else ''} (farther than {DEFAULT_MAX_NORM_RATIO:g}x the median distance from the median row, the rule of `evaluate`'s "
                f"\"without massive\" column: a few such rows can hold much of the variance, so FVU over all rows can measure them more than the SAE; all rows in the second table); k {args.k}, "
                f"{args.batch_size:,} rows per step, every other setting saetool's default (training keeps every row). "
            )
        syn = out.get("synthetic")
        if syn:
            sizes = " and ".join(f"{d:,} ({d // syn['d']}x d)" for d in syn["d_sae"])
            lines[-1] += (f"Synthetic: {syn['features']} random unit directions in d={syn['d']}, about {syn['active']:g} active per token "
                          f"(`saetool.train.synthetic`), d_sae {sizes}, k {syn['k']}, {args.syn_batch_size:,} rows per step, "
                          f"trained on {syn['rows']:,} rows, scored on 8,192 others; MMCS = mean over the true directions of the best cosine to a decoder row. ")
        lines[-1] += (f"'defaults' is a run without `lr` or `lr_schedule` (wsd; the decoder's lr = the topk reference {TOPK_LR:g} x sqrt(2^14 / d_sae) x the short-run factor "
                      f"sqrt(256 / steps x s) clamped to [1, 2], s = sqrt(d_sae / (4 d_in)) within [1, 2], the encoder's {ENCODER_LR_RATIO:.3g} x it); 'Nx lr' multiplies both rates. Every run but one centres the encoder's input (subtracts `b_dec`, initialised at the geometric median of the data); '{FORMER}' is saetool's defaults before it did (`apply_b_dec_to_input=False`, the rates as 'defaults'). A cell passes when the defaults are within {args.tolerance:.0%} of its best FVU; 'pass, lr x schedule' compares them with the best of the learning-rate and schedule runs alone (the grid issue 14 names), leaving out '{FORMER}' ('best' and 'defaults ÷ best' count it).")
        if args.sae_lens_column:
            lines[-1] += (f" '{SAE_LENS}': sae-lens {info['packages'].get('sae-lens') or ''}'s `TopKTrainingSAE` + `SAETrainer` with their defaults (lr 3e-4 constant, no warmup, "
                          "no input normalisation) on the same batches, for reference: not a candidate for 'best'.")
        if args.options:
            lines[-1] += " Every run of this grid, 'defaults' included, also sets " + ", ".join(f"`{k}={v}`" for k, v in args.options.items()) + " (`--train-option`): not saetool's defaults."
        lines.append("")
        headers = ["data", "d_sae", "steps"] + configs + ["best", "defaults ÷ best", "pass", "pass, lr x schedule"]
        table = []
        for row in grid:
            by = {r["label"]: r for r in row["runs"]}
            cells = []
            for c in configs:
                r = by[c]
                text = f"{r['fvu']:.3f}"
                if "mmcs" in r:
                    text += f" ({r['mmcs']:.3f})"
                cells.append(f"**{text}**" if r is row["best"] else text)
            table.append([row["data"], f"{row['d_sae']:,} ({row['width']:g}x)", row["steps"], *cells, row["best"]["label"], f"{row['ratio']:.3f}", "yes" if row["passed"] else "**no**",
                          "yes" if row["passed_grid"] else "**no**"])
        lines += [markdown_table(headers, table, "lrr" + "r" * len(configs) + "lrll"), ""]
        never = [FORMER] + ([SAE_LENS] if args.sae_lens_column else [])
        default_rows = [[row["data"], f"{row['d_sae']:,}", row["steps"], f"{row['default']['lr']:.2e}", f"{1 - row['default']['fvu']:.3f}",
                         f"{1 - row['default']['fvu_all']:.3f}", f"{row['default']['l0']:.1f}", f"{row['default']['never_fired']:.1%}",
                         *(f"{next(r for r in row['runs'] if r['label'] == label)['never_fired']:.1%}" for label in never),
                         f"{row['default']['seconds']:.1f}"] for row in grid]
        lines += ["The default runs (held-out EV without and with the massive rows; L0 and never-fired features on all held-out rows; "
                  "seconds of training, not the score; 'former': the former defaults' run" + (", 'sae-lens': sae-lens's defaults' run" if args.sae_lens_column else "") + "):", "",
                  markdown_table(["data", "d_sae", "steps", "default lr", "held-out EV", "EV, all rows", "L0", "never fired", "never fired, former"]
                                 + (["never fired, sae-lens"] if args.sae_lens_column else []) + ["train s"], default_rows, "lrr" + "r" * (6 + len(never))), ""]
        passed, passed_grid = sum(r["passed"] for r in grid), sum(r["passed_grid"] for r in grid)
        lines.append(f"Defaults within {args.tolerance:.0%} of the best: **{passed} of {len(grid)} cells**; of the best learning rate and schedule "
                     f"(the former encoding left out): **{passed_grid} of {len(grid)}**.")
        lines.append("")
    ttq = out.get("ttq")
    if ttq:
        ours, theirs = ttq["saetool"], ttq["sae_lens"]
        fmt = lambda r: (f"{r['seconds']:.1f} s ({r['steps']} steps, EV {r['ev']:.3f}; {r['ev_ordinary']:.3f} without the massive rows)" if r["reached"]  # noqa: E731
                         else f"not reached: stopped after {r['seconds']:.1f} s ({r['stopped_steps']} steps, EV {r['ev']:.3f})" if "stopped_steps" in r else "not reached")
        if ours["reached"] and theirs["reached"]:
            verdict = f"Measured: saetool is **{theirs['seconds'] / ours['seconds']:.1f}x** faster to EV {args.ev_goal:g} (goal: 5x)."
        elif ours["reached"]:
            why = (f"stopped at the cap, {ttq['cap_factor']:g}x saetool's time" if theirs.get("capped") else f"stopped at --ttq-lens-max-steps")
            verdict = (f"sae-lens did not reach EV {args.ev_goal:g}: {why}, after {theirs['stopped_steps']} steps ({theirs['seconds']:.1f} s of training, held-out EV {theirs['ev']:.3f}); "
                       f"saetool reached it in {ours['seconds']:.1f} s, so the speed-up to EV {args.ev_goal:g} is **at least {theirs['seconds'] / ours['seconds']:.1f}x** "
                       "(a lower bound, not a measurement; goal: 5x).")
        else:
            verdict = "saetool's defaults did not reach the goal."
        verdict += f" Load average (1, 5, 15 min) when this part started: {load(ttq.get('load_before'))}; when it ended: {load(ttq.get('load_after'))}."
        tried = ", ".join(f"{t['steps']} steps: EV {t['ev']:.3f} in {t['seconds']:.1f} s" for t in ours["tried"])
        lines += [
            f"**Time to quality**: wall seconds of training until held-out explained variance over all held-out rows (the massive ones included, as issue 14 set "
            f"the goal; the EV without them at that point beside it) reaches {args.ev_goal:g}, TopK d_sae {ttq['d_sae']:,}, k {args.k}, "
            f"{args.batch_size:,} rows per step, the same shuffled batches for both. saetool: default settings at the shortest budget whose final SAE "
            f"reaches the goal (budgets doubling from {args.ttq_start_steps}; tried {tried}; its times include start-up and finalisation, sae-lens's only its steps). sae-lens {info['packages'].get('sae-lens') or ''}: `TopKTrainingSAE` + `SAETrainer` "
            f"with their defaults (lr 3e-4, constant, no warmup, no input normalisation), held-out EV measured every {args.eval_every} steps (not timed), "
            f"stopped once its training time passes {ttq['cap_factor']:g}x saetool's. Both in one process, one after the other.",
            "",
            markdown_table(["trainer", f"time to EV {args.ev_goal:g}"], [["saetool defaults", fmt(ours)], ["sae-lens defaults", fmt(theirs)]], "lr"),
            "",
            verdict,
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
