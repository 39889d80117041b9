"""The ``probing`` eval: sparse probing (after Gao et al. 2024 and SAEBench).

For each class of each probe dataset (:mod:`saetool.bench.probe_data`), a
balanced binary task: ``per_class`` texts of the class against as many drawn
from the other classes, split into train and test by text. Each text's first
``context`` tokens go through the model; activations at the SAE's hook are
mean-pooled over the tokens, and so are the SAE's latents. BOS is left out, and
so are massive-activation tokens (farther from the set's median row than
``max_norm_ratio`` x the median distance: :func:`ordinary_tokens`), which would
otherwise dominate the means.

- ``llm_accuracy``: a logistic probe on the pooled activations (all ``d_in``
  dimensions): the ceiling for what the hook holds about the labels;
- ``top_{k}_accuracy``: the ``k`` latents whose pooled means differ most
  (absolute difference) between the two classes on the train texts, then a
  logistic probe on those ``k`` only, on the raw pooled latents with an L2
  penalty ``C`` = 1 (as SAEBench's scikit-learn probes; a test checks the two
  agree); test accuracy, averaged over the tasks.

Chance is 0.5 (balanced tasks). The probes are :func:`saetool.bench.linear.fit_logistic`
(the all-activations probe on standardised inputs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from saetool.bench.base import BenchContext, BenchEval, EvalResult, MetricCard, SAEEntry
from saetool.artifacts.norms import DEFAULT_MAX_NORM_RATIO, NormFilter
from saetool.bench.linear import fit_logistic
from saetool.bench.probe_data import probe_datasets
from saetool.console import log
from saetool.corpus.packing import bos_id
from saetool.errors import SaetoolError


@dataclass
class ProbingOptions:
    datasets: str = "bbc-news"
    per_class: int = 40
    test_fraction: float = 0.3
    context: int = 64
    ks: tuple[int, ...] = (1, 2, 5, 20)
    C: float = 1.0
    batch_size: int = 8
    max_norm_ratio: float = DEFAULT_MAX_NORM_RATIO

    def validate(self) -> None:
        if self.per_class < 4:
            raise SaetoolError(f"--option probing.per_class must be at least 4 (got {self.per_class})")
        if not 0 < self.test_fraction < 1:
            raise SaetoolError(f"--option probing.test_fraction must be in (0, 1) (got {self.test_fraction})")
        if self.context < 2 or not self.ks or min(self.ks) < 1 or self.C <= 0 or self.batch_size < 1 or self.max_norm_ratio < 0:
            raise SaetoolError("--option probing: context >= 2, ks positive, C > 0, batch_size >= 1 and max_norm_ratio >= 0")


@dataclass
class ProbeSet:
    """Per-text activations ``acts[i]`` ``[T_i, d]`` (BOS left out), class ``labels[i]``,
    ``train[i]`` whether text i is a training text; ``name`` the dataset."""

    name: str
    acts: list[torch.Tensor]
    labels: list[str]
    train: list[bool]


def split_texts(examples: Sequence[tuple[str, str]], per_class: int, test_fraction: float, seed: int) -> tuple[list[str], list[str], list[bool]]:
    """``per_class`` texts drawn from each class (all when it has fewer), each class split into train and test."""
    by_class: dict[str, list[str]] = {}
    for text, label in examples:
        by_class.setdefault(label, []).append(text)
    if len(by_class) < 2:
        raise SaetoolError("a probe dataset needs at least two classes")
    rng = random.Random(seed)
    texts, labels, train = [], [], []
    for label in sorted(by_class):
        chosen = rng.sample(by_class[label], min(per_class, len(by_class[label])))
        n_test = max(1, round(len(chosen) * test_fraction))
        for i, text in enumerate(chosen):
            texts.append(text)
            labels.append(label)
            train.append(i >= n_test)
    return texts, labels, train


def model_activations(model: Any, hook: str, texts: Sequence[str], context: int, batch_size: int) -> list[torch.Tensor]:
    """Each text's first ``context`` tokens (BOS first) through ``model``; the activations at
    ``hook`` of its tokens after BOS, ``[T_i, d]`` float32 on the CPU."""
    tok = model.tokenizer
    bos = bos_id(tok)
    ids = [([bos] if bos is not None else []) + tok(t, add_special_tokens=False)["input_ids"][: context - (bos is not None)] for t in texts]
    skip = 1 if bos is not None else 0
    out: list[torch.Tensor] = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: little padding
    result: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(ids[i]) for i in batch)
            x = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                x[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            acts = model.run_with_cache(x.to(model.device), [hook], attention_mask=mask.to(model.device))[hook].float().cpu()
            for row, i in enumerate(batch):
                result[i] = acts[row, skip : len(ids[i])]
    out = [result[i] for i in range(len(ids))]
    return out


def ordinary_tokens(acts: Sequence[torch.Tensor], ratio: float) -> list[torch.Tensor]:
    """Each text's rows without its massive-activation tokens: farther from the median row than
    ``ratio`` x the median distance over every token of the set (:class:`saetool.artifacts.norms.NormFilter`;
    SmolLM2's first token after BOS sits at ~70x). A text keeps at least its row nearest the median row;
    ``ratio`` 0 keeps all."""
    if ratio <= 0 or not acts:
        return list(acts)
    rule = NormFilter.from_rows(torch.cat(list(acts)), ratio)
    out = []
    for a in acts:
        dist = rule.distances(a)
        keep = dist <= rule.cutoff
        out.append(a[keep] if bool(keep.any()) else a[dist.argmin()].unsqueeze(0))
    return out


def pooled_latents(sae: Any, acts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over each text's tokens of the SAE's latents, ``[n, d_sae]``."""
    with torch.no_grad():
        return torch.stack([sae.encode(a.to(device=sae.device, dtype=sae.dtype)).float().mean(0).cpu() for a in acts])


def tasks(labels: Sequence[str], train: Sequence[bool], seed: int) -> list[tuple[str, list[int], list[int], list[int], list[int]]]:
    """One balanced task per class: ``(class, train_pos, train_neg, test_pos, test_neg)`` text indices
    (negatives drawn from the other classes, as many as the positives)."""
    rng = random.Random(seed)
    out = []
    for label in sorted(set(labels)):
        parts = []
        for split in (True, False):
            pos = [i for i, (l, t) in enumerate(zip(labels, train)) if l == label and t == split]
            others = [i for i, (l, t) in enumerate(zip(labels, train)) if l != label and t == split]
            parts.append((pos, rng.sample(others, min(len(pos), len(others)))))
        out.append((label, parts[0][0], parts[0][1], parts[1][0], parts[1][1]))
    return out


def _xy(x: torch.Tensor, pos: list[int], neg: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return x[pos + neg], torch.tensor([1.0] * len(pos) + [0.0] * len(neg))


def probe_accuracies(x: torch.Tensor, task_list: list, ks: Sequence[int] | None, C: float) -> list[dict[str, Any]]:
    """Per task: test accuracy of a probe on all columns of ``x`` (``ks`` None) or on the
    top-``k`` columns by absolute train mean difference, for each ``k``."""
    out = []
    for label, tr_pos, tr_neg, te_pos, te_neg in task_list:
        x_tr, y_tr = _xy(x, tr_pos, tr_neg)
        x_te, y_te = _xy(x, te_pos, te_neg)
        if ks is None:
            out.append({"class": label, "accuracy": fit_logistic(x_tr, y_tr, C=C).accuracy(x_te, y_te)})
            continue
        diff = (x[tr_pos].mean(0) - x[tr_neg].mean(0)).abs()
        order = torch.argsort(diff, descending=True, stable=True)
        row: dict[str, Any] = {"class": label, "top_latents": [int(i) for i in order[: max(ks)]]}
        for k in ks:
            cols = order[:k]
            row[f"top_{k}"] = fit_logistic(x_tr[:, cols], y_tr, C=C, standardize=False).accuracy(x_te[:, cols], y_te)
        out.append(row)
    return out


CARDS = (
    MetricCard("llm_accuracy", "Test accuracy of a logistic probe on all of the hook's activations (mean-pooled over tokens)", True,
               "the ceiling for the SAE probes (the same for every SAE)", chance=0.5, caveat="the same for every SAE: the reference point"),
    *(MetricCard(f"top_{k}_accuracy", f"Test accuracy of a logistic probe on the {k} latents whose means differ most between the classes", True,
                 "chance 0.5; the random floor; llm_accuracy is the ceiling", chance=0.5,
                 caveat="small test sets (a few dozen texts per task) move it by several points; k close to d_sae says nothing")
      for k in (1, 2, 5, 20)),
)


class ProbingEval(BenchEval):
    name = "probing"
    description = "Sparse probing: test accuracy of probes on the k most class-different latents, k in {1, 2, 5, 20}, vs a probe on all activations"
    needs = ("model",)
    options = ProbingOptions
    cards = CARDS
    headline = "top_1_accuracy"

    def run(self, entry: SAEEntry, ctx: BenchContext) -> EvalResult:
        opts: ProbingOptions = ctx.options(self)
        sets = ctx.once("probing:sets", lambda: self._probe_sets(ctx, opts, entry.sae.cfg.hook))
        return score_probe_sets(entry.sae, sets, opts, ctx.config.seed, cache=ctx.cache)

    @staticmethod
    def _probe_sets(ctx: BenchContext, opts: ProbingOptions, hook: str) -> list[ProbeSet]:
        sets = []
        for ds in probe_datasets([n.strip() for n in opts.datasets.split(",") if n.strip()]):
            texts, labels, train = split_texts(list(ds.examples()), opts.per_class, opts.test_fraction, ctx.config.seed)
            log(f"probing: {len(texts)} texts of {ds.name} through the model ({opts.context} tokens each)")
            acts = ordinary_tokens(model_activations(ctx.model, hook, texts, opts.context, opts.batch_size), opts.max_norm_ratio)
            sets.append(ProbeSet(ds.name, acts, labels, train))
        return sets


def score_probe_sets(sae: Any, sets: Sequence[ProbeSet], opts: ProbingOptions, seed: int, *, cache: dict[str, Any] | None = None) -> EvalResult:
    """The probing metrics of ``sae`` on ``sets`` (the LLM probe is fitted once per set and kept in ``cache``)."""
    cache = {} if cache is None else cache
    ks = [k for k in opts.ks if k <= sae.cfg.d_sae]
    rows: list[dict[str, Any]] = []
    llm: list[dict[str, Any]] = []
    for s in sets:
        task_list = tasks(s.labels, s.train, seed)
        key = f"probing:llm:{s.name}"
        if key not in cache:
            pooled = torch.stack([a.mean(0) for a in s.acts])
            cache[key] = probe_accuracies(pooled, task_list, None, opts.C)
        llm += [{"dataset": s.name, **r} for r in cache[key]]
        rows += [{"dataset": s.name, **r} for r in probe_accuracies(pooled_latents(sae, s.acts), task_list, ks, opts.C)]
    metrics: dict[str, float | None] = {"llm_accuracy": sum(r["accuracy"] for r in llm) / len(llm)}
    for k in ks:
        metrics[f"top_{k}_accuracy"] = sum(r[f"top_{k}"] for r in rows) / len(rows)
    n_test = [len(t[3]) + len(t[4]) for s in sets for t in tasks(s.labels, s.train, seed)]
    return EvalResult(metrics, details={"tasks": rows, "llm": llm, "test_texts_per_task": n_test})
