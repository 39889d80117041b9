"""The ``absorption`` eval: feature absorption on the first-letter task (after Chanin et al.
2024, "A is for Absorption", and SAEBench's version of it).

1. Words: single tokens of the model's vocabulary that are a space and
   ``min_letters`` or more lower-case ASCII letters, ``words`` of them drawn by
   seed and split into train and test. Each is read at its own position after
   a fixed few-shot prefix (``icl`` examples like "tartan has the first letter: T").
2. A ground-truth probe per letter (logistic, one against the rest) on the
   model's activations; letters whose test F1 is below ``min_probe_f1`` or with
   fewer than ``min_words`` test words are left out. ``probe_accuracy``
   (the argmax letter on the test words) says how well the hook knows first letters.
3. The SAE's main latents for each letter: latents ranked by train mean
   difference (letter vs rest), the first ``k``, ``k`` grown from 1 while a
   probe on them gains at least ``f1_jump`` train F1 (up to ``max_k``).
4. On the test words of the letter that its probe recognises: the word is
   **fully absorbed** when no main latent fires, the latent that adds most to
   the probe direction has cosine at least ``cos_full`` with it and adds at
   least ``proportion`` of the word's own projection ``x . p``.
   The **absorption fraction** of a word is the share of that projection carried
   by at most ``max_absorbers`` other latents aligned with the probe (cosine at
   least ``cos_fraction``) rather than by the main latents. A latent adds its
   activation times its decoder row's cosine with ``p``. These are SAEBench's
   definitions and thresholds (a test checks the two agree word by word).

Metrics are means over the letters evaluated.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from saetool.bench.base import BenchContext, BenchEval, EvalResult, MetricCard, SAEEntry
from saetool.bench.linear import fit_logistic
from saetool.console import log
from saetool.corpus.packing import bos_id
from saetool.errors import SaetoolError
from saetool.sae.features import unit_rows

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class AbsorptionOptions:
    words: int = 1500
    test_fraction: float = 0.3
    min_letters: int = 3
    icl: int = 2
    min_probe_f1: float = 0.6
    min_words: int = 5
    max_k: int = 5
    f1_jump: float = 0.03
    cos_full: float = 0.025
    cos_fraction: float = 0.1
    proportion: float = 0.4
    max_absorbers: int = 3
    min_probe_accuracy: float = 0.8
    C: float = 1.0
    batch_size: int = 64

    def validate(self) -> None:
        if self.words < 52 or not 0 < self.test_fraction < 1 or self.max_k < 1 or self.batch_size < 1 or self.icl < 0:
            raise SaetoolError("--option absorption: words >= 52, test_fraction in (0, 1), max_k >= 1, icl >= 0, batch_size >= 1")


@dataclass
class LetterData:
    """Rows ``x`` ``[n, d]`` with first letters ``letters`` (0..25) and a train mask."""

    x: torch.Tensor
    letters: torch.Tensor
    train: torch.Tensor
    words: list[str]


def vocab_words(tokenizer: Any, min_letters: int) -> list[tuple[int, str]]:
    """``(token id, word)`` for tokens that decode to a space and lower-case ASCII letters, by id."""
    pattern = re.compile(rf" [a-z]{{{min_letters},}}")
    out = []
    for tid in range(len(tokenizer)):
        text = tokenizer.decode([tid])
        if pattern.fullmatch(text):
            out.append((tid, text[1:]))
    return out


def word_activations(model: Any, hook: str, opts: AbsorptionOptions, seed: int) -> LetterData:
    """The model's activations at each sampled word (after the few-shot prefix)."""
    tok = model.tokenizer
    vocab = vocab_words(tok, opts.min_letters)
    if len(vocab) < opts.words + opts.icl:
        raise SaetoolError(f"the tokenizer has only {len(vocab)} single-token words of {opts.min_letters}+ letters", hint="lower --option absorption.words")
    rng = random.Random(seed)
    chosen = rng.sample(vocab, opts.words + opts.icl)
    icl, chosen = chosen[: opts.icl], chosen[opts.icl :]
    prefix_text = "".join(f"{w} has the first letter: {w[0].upper()}\n" for _, w in icl)
    bos = bos_id(tok)
    prefix = ([bos] if bos is not None else []) + tok(prefix_text, add_special_tokens=False)["input_ids"]
    rows = []
    with torch.no_grad():
        for start in range(0, len(chosen), opts.batch_size):
            batch = chosen[start : start + opts.batch_size]
            ids = torch.tensor([prefix + [tid] for tid, _ in batch], device=model.device)
            rows.append(model.run_with_cache(ids, [hook])[hook][:, -1].float().cpu())
    n_test = round(len(chosen) * opts.test_fraction)
    train = torch.tensor([i >= n_test for i in range(len(chosen))])
    return LetterData(torch.cat(rows), torch.tensor([LETTERS.index(w[0]) for _, w in chosen]), train, [w for _, w in chosen])


def f1(pred: torch.Tensor, truth: torch.Tensor) -> float:
    tp = float((pred & truth).sum())
    denom = float(pred.sum() + truth.sum())
    return 2 * tp / denom if denom else 0.0


@dataclass
class GroundTruth:
    """The letter probes (unit directions ``[26, d]`` and the fitted :class:`Probe`), per-letter test F1,
    the test accuracy and the letters evaluated."""

    directions: torch.Tensor
    probe: Any
    f1: list[float]
    accuracy: float
    letters: list[int]


def ground_truth(data: LetterData, opts: AbsorptionOptions) -> GroundTruth:
    y = torch.nn.functional.one_hot(data.letters, 26).double()
    tr, te = data.train, ~data.train
    probe = fit_logistic(data.x[tr], y[tr], C=opts.C)
    logits = probe.logits(data.x[te])
    pred = logits > 0
    truth = y[te].bool()
    scores = [f1(pred[:, c], truth[:, c]) for c in range(26)]
    accuracy = float((logits.argmax(1) == data.letters[te]).double().mean())
    letters = [c for c in range(26) if scores[c] >= opts.min_probe_f1 and int(truth[:, c].sum()) >= opts.min_words]
    directions = unit_rows(probe.weight)
    return GroundTruth(directions.float(), probe, scores, accuracy, letters)


def main_latents(codes: torch.Tensor, is_letter: torch.Tensor, opts: AbsorptionOptions) -> tuple[list[int], float]:
    """The letter's main latents (train rows) and the train F1 of a probe on them."""
    diff = codes[is_letter].mean(0) - codes[~is_letter].mean(0)
    order = torch.argsort(diff, descending=True, stable=True)
    best_k, best_f1 = 1, -1.0
    for k in range(1, opts.max_k + 1):
        cols = order[:k]
        score = f1(fit_logistic(codes[:, cols], is_letter.double(), C=opts.C).predict(codes[:, cols])[:, 0], is_letter)
        if k > 1 and score - best_f1 < opts.f1_jump:
            break
        best_k, best_f1 = k, score
    return [int(i) for i in order[:best_k]], best_f1


def word_absorption(codes: torch.Tensor, x: torch.Tensor, w_dec: torch.Tensor, direction: torch.Tensor,
                    main: Sequence[int], opts: AbsorptionOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: whether it is fully absorbed and its absorption fraction (see the module docstring).

    As SAEBench computes them: a latent adds its activation times its decoder
    row's cosine with the unit probe direction ``p``; the row's own projection is ``x . p``."""
    cos = torch.nn.functional.normalize(w_dec.float(), dim=1) @ direction
    contrib = codes * cos  # [n, d_sae]
    proj = x @ direction  # [n]
    main_idx = torch.tensor(list(main), dtype=torch.long)
    main_proj = contrib[:, main_idx].sum(1)
    silent = (codes[:, main_idx] <= 0).all(1)
    others = contrib.clone()
    others[:, main_idx] = float("-inf")
    top_val, top_idx = others.max(1)
    full = silent & (cos[top_idx] >= opts.cos_full) & (proj > 0) & (top_val >= opts.proportion * proj)
    aligned = others.masked_fill(~(cos >= opts.cos_fraction).expand_as(others) | (others <= 0), 0.0)
    absorbers = aligned.topk(min(opts.max_absorbers, aligned.shape[1]), dim=1).values.sum(1)
    fraction = torch.zeros_like(proj)
    counts = (main_proj < proj) & (absorbers >= opts.proportion * proj) & (proj > 0)
    fraction[counts & (main_proj <= 0)] = 1.0
    part = counts & (main_proj > 0)
    absorbed = torch.minimum(absorbers, proj - main_proj)
    fraction[part] = (absorbed / (absorbed + main_proj))[part].clamp(0, 1)
    return full, fraction


def absorption_scores(sae: Any, data: LetterData, truth: GroundTruth, opts: AbsorptionOptions) -> EvalResult:
    """The absorption metrics of ``sae`` on the words (see the module docstring)."""
    with torch.no_grad():
        codes = sae.encode(data.x.to(device=sae.device, dtype=sae.dtype)).float().cpu()
        w_dec = sae.W_dec.detach().float().cpu()
    tr, te = data.train, ~data.train
    recognised = truth.probe.predict(data.x[te])
    per_letter = []
    for c in truth.letters:
        main, train_f1 = main_latents(codes[tr], data.letters[tr] == c, opts)
        is_c = data.letters[te] == c
        test_f1 = f1((codes[te][:, main] > 0).any(1), is_c)
        rows = is_c & recognised[:, c]
        if not int(rows.sum()):
            continue
        full, fraction = word_absorption(codes[te][rows], data.x[te][rows], w_dec, truth.directions[c], main, opts)
        per_letter.append({"letter": LETTERS[c], "main_latents": main, "main_f1": test_f1, "probe_f1": truth.f1[c], "words": int(rows.sum()),
                           "full_absorption_rate": float(full.double().mean()), "absorption_fraction": float(fraction.double().mean()),
                           "absorbed_words": [w for w, a in zip([data.words[i] for i in torch.nonzero(te).flatten()[rows].tolist()], full.tolist()) if a][:10]})
    notes = []
    if truth.accuracy < opts.min_probe_accuracy:
        notes.append(f"the model's first-letter probe reaches only {truth.accuracy:.2f} test accuracy at this hook (below {opts.min_probe_accuracy}): "
                     "the model represents first letters weakly here, so absorption says little (SAEBench recommends models of 2B+ parameters)")
    if not per_letter:
        notes.append("no letter passed the probe F1 and word-count filters: nothing to measure")
        return EvalResult({c.name: None for c in CARDS} | {"probe_accuracy": truth.accuracy}, notes=notes)
    mean = lambda key: sum(r[key] for r in per_letter) / len(per_letter)  # noqa: E731
    metrics = {"absorption_rate": mean("full_absorption_rate"), "absorption_fraction": mean("absorption_fraction"), "main_latent_f1": mean("main_f1"),
               "probe_accuracy": truth.accuracy, "letters": float(len(per_letter))}
    return EvalResult(metrics, details={"letters": per_letter}, notes=notes)


CARDS = (
    MetricCard("absorption_rate", "Fraction of recognised first-letter words where the letter's main latents are silent and one other latent carries the letter direction (full absorption)", False,
               "0 is no absorption; the random floor", caveat="only where main_latent_f1 is well above the random floor's and probe_accuracy is high; SAEBench recommends models of 2B+ parameters"),
    MetricCard("absorption_fraction", "Mean share of a word's projection on the letter probe carried by other latents instead of the main ones (partial and full absorption)", False,
               "0 is no absorption; the random floor", caveat="as absorption_rate"),
    MetricCard("main_latent_f1", "Test F1 of 'a main latent fires' as a detector of the letter", True,
               "the random floor; 1 is a perfect first-letter latent", caveat="low values mean the SAE has no first-letter latents: absorption is then not meaningful"),
    MetricCard("probe_accuracy", "Test accuracy of the model's first-letter probe (argmax over 26 letters)", None,
               "chance 1/26 (about 0.04); the same for every SAE", chance=1 / 26, caveat="below 0.8 the model knows first letters too weakly here for absorption to mean much"),
    MetricCard("letters", "Letters evaluated (probe F1 and word-count filters passed)", None, "26 at most", caveat="few letters: a noisy mean"),
)


class AbsorptionEval(BenchEval):
    name = "absorption"
    description = "First-letter feature absorption: how often a letter's main latents stay silent while a more specific latent carries the letter"
    needs = ("model",)
    options = AbsorptionOptions
    cards = CARDS
    headline = "absorption_rate"

    def run(self, entry: SAEEntry, ctx: BenchContext) -> EvalResult:
        opts: AbsorptionOptions = ctx.options(self)

        def prepare() -> tuple[LetterData, GroundTruth]:
            log(f"absorption: {opts.words} words through the model, first-letter probes")
            data = word_activations(ctx.model, entry.sae.cfg.hook, opts, ctx.config.seed)
            return data, ground_truth(data, opts)

        data, truth = ctx.once("absorption:data", prepare)
        return absorption_scores(entry.sae, data, truth, opts)
