#!/usr/bin/env python
"""``saetool track`` on real SmolLM2 layers: how many live features continue to the next layer.

Extracts ``--num-tokens`` rows of BBC News at two adjacent residual-stream
hooks (one pass), trains one TopK SAE per hook with the same settings, and
runs ``track`` with its default thresholds on the same activations. Reports
the live features of the lower layer and the share that continue (one-to-one
link), split, merge or die, and the same with decoder cosine alone.

Run from the repository root (nice: the machine is shared):

    nice -n 10 .venv/bin/python benchmarks/track.py            # updates docs/benchmarks.md
    nice -n 10 .venv/bin/python benchmarks/track.py --output-md ''
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, log, run_in_temp_dir, set_offline_env, update_section  # noqa: E402

SECTION = "## track"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layers", default="14,15", help="two adjacent layers (default: %(default)s)")
    p.add_argument("--num-tokens", type=int, default=32768)
    p.add_argument("--d-sae", type=int, default=2304)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--output-md", default="docs/benchmarks.md")
    p.add_argument("--tmp-dir", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_in_temp_dir("saetool-bench-track-", args.tmp_dir, lambda folder: run(args, argv, folder))


def fractions(layer_row: dict) -> dict:
    n = layer_row["n_live"]
    return {k: (layer_row[k] / n if n else float("nan")) for k in ("continue", "split", "merge", "complex", "death")}


def best_matches(saes, acts) -> dict:
    """Quartiles over live lower-layer features of the best decoder cosine and best activation correlation to the next layer."""
    import numpy as np

    from saetool.analysis.select import load_layer_saes
    from saetool.artifacts.activations import ActivationsFile
    from saetool.track.api import TrackConfig, live_features
    from saetool.track.link import code_chunks, code_stats, decoder_cosine

    cfg = TrackConfig()
    pair = load_layer_saes([str(s.path) for s in saes])
    models = [p.sae for p in pair]
    with ActivationsFile(acts) as f:
        stats = code_stats(code_chunks(f, models, cfg.num_tokens, cfg.chunk_rows), [m.cfg.d_sae for m in models])
    live = live_features(stats.fires[0], stats.sums[0], min_active=cfg.min_active, min_strength=cfg.min_strength)
    cos = decoder_cosine(*models)[live]
    corr = stats.correlation(0)[live]
    q = lambda v: " / ".join(f"{x:.2f}" for x in np.quantile(v, [0.25, 0.5, 0.75]))  # noqa: E731
    return {"cosine": q(cos.max(1)), "correlation": q(corr.max(1)), "cosine_of_best_correlation": q(cos[np.arange(len(cos)), corr.argmax(1)])}


def run(args: argparse.Namespace, argv: list[str], folder: Path) -> int:
    set_offline_env()
    from saetool.extract.api import extract_activations
    from saetool.extract.config import ExtractConfig
    from saetool.track.api import TrackConfig, run_track
    from saetool.train.api import train_sae
    from saetool.train.config import TrainConfig

    layers = [int(x) for x in args.layers.split(",")]
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    t0 = time.perf_counter()
    acts = folder / "acts.h5"
    extract_activations(ExtractConfig(model=args.model, hooks=hooks, num_tokens=args.num_tokens, context_size=128), acts, progress=False)
    log(f"extracted {args.num_tokens} tokens at {hooks} in {time.perf_counter() - t0:.0f} s")
    saes = []
    for hook in hooks:
        cfg = TrainConfig(arch="topk", d_sae=args.d_sae, k=args.k, hook=hook, batch_size=args.batch_size, steps=args.steps, seed=0)
        saes.append(train_sae(cfg, [acts], folder / f"sae-{hook}.h5", progress=False))
        log(f"trained {hook}: {saes[-1].path}")
    rows = {}
    runs = (
        ("decoder cosine and activation correlation (defaults)", acts, TrackConfig()),
        ("the same, thresholds 0.3 / 0.3", acts, TrackConfig(min_cosine=0.3, min_correlation=0.3)),
        ("decoder cosine alone", None, TrackConfig()),
    )
    for n, (name, use_acts, cfg) in enumerate(runs):
        result = run_track(cfg, [s.path for s in saes], activations=use_acts, output=folder / f"tracks-{n}.h5")
        low = result.summary["layers"][0]
        rows[name] = {"n_live": low["n_live"], "n_features": low["n_features"], **fractions(low)}
        log(f"{name}: {json.dumps(rows[name])}")
    best = best_matches(saes, acts)
    log(f"best matches: {json.dumps(best)}")
    body = [
        f"`saetool track` on SmolLM2-135M layers {layers[0]} -> {layers[1]} (`hook_resid_post`): {args.num_tokens} BBC News tokens, "
        f"a TopK SAE per layer (d_sae {args.d_sae}, k {args.k}, {args.steps} steps x {args.batch_size}), default thresholds "
        f"(`--min-cosine 0.5 --min-correlation 0.4 --min-ratio 0.5`). Shares of the live layer-{layers[0]} features:",
        "",
        "| links by | live features | continue | split | merge | complex | die |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        body.append(f"| {name} | {r['n_live']} / {r['n_features']} | {r['continue']:.1%} | {r['split']:.1%} | {r['merge']:.1%} | {r['complex']:.1%} | {r['death']:.1%} |")
    body += [
        "",
        f"Best match of each live layer-{layers[0]} feature among the layer-{layers[1]} features, quartiles (25% / 50% / 75%): "
        f"decoder cosine {best['cosine']}, activation correlation {best['correlation']}; "
        f"the pair with the best correlation has decoder cosine {best['cosine_of_best_correlation']}.",
    ]
    body += ["", "Reproduce:", "", "```bash", command_line(__file__, argv), "```"]
    text = "\n".join(body)
    print(text)
    if args.output_md:
        update_section(args.output_md, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
