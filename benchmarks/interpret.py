#!/usr/bin/env python
"""Benchmark top-k example collection: saetool's vectorised running top-k vs a heap per feature.

All see the same feature activations: ``--tokens`` rows of a synthetic TopK
code (``--k`` active features per token out of ``--d-sae``, positive values,
some features far more frequent than others), in chunks of ``--chunk-rows``
rows, as the active ``(token, feature, value)`` triples a TopK SAE produces,
and keep the ``--examples`` largest activations of every feature with their
token rows:

1. ``vectorised sparse``: what ``saetool interpret`` runs per chunk
   (``saetool.sae.features.merge_topk_sparse``: drop triples not above their
   feature's current k-th value, rank the rest with the running entries of the
   features they touch in one sort; torch ops only);
2. ``heap per feature``: the seed's approach -- a Python ``heapq`` of size
   ``--examples`` per feature, every active (token, feature) pushed in turn
   (``heappush`` while the heap is short, ``heappushpop`` after);
3. ``vectorised dense`` (for reference): ``batch_topk`` + ``merge_topk`` on the
   dense ``[chunk, d_sae]`` matrix (what ``saetool train --collect-samples`` runs).

Rows are timed ``--repeats`` times, interleaved; the two results are checked to
hold the same values. The ratio of medians goes into the ``## interpret``
section of ``docs/benchmarks.md``.

Run from the repository root:

    .venv/bin/python benchmarks/interpret.py
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Case,
    command_line,
    log,
    machine_info,
    machine_line,
    markdown_table,
    run_interleaved,
    update_section,
)

SECTION = "## interpret"
GOAL = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=32768, help="token rows (default: %(default)s)")
    p.add_argument("--d-sae", type=int, default=4096, help="features (default: %(default)s)")
    p.add_argument("--k", type=int, default=32, help="active features per token (default: %(default)s)")
    p.add_argument("--examples", type=int, default=20, help="top examples kept per feature (default: %(default)s)")
    p.add_argument("--chunk-rows", type=int, default=4096, help="rows per chunk (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads; 1 gives every row one core, as the single-threaded heaps have (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file whose '## interpret' section is rewritten; '' to skip (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the raw numbers as JSON to PATH ('-' for stdout)")
    return p.parse_args(argv)


def make_chunks(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per chunk: the dense ``[n, d_sae]`` TopK code, its global rows, and its active triples."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    chunks = []
    for lo in range(0, args.tokens, args.chunk_rows):
        n = min(args.chunk_rows, args.tokens - lo)
        # a few features fire far more often than others, as in real SAEs
        weights = torch.rand(args.d_sae, generator=gen) ** 4 + 1e-3
        idx = torch.multinomial(weights.expand(n, -1), args.k, replacement=False, generator=gen)
        vals = torch.rand(n, args.k, generator=gen) * 10 + 1e-3
        dense = torch.zeros(n, args.d_sae).scatter_(1, idx, vals)
        rows = torch.arange(lo, lo + n)
        chunks.append({"dense": dense, "rows": rows, "tok": rows.unsqueeze(1).expand_as(idx).reshape(-1), "feat": idx.reshape(-1), "val": vals.reshape(-1)})
    return chunks


def vectorised_sparse(chunks: list[dict[str, Any]], d_sae: int, m: int) -> Any:
    import torch

    from saetool.sae.features import merge_topk_sparse

    values = torch.full((d_sae, m), float("-inf"))
    rows = torch.full((d_sae, m), -1, dtype=torch.long)
    for c in chunks:
        values, rows = merge_topk_sparse(values, rows, c["feat"], c["val"], c["tok"])
    return values, rows


def vectorised_dense(chunks: list[dict[str, Any]], d_sae: int, m: int) -> Any:
    import torch

    from saetool.sae.features import batch_topk, merge_topk

    values = torch.full((d_sae, m), float("-inf"))
    rows = torch.full((d_sae, m), -1, dtype=torch.long)
    for c in chunks:
        v, i = batch_topk(c["dense"], c["rows"], m, threshold=0.0)
        values, rows = merge_topk(values, rows, v, i, m)
    return values, rows


def heap_per_feature(chunks: list[dict[str, Any]], d_sae: int, m: int) -> list[list[tuple[float, int]]]:
    heaps: list[list[tuple[float, int]]] = [[] for _ in range(d_sae)]
    for c in chunks:
        for t, f, v in zip(c["tok"].tolist(), c["feat"].tolist(), c["val"].tolist()):
            heap = heaps[f]
            item = (v, t)
            if len(heap) < m:
                heapq.heappush(heap, item)
            elif v > heap[0][0]:
                heapq.heappushpop(heap, item)
    return heaps


def check_same(vec: Any, heaps: list[list[tuple[float, int]]]) -> None:
    values, _ = vec
    for f, heap in enumerate(heaps):
        want = sorted((v for v, _ in heap), reverse=True)
        got = [v for v in values[f].tolist() if v > float("-inf")]
        if got != want:
            raise SystemExit(f"results differ for feature {f}: {got[:3]} vs {want[:3]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    chunks = make_chunks(args)
    n_active = sum(len(c["val"]) for c in chunks)
    log(f"{args.tokens} tokens x {args.d_sae} features, {n_active:,} active (token, feature) pairs, top {args.examples} per feature")
    results: dict[str, Any] = {}

    def keep(name: str) -> Any:
        def teardown(state: Any, result: Any) -> None:
            results[name] = result

        return teardown

    cases = [
        Case("vectorised sparse (merge_topk_sparse, interpret)", lambda s: vectorised_sparse(chunks, args.d_sae, args.examples), teardown=keep("vec")),
        Case("heap per feature (heapq, seed 004)", lambda s: heap_per_feature(chunks, args.d_sae, args.examples), teardown=keep("heap")),
        Case("vectorised dense (batch_topk + merge_topk)", lambda s: vectorised_dense(chunks, args.d_sae, args.examples), teardown=keep("dense")),
    ]
    timings = run_interleaved(cases, args.repeats)
    check_same(results["vec"], results["heap"])
    check_same(results["dense"], results["heap"])
    vec, heap, dense = (timings[c.name] for c in cases)
    ratio = heap.median / vec.median
    info = machine_info()
    interference = max(max(t.interference) for t in (vec, heap, dense))
    rows = [
        (t.name, f"{t.median:.3f}", f"{t.cpu_median:.3f}", f"{n_active / t.median / 1e6:.2f}", f"{t.spread:.0%}", f"{max(t.interference):.0%}")
        for t in (vec, heap, dense)
    ]
    table = markdown_table(["implementation", "median s", "median CPU s", "M activations/s", "spread", "max others' CPU share"], rows, "lrrrrr")
    verdict = "meets" if ratio >= GOAL else "misses"
    body = f"""Top-k example collection as `saetool interpret` runs it
(`saetool.sae.features.merge_topk_sparse` on the active (token, feature, value) triples,
vectorised over features) against a Python `heapq` per feature like seed 004's collector,
on the same synthetic TopK code: {args.tokens:,} tokens x {args.d_sae:,} features, {args.k}
active per token = **{n_active:,} active (token, feature) activations**, chunks of
{args.chunk_rows:,} rows, top {args.examples} kept per feature. For reference, the dense
vectorised path (`batch_topk` + `merge_topk` over the `[chunk, d_sae]` matrix, as `saetool
train --collect-samples` does) on the same data: its cost grows with tokens x d_sae, not
with the active entries, so on codes this sparse it is no faster than the heaps. All three
results hold the same values (checked). torch threads: {args.threads} (the heaps are
single-threaded). {args.repeats} interleaved repeats, medians.

{table}

**Vectorised sparse is {ratio:.1f}x faster than the heap per feature** (ratio of medians;
goal >= {GOAL:.0f}x: {verdict} it); the dense path takes {dense.median / vec.median:.1f}x the sparse one's time.
Measured under load: other helpers shared the machine (others' CPU share up to
{interference:.0%} during a measurement; load average {", ".join(f"{x:.1f}" for x in info.get("load_average", ()))}),
so absolute times are inflated; the ratio comes from interleaved repeats in one run.

Machine: {machine_line(info)}; {info['date']}.

Reproduce:

```bash
{command_line(__file__, argv if argv is not None else sys.argv[1:])}
```
"""
    print(body)
    if args.output_md:
        update_section(args.output_md, SECTION, body)
        log(f"updated the '{SECTION}' section of {args.output_md}")
    if args.json:
        data = {"ratio": ratio, "vectorised_s": vec.seconds, "heap_s": heap.seconds, "dense_s": dense.seconds, "active": n_active, "machine": info, "args": vars(args)}
        text = json.dumps(data, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    del torch
    return 0


if __name__ == "__main__":
    sys.exit(main())
