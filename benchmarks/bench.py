#!/usr/bin/env python
"""Benchmark ``saetool bench``: the whole suite's wall time, and its probing and
absorption stages against sae-bench's own code on the same inputs.

1. The whole suite (core, stability, probing, absorption, autointerp) through
   the Python API behind ``saetool bench``, on the given SAE (the quick start's
   ``runs/sae.h5`` by default) and its random floor, with the run's default sizes
   unless ``--option`` says otherwise: total wall time and each eval's seconds.
   Goal: under 10 minutes for a 135M model on 2 CPU cores.
2. Where sae-bench is installed (``pip install --no-deps sae-bench==0.6.0
   scikit-learn``): the parts of sae-bench that run here, on exactly the inputs
   saetool's stage gets, timed side by side (interleaved repeats, medians):
   sparse probing's top-k selection + scikit-learn probes for every task and k
   (vs ``probe_accuracies``), and absorption's per-word calculation
   (``FeatureAbsorptionCalculator`` served the activations by a stand-in model,
   vs ``word_absorption``). The model passes that produce those inputs are
   shared and not timed here (sae-bench cannot run SmolLM2 through
   TransformerLens's model list).

    .venv/bin/python benchmarks/bench.py --sae runs/sae.h5 --acts runs/acts.h5   # updates docs/benchmarks.md
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

from common import Case, command_line, log, machine_info, machine_line, markdown_table, median, run_interleaved, set_offline_env, update_section  # noqa: E402


def whole_suite(args: argparse.Namespace, out: Path) -> tuple[float, float, Any, Any]:
    """Wall and process CPU seconds of the whole suite (the CPU time counts this process's threads
    only, so it does not grow when other processes share the cores), the results and the config."""
    from saetool.bench.api import run_bench
    from saetool.bench.config import BenchConfig, parse_options

    config = BenchConfig(num_tokens=args.num_tokens, options=parse_options(args.option))
    start, cpu = time.perf_counter(), time.process_time()
    res = run_bench([args.sae], config, out, acts=args.acts, overwrite=True, progress=False)
    return time.perf_counter() - start, time.process_time() - cpu, res, config


def stage_cases(args: argparse.Namespace, config: Any) -> tuple[list[Case], dict[str, Any]]:
    """Side-by-side cases for the stages sae-bench can run, on shared inputs."""
    import torch
    import sae_bench.evals.absorption.feature_absorption_calculator as fa
    import sae_bench.evals.sparse_probing.probe_training as pt

    from saetool.bench.absorption import AbsorptionEval, AbsorptionOptions, ground_truth, main_latents, word_activations, word_absorption
    from saetool.bench.base import eval_options
    from saetool.bench.probe_data import BbcNewsTopics
    from saetool.bench.probing import ProbingEval, model_activations, ordinary_tokens, pooled_latents, probe_accuracies, split_texts, tasks
    from saetool.models.registry import load_model
    from saetool.sae.io import load_sae

    sae = load_sae(args.sae)
    model = load_model(sae.cfg.model or "smollm2-135m")
    popts = eval_options(ProbingEval(), config.options.get("probing", {}))
    texts, labels, train = split_texts(list(BbcNewsTopics().examples()), popts.per_class, popts.test_fraction, config.seed)
    pooled = pooled_latents(sae, ordinary_tokens(model_activations(model, sae.cfg.hook, texts, popts.context, popts.batch_size), popts.max_norm_ratio))
    task_list = tasks(labels, train, config.seed)
    ks = [k for k in popts.ks if k <= sae.cfg.d_sae]

    def saebench_probing(_: Any) -> list[float]:
        accs = []
        for _, tr_pos, tr_neg, te_pos, te_neg in task_list:
            x_tr, x_te = pooled[tr_pos + tr_neg].float(), pooled[te_pos + te_neg].float()
            y_tr = torch.tensor([1] * len(tr_pos) + [0] * len(tr_neg), dtype=torch.int)
            y_te = torch.tensor([1] * len(te_pos) + [0] * len(te_neg), dtype=torch.int)
            for k in ks:
                mask = pt.get_top_k_mean_diff_mask(x_tr, y_tr, k)
                accs.append(pt.train_sklearn_probe(pt.apply_topk_mask_reduce_dim(x_tr, mask), y_tr, pt.apply_topk_mask_reduce_dim(x_te, mask), y_te)[1])
        return accs

    aopts: AbsorptionOptions = eval_options(AbsorptionEval(), config.options.get("absorption", {}))
    data = word_activations(model, sae.cfg.hook, aopts, config.seed)
    truth = ground_truth(data, aopts)
    with torch.no_grad():
        codes = sae.encode(data.x)
    te = ~data.train
    letters = []
    for c in range(26):  # every letter with test words: the timing compares the computation, not the filters
        if not int((te & (data.letters == c)).sum()) or not int((data.train & (data.letters == c)).sum()):
            continue
        main, _ = main_latents(codes[data.train], data.letters[data.train] == c, aopts)
        rows = torch.nonzero(te & (data.letters == c)).flatten()
        letters.append((c, main, rows))

    class RowsModel:
        def to_tokens(self, text: str) -> Any:
            return torch.zeros(1, 3, dtype=torch.long)

        def run_with_cache(self, prompts: list[str], names_filter: list[str]) -> Any:
            acts = torch.zeros(len(prompts), 3, data.x.shape[1])
            acts[:, -2] = data.x[[int(p.rstrip(":").split()[-1][1:]) for p in prompts]]
            return None, {names_filter[0]: acts}

    calc = fa.FeatureAbsorptionCalculator(RowsModel(), icl_word_list=["x1", "x2"], max_icl_examples=0, batch_size=aopts.batch_size)

    def saebench_absorption(_: Any) -> int:
        n = 0
        for c, main, rows in letters:
            res = calc.calculate_absorption(sae, [f"w{int(i)}" for i in rows], truth.directions[c], main, layer=0, show_progress=False)
            n += sum(r.is_full_absorption for r in res.word_results)
        return n

    def saetool_absorption(_: Any) -> int:
        n = 0
        with torch.no_grad():
            for c, main, rows in letters:
                full, _ = word_absorption(sae.encode(data.x[rows]), data.x[rows], sae.W_dec.detach(), truth.directions[c], main, aopts)
                n += int(full.sum())
        return n

    cases = [
        Case("probing: saetool probe_accuracies", lambda _: probe_accuracies(pooled, task_list, ks, popts.C)),
        Case("probing: sae-bench mask + scikit-learn probes", saebench_probing),
        Case("absorption: saetool word_absorption", saetool_absorption),
        Case("absorption: sae-bench FeatureAbsorptionCalculator", saebench_absorption),
    ]
    sizes = {"tasks": len(task_list), "ks": ks, "texts": len(texts), "words": int(te.sum()), "letters": len(letters)}
    return cases, sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sae", default="runs/sae.h5", help="SAE to bench (default: the quick start's)")
    parser.add_argument("--acts", default="runs/acts.h5", help="activations artifact (default: the quick start's)")
    parser.add_argument("--num-tokens", type=int, default=4096)
    parser.add_argument("--option", "-O", action="append", default=[], help="EVAL.KEY=VALUE, as saetool bench -O")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-stages", action="store_true", help="time the whole suite only (skip the side-by-side stages against sae-bench)")
    parser.add_argument("--output-md", default="docs/benchmarks.md", help="'' to leave the docs alone")
    parser.add_argument("--json", default=None, help="write raw numbers here ('-' for stdout)")
    args = parser.parse_args(argv)
    set_offline_env()
    for p in (args.sae, args.acts):
        if not Path(p).exists():
            parser.error(f"{p} does not exist: run the README's quick start first, or pass --sae and --acts")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="saetool-bench-bm-") as tmp:
        wall, cpu, res, config = whole_suite(args, Path(tmp) / "bench.h5")
    load_end = os.getloadavg()
    per_eval = {ev: sum(r.seconds for (s, e), r in res.results.items() if e == ev) for ev in res.evals}
    log(f"whole suite: {wall:.1f} s wall, {cpu:.1f} s CPU ({', '.join(f'{k} {v:.1f} s' for k, v in per_eval.items())}); load {load_start[0]:.1f} -> {load_end[0]:.1f}")
    timings, sizes = {}, {}
    try:
        import sae_bench  # noqa: F401
    except ImportError:
        log("sae-bench is not installed: the side-by-side stages are skipped")
    else:
        if args.no_stages:
            log("--no-stages: the side-by-side stages are skipped")
    if not args.no_stages and "sae_bench" in sys.modules:
        cases, sizes = stage_cases(args, config)
        timings = run_interleaved(cases, args.repeats)
    info = machine_info(("torch", "scikit-learn", "sae-bench"))
    raw = {"results": res.to_json()["results"], "wall_s": wall, "cpu_s": cpu, "load_start": load_start, "load_end": load_end, "per_eval_s": per_eval, "stages": {k: t.seconds for k, t in timings.items()}, "sizes": sizes, "machine": info}
    if args.json:
        text = json.dumps(raw, indent=2, default=str)
        print(text) if args.json == "-" else Path(args.json).write_text(text + "\n")
    if args.output_md:
        rows = [(ev, f"{s:.1f}") for ev, s in per_eval.items()] + [("**whole suite (wall, incl. loading)**", f"**{wall:.1f}**"),
                                                                   ("**whole suite (process CPU time)**", f"**{cpu:.1f}**")]
        import torch

        cores = os.cpu_count() or 2
        threads = max(1, min(torch.get_num_threads(), cores))
        body = [
            f"The whole `saetool bench` suite on one SAE (`{args.sae}`, with its random floor) and `{args.acts}`, "
            f"`--num-tokens {args.num_tokens}{''.join(' -O ' + o for o in args.option)}`; "
            f"goal: under 10 minutes (600 s) for a 135M model on 2 CPU cores: {wall:.0f} s of wall time "
            f"({'meets it' if wall < 600 else 'misses it'}) and {cpu:.0f} s of process CPU time "
            f"over {threads} compute thread{'s' if threads > 1 else ''} ({cpu / threads:.0f} s each: about the wall time with {threads} idle core{'s' if threads > 1 else ''}, "
            f"{'meets it' if cpu / threads < 600 else 'misses it'}; spinning OpenMP threads inflate the CPU time when other processes hold the cores). "
            f"Load average (1 min) {load_start[0]:.1f} at the start and {load_end[0]:.1f} at the end on {cores} cores: "
            + ("other processes competed for the cores, so the wall time overstates the suite's own cost." if max(load_start[0], load_end[0]) > cores else "the machine was quiet enough for the wall time to stand."),
            "",
            markdown_table(["eval", "seconds (SAE + floor)"], rows, "lr"),
        ]
        if timings:
            names = list(timings)
            med = {k: median(t.seconds) for k, t in timings.items()}
            stage_rows = [(k, f"{med[k]:.3f}", f"{max(t.interference):.0%}") for k, t in timings.items()]
            body += ["", f"The stages sae-bench can run here, on the same inputs ({sizes['tasks']} probing tasks x k in {sizes['ks']}; "
                         f"{sizes['words']} test words over {sizes['letters']} letters), {args.repeats} interleaved repeats, medians:", "",
                     markdown_table(["stage", "median s", "max others' CPU share"], stage_rows, "lrr"), "",
                     f"saetool's probing stage takes {med[names[0]] / med[names[1]]:.2f}x sae-bench's time; its absorption stage "
                     f"{med[names[2]] / med[names[3]]:.2f}x. sae-bench's other evals load models through TransformerLens's model "
                     "list (SmolLM2 is not in it) or hub datasets, so they cannot run here."]
        body += ["", f"Machine: {machine_line(info)}; {info['date']}.", "", "Reproduce:", "", "```bash",
                 command_line(__file__, argv if argv is not None else sys.argv[1:]), "```"]
        update_section(args.output_md, "## bench", "\n".join(body))
        log(f"wrote the bench section of {args.output_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
