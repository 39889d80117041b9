"""Which sae-probes tasks can a model's hook tell apart? A screen for `bench`'s probing datasets.

For each candidate binary task of the ``sae-probes`` package (read by
:mod:`saetool.bench.sae_probes_data`), ``--per-class`` texts per class through the model
(first ``--context`` tokens), mean-pooled activations at ``--hook``, and the probing
eval's own functions: a logistic probe on all activations (``llm``), and with ``--sae``
the top-1 and top-5 latent probes of that SAE and of its random floor. Prints a
markdown table (docs/bench.md's "sae-probes tasks" table came from it). Not a timing.

    python benchmarks/probe_tasks.py --sae runs/sae.h5 --per-class 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CANDIDATES = [
    "5_hist_fig_ismale", "7_hist_fig_ispolitician", "21_headline_istrump", "87_glue_cola", "92_glue_sst2",
    "96_spam_is", "100_news_fake", "105_click_bait", "113_movie_sent", "139_news_class_Politics",
    "148_twt_emotion_worry", "154_athlete_sport_football", "157_amazon_5star", "158_code_C",
    "159_code_Python", "161_agnews_0", "163_agnews_2", "36_sciq_tf", "41_truthqa_tf",
]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--hook", default="blocks.15.hook_resid_post")
    p.add_argument("--sae", default=None, help="an SAE of --hook: also its top-1/top-5 probes and its random floor's")
    p.add_argument("--tasks", default=",".join(CANDIDATES), help="comma-separated sae-probes file stems")
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from saetool.bench.probing import model_activations, pooled_latents, probe_accuracies, split_texts, tasks
    from saetool.bench.sae_probes_data import SaeProbesTask
    from saetool.models.registry import load_model

    torch.manual_seed(args.seed)
    model = load_model(args.model, backend="transformers")
    saes = {}
    if args.sae:
        from saetool.bench.random_sae import random_like
        from saetool.sae.io import load_sae

        sae = load_sae(args.sae)
        saes = {"sae": sae, "random": random_like(sae, seed=args.seed)}
        args.hook = sae.cfg.hook
    cols = ["task", "texts", "llm"] + [f"{n} top-{k}" for n in saes for k in (1, 5)]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    start = time.time()
    for stem in [s.strip() for s in args.tasks.split(",") if s.strip()]:
        ds = SaeProbesTask(stem)
        texts, labels, train = split_texts(list(ds.examples()), args.per_class, 0.3, args.seed)
        acts = model_activations(model, args.hook, texts, args.context, 8)
        # one task: "yes" against "no" (the other direction is the same probe with labels flipped)
        task_list = [t for t in tasks(labels, train, args.seed) if t[0] == "yes"]
        pooled = torch.stack([a.mean(0) for a in acts])
        row = [ds.name, str(len(texts)), f"{probe_accuracies(pooled, task_list, None, 1.0)[0]['accuracy']:.2f}"]
        for s in saes.values():
            r = probe_accuracies(pooled_latents(s, acts), task_list, (1, 5), 1.0)[0]
            row += [f"{r['top_1']:.2f}", f"{r['top_5']:.2f}"]
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"\n{time.time() - start:.0f} s; per class {args.per_class}, context {args.context}, seed {args.seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
