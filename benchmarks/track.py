#!/usr/bin/env python
"""``saetool track`` on real SmolLM2 layers: how many live features continue to the next layer, and why.

1. Splits BBC News into training documents and held-out documents (every
   tenth article, interleaved over the five categories), and extracts
   ``--num-tokens`` training rows and ``--heldout-tokens`` held-out rows at two
   adjacent residual-stream hooks.
2. For each entry of ``--train-tokens``: trains one SAE per hook in one pass
   (``saetool train --hooks``: TopK and train's defaults, but 2,304 features
   and 512 rows per step unless ``--d-sae`` and ``--batch-size`` say
   otherwise), measures each on the held-out rows (``saetool evaluate``:
   explained variance without and with the massive-activation rows), runs ``track`` with its
   default thresholds on the held-out rows, and reports the shares of the live
   lower-layer features that continue, split, merge, take part in a complex
   event or die, and of the live upper-layer features that are born.
3. Diagnostics, on the same held-out rows: the quartiles of each live
   lower-layer feature's best decoder cosine and best activation correlation
   in the upper layer; two looser matching rules (Laptev et al. 2025's
   predecessor, the best decoder cosine, here when at least 0.5; and a mutual
   best match);
   the **seed control** (``--seed-control``): a second lower-layer SAE trained
   with another seed on the same rows, linked to the first exactly as track
   links two layers -- the share that "continues" between two dictionaries of
   the *same* activations is the ceiling that independently trained SAEs put
   on the cross-layer figure; and the **transfer** check: the lower layer's
   SAE read at the upper layer (explained variance, and how well each live
   feature's activation at layer L correlates with its own activation on the
   same token at layer L+1), which measures how much of the representation
   the model itself carries over, independently of a second dictionary.

Run from the repository root (nice: the machine is shared):

    nice -n 10 .venv/bin/python benchmarks/track.py            # updates docs/benchmarks.md
    nice -n 10 .venv/bin/python benchmarks/track.py --train-tokens 131072,262144,524288 --output-md ''
    nice -n 10 .venv/bin/python benchmarks/track.py --d-sae 0 --batch-size 0   # train's own defaults (4,608 features; the batch for the run's tokens)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import zip_longest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, log, markdown_table, run_in_temp_dir, set_offline_env, update_section  # noqa: E402

SECTION = "## track"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layers", default="14,15", help="two adjacent layers (default: %(default)s)")
    p.add_argument("--num-tokens", type=int, default=40960, help="training rows extracted (default: %(default)s)")
    p.add_argument("--heldout-tokens", type=int, default=8192, help="held-out rows extracted (default: %(default)s)")
    p.add_argument("--train-tokens", default="131072,262144",
                   help="comma list: tokens each SAE is trained on (passes over the training rows), one row of figures each (default: %(default)s)")
    p.add_argument("--d-sae", type=int, default=2304, help="features per SAE (default: %(default)s; 0: train's default, 8 x d_in)")
    p.add_argument("--k", type=int, default=None, help="default: train's (32)")
    p.add_argument("--batch-size", type=int, default=512, help="rows per step (default: %(default)s; 0: train's default for the run's tokens)")
    p.add_argument("--seed-control", action=argparse.BooleanOptionalAction, default=True, help="also train a second lower-layer SAE with another seed")
    p.add_argument("--output-md", default="docs/benchmarks.md")
    p.add_argument("--tmp-dir", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-track-", args.tmp_dir, lambda folder: run(args, argv, folder))


# -- data ------------------------------------------------------------------------------------------------
def split_corpus(folder: Path, every: int = 10) -> tuple[Path, Path]:
    """BBC News as two JSON Lines files: every ``every``-th article (interleaved over the categories) held out."""
    from saetool.corpus.sources import BbcNewsSource

    src = BbcNewsSource()
    per_category = [list(src.documents(c)) for c in src.categories()]
    docs = [d for group in zip_longest(*per_category) for d in group if d]
    paths = folder / "train.jsonl", folder / "heldout.jsonl"
    for path, keep in zip(paths, (lambda i: i % every != every - 1, lambda i: i % every == every - 1)):
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"text": d}) + "\n" for i, d in enumerate(docs) if keep(i))
    return paths


# -- measures --------------------------------------------------------------------------------------------
def pair_figures(a, b, acts: Path, num_tokens: int) -> dict:
    """Live features of ``a`` and ``b`` on ``acts``, and the events between them as ``track`` finds them
    (default thresholds and both thresholds at 0.3), plus the best-match quartiles and two looser matching rules."""
    import numpy as np

    from saetool.artifacts.activations import ActivationsFile
    from saetool.track.api import TrackConfig, live_features
    from saetool.track.link import choose_links, code_chunks, code_stats, decoder_cosine
    from saetool.track.tracker import build_tracks

    cfg = TrackConfig(num_tokens=num_tokens)
    with ActivationsFile(acts) as f:
        stats = code_stats(code_chunks(f, [a, b], num_tokens, cfg.chunk_rows), [a.cfg.d_sae, b.cfg.d_sae])
    la, lb = (live_features(stats.fires[i], stats.sums[i], min_active=cfg.min_active, min_strength=cfg.min_strength) for i in (0, 1))
    cos, corr = decoder_cosine(a, b), stats.correlation(0)
    links = choose_links(0, cos, corr, la, lb, min_cosine=cfg.min_cosine, min_correlation=cfg.min_correlation, min_ratio=cfg.min_ratio)
    _, events = build_tracks([np.nonzero(la)[0], np.nonzero(lb)[0]], [links])
    n_a, n_b = int(la.sum()), int(lb.sum())
    out = {"live": n_a, "live_next": n_b, "width": a.cfg.d_sae}
    for kind in ("continue", "split", "merge", "complex", "death"):
        out[kind] = sum(len(e.sources) for e in events if e.kind == kind) / max(n_a, 1)
    out["birth"] = sum(len(e.targets) for e in events if e.kind == "birth") / max(n_b, 1)
    loose = choose_links(0, cos, corr, la, lb, min_cosine=0.3, min_correlation=0.3, min_ratio=cfg.min_ratio)
    _, loose_events = build_tracks([np.nonzero(la)[0], np.nonzero(lb)[0]], [loose])
    out["loose"] = {kind: sum(len(e.sources) for e in loose_events if e.kind == kind) / max(n_a, 1) for kind in ("continue", "complex", "death")}
    c, r = cos[la][:, lb], corr[la][:, lb]
    best = c.max(1)
    quart = lambda v: [float(x) for x in np.quantile(v, [0.25, 0.5, 0.75])]  # noqa: E731
    out["best_cosine"], out["best_correlation"] = quart(best), quart(r.max(1))
    out["top1_cosine_0.5"] = float((best >= 0.5).mean())
    mutual = c.argmax(0)[c.argmax(1)] == np.arange(len(c))
    out["mutual_cosine_0.5"] = float((mutual & (best >= 0.5)).mean())
    return out


def transfer(a, acts: Path, hook_next: str, num_tokens: int) -> dict:
    """SAE ``a`` (layer L) read at the next hook: explained variance at both, and the correlation of
    each live feature's activation at L with its own activation at L+1 on the same token."""
    import numpy as np
    import torch

    from saetool.artifacts.activations import ActivationsFile
    from saetool.artifacts.norms import DEFAULT_MAX_NORM_RATIO, NormFilter
    from saetool.track.api import TrackConfig, live_features
    from saetool.track.link import code_stats

    cfg = TrackConfig()
    err = [0.0, 0.0]
    with ActivationsFile(acts) as f, torch.inference_mode():
        n = min(f.n_tokens, num_tokens)
        xs = [f.read(h, 0, n, dtype=torch.float32) for h in (a.cfg.hook, hook_next)]
        ordinary = NormFilter.from_rows(xs[0], DEFAULT_MAX_NORM_RATIO).keep(xs[0])  # as evaluate reports explained variance
        xs = [x[ordinary] for x in xs]
        tot = [float(((x - x.mean(0)) ** 2).sum()) for x in xs]

        def chunks():
            for start in range(0, xs[0].shape[0], cfg.chunk_rows):
                rows = [x[start : start + cfg.chunk_rows] for x in xs]
                codes = [a.encode(x) for x in rows]
                for i, (x, c) in enumerate(zip(rows, codes)):
                    err[i] += float(((x - a.decode(c)) ** 2).sum())
                yield codes

        stats = code_stats(chunks(), [a.cfg.d_sae, a.cfg.d_sae])  # the same features at L and at L+1
    live = live_features(stats.fires[0], stats.sums[0], min_active=cfg.min_active, min_strength=cfg.min_strength)
    r = np.diag(stats.correlation(0))[live]
    return {"ev_own": 1 - err[0] / tot[0], "ev_next": 1 - err[1] / tot[1], "self_correlation_median": float(np.median(r)), "self_correlation_0.4": float((r >= 0.4).mean())}


def evaluate(path: Path, acts: Path, num_tokens: int) -> dict:
    from saetool.evaluate.api import EvalConfig, evaluate_sae

    ev = evaluate_sae(path, acts, EvalConfig(use_model=False, num_tokens=num_tokens))
    # Without the massive-activation rows (farther than 10x the median distance from the median row), as docs/tutorial.md advises quoting.
    return {"ev": ev.metrics_ordinary.get("explained_variance", ev.metrics["explained_variance"]), "ev_all_rows": ev.metrics["explained_variance"], "l0": ev.metrics["l0"]}


# -- the run ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace, argv: list[str], folder: Path) -> int:
    set_offline_env()
    from saetool.extract.api import extract_activations
    from saetool.extract.config import ExtractConfig
    from saetool.sae.io import load_sae
    from saetool.track.api import TrackConfig, run_track
    from saetool.train.api import train_sae
    from saetool.train.config import TrainConfig
    from saetool.train.multi import train_saes

    layers = [int(x) for x in args.layers.split(",")]
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    train_docs, heldout_docs = split_corpus(folder)
    acts, heldout = folder / "train.h5", folder / "heldout.h5"
    for docs, n, out in ((train_docs, args.num_tokens, acts), (heldout_docs, args.heldout_tokens, heldout)):
        t0 = time.perf_counter()
        extract_activations(ExtractConfig(model=args.model, corpus=f"files:{docs}", hooks=hooks, num_tokens=n), out, progress=False)
        log(f"extracted {n} rows of {docs.name} at {hooks} in {time.perf_counter() - t0:.0f} s")
    sizes = {k: v for k, v in (("d_sae", args.d_sae), ("k", args.k), ("batch_size", args.batch_size)) if v}
    rows, seeds, transfers = [], [], []
    for n_train in [int(x) for x in args.train_tokens.split(",")]:
        cfg = TrainConfig(arch="topk", num_tokens=n_train, seed=0, **sizes)
        t0 = time.perf_counter()
        result = train_saes(cfg, [acts], hooks, folder / f"set-{n_train}", progress=False)
        paths = [r.path for r in result.results]
        log(f"trained {hooks} on {n_train} tokens in {time.perf_counter() - t0:.0f} s")
        quality = [evaluate(p, heldout, args.heldout_tokens) for p in paths]
        track = run_track(TrackConfig(num_tokens=args.heldout_tokens), paths, activations=heldout, output=folder / f"tracks-{n_train}.h5").summary["layers"]
        saes = [load_sae(p) for p in paths]
        fig = pair_figures(saes[0], saes[1], heldout, args.heldout_tokens)
        assert fig["live"] == track[0]["n_live"] and abs(fig["continue"] - track[0]["continue_fraction"]) < 1e-9, (fig, track[0])
        row = {"train_tokens": n_train, "d_sae": saes[0].cfg.d_sae, "quality": quality, **fig}
        rows.append(row)
        log(f"{layers[0]} -> {layers[1]}: {json.dumps(row)}")
        transfers.append({"train_tokens": n_train, **transfer(saes[0], heldout, hooks[1], args.heldout_tokens)})
        log(f"transfer: {json.dumps(transfers[-1])}")
        if args.seed_control:
            other = folder / f"seed1-{n_train}.h5"
            train_sae(TrainConfig(arch="topk", num_tokens=n_train, seed=1, hook=hooks[0], **sizes), [acts], other, progress=False)
            seeds.append({"train_tokens": n_train, "quality": [evaluate(other, heldout, args.heldout_tokens)], **pair_figures(saes[0], load_sae(other), heldout, args.heldout_tokens)})
            log(f"seed control: {json.dumps(seeds[-1])}")
    text = report(args, argv, layers, rows, seeds, transfers)
    print(text)
    if args.output_md:
        update_section(args.output_md, SECTION, text)
    return 0


def report(args: argparse.Namespace, argv: list[str], layers: list[int], rows: list[dict], seeds: list[dict], transfers: list[dict]) -> str:
    lo, hi = layers
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    q = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
    table = []
    for r in rows:
        evs = " / ".join(f"{x['ev']:.3f}" for x in r["quality"]) + " (" + " / ".join(f"{x['ev_all_rows']:.2f}" for x in r["quality"]) + ")"
        table.append([f"L{lo} -> L{hi}", f"{r['train_tokens']:,}", evs, f"{r['live']} / {r['width']}",
                      pct(r["continue"]), pct(r["split"]), pct(r["merge"]), pct(r["complex"]), pct(r["death"]), pct(r["birth"]),
                      q(r["best_cosine"]), q(r["best_correlation"]), pct(r["top1_cosine_0.5"]), pct(r["mutual_cosine_0.5"])])
    for r in seeds:
        table.append([f"L{lo} seed 0 -> seed 1 (control)", f"{r['train_tokens']:,}", f"{r['quality'][0]['ev']:.3f} ({r['quality'][0]['ev_all_rows']:.2f}), seed 1", f"{r['live']} / {r['width']}",
                      pct(r["continue"]), pct(r["split"]), pct(r["merge"]), pct(r["complex"]), pct(r["death"]), pct(r["birth"]),
                      q(r["best_cosine"]), q(r["best_correlation"]), pct(r["top1_cosine_0.5"]), pct(r["mutual_cosine_0.5"])])
    sizes = ", ".join(f"{k} {v}" for k, v in (("d_sae", args.d_sae), ("k", args.k), ("batch", args.batch_size)) if v) or "train's defaults"
    body = [
        f"`saetool track` on SmolLM2-135M layers {lo} -> {hi} (`hook_resid_post`): SAEs trained by `saetool train --hooks` ({sizes}; TopK) on "
        f"{args.num_tokens:,} rows of BBC News, measured on {args.heldout_tokens:,} rows of held-out articles (every tenth, never trained on); "
        f"`track` with its default thresholds (`--min-cosine 0.5 --min-correlation 0.4 --min-ratio 0.5`). Shares of the live layer-{lo} features "
        f"(born: of the live layer-{hi} features); best match of each live layer-{lo} feature, quartiles 25% / 50% / 75%; "
        "top-1: best decoder cosine at least 0.5 (Laptev et al. 2025's predecessor rule); mutual: also the other's best match.",
        "",
        markdown_table(["pair", "tokens trained", "held-out EV, ordinary rows (all rows)", "live", "continue", "split", "merge", "complex", "die", "born",
                        "best cosine", "best correlation", "top-1 cos >= 0.5", "mutual cos >= 0.5"], table, "llrrrrrrrrllrr"),
        "",
    ]
    for r in rows:
        lo_ = r["loose"]
        body.append(f"- Thresholds lowered to `--min-cosine 0.3 --min-correlation 0.3` ({r['train_tokens']:,} tokens): {pct(lo_['continue'])} continue, "
                    f"{pct(lo_['complex'])} complex, {pct(lo_['death'])} die.")
    for t in transfers:
        body.append(f"- Transfer ({t['train_tokens']:,} tokens): the layer-{lo} SAE explains {t['ev_own']:.3f} of the variance at layer {lo} and "
                    f"{t['ev_next']:.3f} at layer {hi}; its live features' activations at layer {lo} and at layer {hi} (same token) correlate with median "
                    f"{t['self_correlation_median']:.2f}, {pct(t['self_correlation_0.4'])} of them at least 0.4.")
    body += ["", "Reproduce:", "", "```bash", "nice -n 10 " + command_line(__file__, argv), "```"]
    return "\n".join(body)


if __name__ == "__main__":
    raise SystemExit(main())
