#!/usr/bin/env python
"""Benchmark how the best learning rate of a TopK SAE depends on the data: the
encoder's and the decoder's rates moved apart, on real activations and on
synthetic sparse dictionaries of several sizes, with held-out FVU and the
features that never fire.

Why it exists: ``benchmarks/train_quality.py`` finds saetool's default rates
within 5% of the best held-out FVU on SmolLM2 and Gemma 3 but not on half of
the synthetic cells, where twice the rate wins. This script splits that rate
into the encoder's and the decoder's and measures, in one run, what each costs
on each kind of data, so the choice between them rests on figures.

Every run is saetool's TopK defaults (``train_on_batches``) but for two
multipliers: the decoder's learning rate (``lr``) and the encoder's, each a
multiple of its default for that width and budget (the short-run factor
included). Real data trains on the first ``--train-rows`` rows of each
``--activations`` file and is scored on its last ``--heldout-rows`` without
the massive-activation rows (``evaluate``'s rule); synthetic data
(``saetool.train.synthetic``: 4 x d unit directions in d dimensions, about 5
active per token, k 8) trains on 64 batches' worth of rows and is scored on
8,192 others. ``--whiten`` and ``--anisotropic`` add each real file PCA-whitened
and each synthetic dictionary stretched to the first real file's covariance
spectrum: does the isotropy of the data decide the rate? ``--search`` adds what a
search at the start of a run would choose (every rate pair trained for the first
quarter of the run, judged on the stream's next rows) and the decoder's gradient
signal-to-noise ratio at that point of the defaults' run: could either set the rate?
``--fixed-centre`` adds each data set with the encoder reading the input minus a
fixed centre (the training rows' geometric median, where the decoder bias starts)
instead of minus the trained decoder bias, and the encoder bias at ``--bias-rate`` x
the encoder's rate (the input scale as for the data as it is), with the mean
pre-activation split into what the input gives and the encoder bias: do faster rates
still cost features on real data, and do they then lower its FVU? ``--harder`` adds
each synthetic dictionary with dense Gaussian noise holding a share of the variance
(``--noise-shares``) and dictionaries of more directions than 4 x d
(``--feature-multiples``), with MMCS beside the FVU: does the FVU still ask for
faster rates when the dictionary is harder to recover, and does the recovery?

Run from the repository root:

    .venv/bin/python benchmarks/lr_data_dependence.py --activations acts.h5 --activations gemma.h5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    import torch

from common import command_line, log, machine_info, machine_line, markdown_table, set_offline_env, update_section  # noqa: E402

SECTION = "### Encoder and decoder rates, by data"  # under "## train quality: the learning rate depends on the data"
VARIANTS_SECTION = "### Whitened and anisotropic data"  # --whiten, --anisotropic
SEARCH_SECTION = "### A search at the start of the run"  # --search
FIXED_SECTION = "### A fixed centre and a faster encoder bias"  # --fixed-centre
HARDER_SECTION = "### Harder synthetic dictionaries"  # --harder
FIXED_ARCH = "topk-fixed-centre"  # registered by --fixed-centre
RATES = "1:1,1:2,2:1,2:2,3:3"  # decoder x : encoder x, the defaults first


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--activations", action="append", default=[], help="activations artifact (first hook); repeat for several models")
    p.add_argument("--train-rows", type=int, default=16384, help="real data: training rows (the file's first)")
    p.add_argument("--heldout-rows", type=int, default=8192, help="real data: held-out rows (the file's last)")
    p.add_argument("--batch-size", type=int, default=128, help="real data: rows per step")
    p.add_argument("--k", type=int, default=32, help="real data: TopK k")
    p.add_argument("--widths", default="4,16", help="d_sae as multiples of d_model")
    p.add_argument("--budgets", default="64,256", help="training steps")
    p.add_argument("--rates", default=RATES, help="comma-separated decoder:encoder multipliers of the default rates; the first is the reference")
    p.add_argument("--syn-d", default="32,64,256", help="synthetic data: dimensions, one dictionary each (none: '')")
    p.add_argument("--syn-batch-sizes", default="1024,128", help="synthetic data: rows per step")
    p.add_argument("--syn-k", type=int, default=8, help="synthetic data: TopK k")
    p.add_argument("--whiten", action="store_true", help="also each real file PCA-whitened (massive rows left out): does isotropic real data want the synthetic rates?")
    p.add_argument("--anisotropic", action="store_true", help="also each synthetic dictionary given the first real file's covariance spectrum (its top d eigenvalues)")
    p.add_argument("--search", action="store_true", help="also a start-of-run search: every rate pair trained for --search-fraction of the run, the lowest FVU on the stream's next --search-rows rows picked; and the defaults' gradient SNR there")
    p.add_argument("--search-fraction", type=float, default=0.25, help="--search: the part of the run each candidate rate trains for (the full run's schedule)")
    p.add_argument("--search-rows", type=int, default=2048, help="--search: rows of the stream after the search that judge it")
    p.add_argument("--fixed-centre", action="store_true", help="also each data set moved by its training rows' geometric median, encoded without subtracting the decoder bias, the encoder bias at --bias-rate x the encoder's rate")
    p.add_argument("--bias-rate", type=float, help="--fixed-centre: the encoder bias's rate as a multiple of the encoder's (default 10)")
    p.add_argument("--harder", action="store_true", help="also each synthetic dictionary with dense noise (--noise-shares) and with more directions (--feature-multiples)")
    p.add_argument("--noise-shares", help="--harder: shares of the variance (each in (0, 1)) held by isotropic Gaussian noise added to the rows (default 0.2,0.5)")
    p.add_argument("--feature-multiples", help="--harder: dictionaries of this many x d directions, about 5 active per token (default 16)")
    p.add_argument("--tolerance", type=float, default=0.05, help="the reference passes a cell within this relative margin of its best FVU")
    p.add_argument("--section", help=f"the markdown section to rewrite (default: '{SECTION}', with --whiten or --anisotropic '{VARIANTS_SECTION}', with --search '{SEARCH_SECTION}', with --fixed-centre '{FIXED_SECTION}', with --harder '{HARDER_SECTION}')")
    p.add_argument("--output-md", default="docs/benchmarks.md", help="markdown file to update ('' to skip)")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    args = p.parse_args(argv)
    if args.section is None:
        args.section = (SEARCH_SECTION if args.search else VARIANTS_SECTION if (args.whiten or args.anisotropic)
                        else FIXED_SECTION if args.fixed_centre else HARDER_SECTION if args.harder else SECTION)
    return args


def rate_pairs(text: str) -> list[tuple[float, float]]:
    """``"1:1,2:1"`` -> ``[(1.0, 1.0), (2.0, 1.0)]``."""
    return [(float(a), float(b)) for a, b in (part.split(":") for part in text.split(",") if part)]


def train_cell(x_train, held, d_sae: int, k: int, steps: int, batch_size: int, decoder_x: float, encoder_x: float, dictionary=None,
               options: dict[str, Any] | None = None, scale: float | None = None) -> dict[str, Any]:
    """One SAE at the given rate multipliers (and training ``options``), scored on ``held``, with
    the mean pre-activation there split into what the input gives and the encoder bias. ``scale``:
    train on ``x_train`` x ``scale`` instead of letting the trainer estimate the input scale."""
    import torch
    import train_quality as tq
    from saetool.train.scaling import fold_scales

    options = {**rate_options(decoder_x, encoder_x), **(options or {})}
    if scale is not None:
        x_train, options = x_train * scale, {**options, "normalize_inputs": False}
    result, _ = tq.train_one(x_train, d_sae, k, steps, batch_size, decoder_x, None, options)
    sae = result.sae if scale is None else fold_scales(result.sae, scale, scale)  # an SAE on unscaled rows, as the trainer saves one
    scores = tq.heldout_scores(sae.encode, sae.decode, held, d_sae)
    if dictionary is not None:
        scores["mmcs"] = tq.mean_max_cosine(sae.W_dec, dictionary)
    with torch.no_grad():
        pre = float(sae.encode_pre(ordinary(held)).double().mean())
        scores["b_enc"] = float(sae.b_enc.double().mean())
    scores["input_bias"] = pre - scores["b_enc"]
    return scores


def register_fixed_centre(bias_rate: float) -> None:
    """Register :data:`FIXED_ARCH`: saetool's TopK with the encoder bias at ``bias_rate`` x the encoder's rate."""
    from saetool.hookspecs import hookimpl
    from saetool.plugins import host
    from saetool.train.architectures import TopKArchitecture

    class FixedCentreTopK(TopKArchitecture):
        name = FIXED_ARCH
        description = "TopK, the encoder bias at a multiple of the encoder's rate (benchmarks/lr_data_dependence.py)"
        param_lr_scales = {"b_enc": bias_rate}

    class Plugin:
        @hookimpl
        def register_sae_architectures(self, register: Any) -> None:
            register(FixedCentreTopK())

    host().register_plugin(Plugin(), "lr-data-dependence")


def rate_options(decoder_x: float, encoder_x: float) -> dict[str, float]:
    """The encoder's rate as a ratio to the decoder's (``decoder_x`` x the default) that makes it ``encoder_x`` x its default."""
    from saetool.train.schedules import ENCODER_LR_RATIO

    return {"encoder_lr_ratio": ENCODER_LR_RATIO * encoder_x / decoder_x}


def search_probe(x_train, d_sae: int, k: int, steps: int, batch_size: int, decoder_x: float, encoder_x: float, fraction: float, rows: int) -> dict[str, float]:
    """The first ``fraction`` of a run at the given rate multipliers (the full run's schedule, the
    same batches as :func:`train_cell`'s), judged on the stream's next ``rows`` rows (FVU without
    the massive rows; rows of an earlier epoch once the run has passed over the data), with the
    decoder's gradient signal-to-noise ratio there: Adam's bias-corrected m^2 / v averaged over
    the decoder's weights that had a gradient, over what pure noise gives after as many steps
    (:func:`noise_snr`; 1: noise, 1 / noise_snr: every step's gradient the same)."""
    import itertools

    import torch
    import train_quality as tq
    from saetool.train.source import as_batch
    from saetool.train.trainer import Trainer, _cpu_threads

    d_in = int(x_train.shape[1])
    config = tq.topk_config(d_in, d_sae, k, steps, batch_size, decoder_x, None, rate_options(decoder_x, encoder_x))  # train_cell's run
    trainer = Trainer(config, d_in=d_in, total_steps=steps)
    stream = (as_batch(b) for b in tq.batches(x_train, batch_size))
    peek = trainer.peek(stream)
    trainer.start(peek)
    stream = itertools.chain(peek, stream)
    trainer.begin(None)
    with _cpu_threads(trainer.threads_for(batch_size)):  # as fit() runs the full run's steps
        for _ in range(max(1, round(steps * fraction))):
            trainer.advance(next(stream))
    judge = torch.cat([next(stream).x for _ in range(max(1, rows // batch_size))]) * trainer.in_scale
    fvu = tq.heldout_scores(trainer.sae.encode, trainer.sae.decode, judge, d_sae)["fvu"]
    opt = trainer.optimizer
    i = [name for name, _ in trainer.sae.named_parameters()].index("W_dec")
    t = float(opt.steps[i])
    m, v = opt.exp_avg[i] / (1 - opt.beta1**t), opt.exp_avg_sq[i] / (1 - opt.beta2**t)
    had = v > 0  # rows of features never chosen (and never in AuxK) had no gradient
    return {"probe_fvu": fvu, "snr": float((m[had] ** 2 / v[had]).mean()) / noise_snr(t, opt.beta1)}


def noise_snr(t: float, beta1: float) -> float:
    """E[m_hat^2] / E[v_hat] of Adam after ``t`` steps of pure noise: (1 - b)(1 - b^2t) / ((1 + b)(1 - b^t)^2),
    0.077 after 16 steps, 0.053 after 64 (b = 0.9)."""
    return (1 - beta1) * (1 - beta1 ** (2 * t)) / ((1 + beta1) * (1 - beta1**t) ** 2)


def isotropy(x: "torch.Tensor") -> float:
    """Participation ratio of the centred covariance over the dimension: (sum of eigenvalues)^2 /
    sum of their squares / d, 1 for isotropic data, 1/d when one direction holds all the variance."""
    ev = covariance_spectrum(x)[0]
    return float(ev.sum() ** 2 / (ev**2).sum() / x.shape[1])


def covariance_spectrum(x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """(eigenvalues, eigenvectors) of the centred covariance of ``x``, ascending."""
    import torch

    xc = x.double() - x.double().mean(0)
    ev, vec = torch.linalg.eigh(xc.T @ xc / len(xc))
    return ev.clamp(min=0), vec


def ordinary(x: "torch.Tensor") -> "torch.Tensor":
    """``x`` without its massive-activation rows (``evaluate``'s rule)."""
    from saetool.artifacts.norms import NormFilter
    from train_quality import DEFAULT_MAX_NORM_RATIO

    return x[NormFilter.from_rows(x, DEFAULT_MAX_NORM_RATIO).keep(x)]


def whitened(x_train: "torch.Tensor", held: "torch.Tensor") -> tuple["torch.Tensor", ...]:
    """Both sets without their massive rows, PCA-whitened with the training rows' covariance
    (eigenvalues floored at 1e-3 of their mean), every direction given the mean variance."""
    x_train, held = ordinary(x_train), ordinary(held)
    ev, vec = covariance_spectrum(x_train)
    ev = ev.clamp(min=float(ev.mean()) * 1e-3)
    mean = x_train.double().mean(0)
    scale = (ev.mean() / ev).sqrt()
    return tuple((((x.double() - mean) @ vec) * scale + mean @ vec).float() for x in (x_train, held))


def anisotropic(x: "torch.Tensor", spectrum: "torch.Tensor", seed: int = 1) -> "torch.Tensor":
    """``x`` (rows in d dimensions) stretched to the covariance spectrum ``spectrum`` (the largest d
    eigenvalues of another data set, normalised to mean 1) along random orthogonal directions."""
    import torch

    d = int(x.shape[1])
    s = spectrum.flip(0)[:d]
    s = s / s.mean()
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return (x.double() @ (torch.diag(s.sqrt()) @ q)).float()


def run_data(label: str, kind: str, x_train, held, args, rates, *, k: int, batch_size: int, dictionary=None,
             options: dict[str, Any] | None = None, scale_of: Callable[[int], float] | None = None) -> list[dict[str, Any]]:
    """Every width x budget of one data set at every rate pair (with training ``options``; ``scale_of(steps)``:
    the input scale to train with); ``kind`` groups the summary's pass counts."""
    rows = []
    d_in = int(x_train.shape[1])
    pr = isotropy(ordinary(x_train))
    for width in (int(w) for w in args.widths.split(",")):
        for steps in (int(s) for s in args.budgets.split(",")):
            scale = scale_of(steps) if scale_of is not None else None
            runs = [train_cell(x_train, held, width * d_in, k, steps, batch_size, dx, ex, dictionary, options, scale) for dx, ex in rates]
            if args.search:
                for run, (dx, ex) in zip(runs, rates):
                    run.update(search_probe(x_train, width * d_in, k, steps, batch_size, dx, ex, args.search_fraction, args.search_rows))
            rows.append({"data": label, "kind": kind, "d_in": d_in, "isotropy": pr, "d_sae": width * d_in, "steps": steps, "batch_size": batch_size, "runs": runs})
            log(f"{label} {width}x {steps} steps of {batch_size}: " + "  ".join(f"{dx:g}:{ex:g} {r['fvu']:.3f}/{r['never_fired']:.0%}" for (dx, ex), r in zip(rates, runs)))
    return rows


def with_fixed_centre(label: str, kind: str, x_train, held, args, rates, **kw: Any) -> list[dict[str, Any]]:
    """:func:`run_data` on both sets moved by the training rows' geometric median (where ``b_dec``
    starts), the encoder reading them as they are (not minus ``b_dec``), its bias faster (:data:`FIXED_ARCH`),
    at the input scale the trainer gives the data as it is (moved, the rows' norms shrink and its scale would grow)."""
    from saetool.train.initialize import geometric_median

    centre = geometric_median(x_train)
    options = {"arch": FIXED_ARCH, "apply_b_dec_to_input": False}
    return run_data(f"{label}, fixed centre", f"{kind}, fixed centre", x_train - centre, held - centre, args, rates, options=options,
                    scale_of=lambda steps: input_scale(x_train, kw["batch_size"], steps), **kw)


def harder_data(x, dictionary, d: int, n_train: int, args, rates, batch_size: int) -> list[dict[str, Any]]:
    """:func:`run_data` on the d-dimensional dictionary's rows ``x`` with dense noise (each of ``--noise-shares``)
    and on dictionaries of more directions (each of ``--feature-multiples`` x d), as many rows as ``x``."""
    rows = []
    for share in (float(v) for v in args.noise_shares.split(",") if v):
        y = with_noise(x, share, seed=1)
        rows += run_data(f"synthetic d={d}, noise {share:.0%}", f"synthetic, noise {share:.0%}", y[:n_train], y[n_train:], args, rates,
                         k=args.syn_k, batch_size=batch_size, dictionary=dictionary)
    for multiple in (int(v) for v in args.feature_multiples.split(",") if v):
        y, many = synthetic_rows(x.shape[0], d, multiple * d)
        rows += run_data(f"synthetic d={d}, {multiple}x d directions", f"synthetic, {multiple}x d directions", y[:n_train], y[n_train:], args, rates,
                         k=args.syn_k, batch_size=batch_size, dictionary=many)
    return rows


def synthetic_rows(n: int, d: int, n_features: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``n`` rows of a seed-0 dictionary of ``n_features`` directions in ``d`` dimensions (about 5 active
    per row) and the dictionary, drawn without moving torch's global random state."""
    import torch
    from saetool.train.synthetic import sparse_dictionary_data

    with torch.random.fork_rng():
        return sparse_dictionary_data(n, d, n_features, active=5.0, seed=0)


def with_noise(x: "torch.Tensor", share: float, seed: int) -> "torch.Tensor":
    """``x`` plus isotropic Gaussian noise that holds ``share`` of the sum's variance."""
    import torch

    variance = float(x.var(0).sum())
    sigma = (variance * share / (1 - share) / x.shape[1]) ** 0.5
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def input_scale(x_train, batch_size: int, steps: int) -> float:
    """The input scale the trainer estimates for a run on ``x_train``: from the batches of the
    benchmark's stream that ``Trainer.peek`` takes, as ``Trainer.start`` does."""
    import train_quality as tq
    from saetool.train.scaling import norm_scale
    from saetool.train.source import as_batch
    from saetool.train.trainer import Trainer

    d_in = int(x_train.shape[1])
    trainer = Trainer(tq.topk_config(d_in, d_in, 1, steps, batch_size, None, None), d_in=d_in, total_steps=steps)
    return norm_scale(b.x for b in trainer.peek(as_batch(b) for b in tq.batches(x_train, batch_size)))


def load_real(path: str, args) -> tuple[Any, Any, str, str]:
    """(train rows, held-out rows, data label, hook) of one activations file, as ``train_quality`` reads it."""
    from types import SimpleNamespace

    import train_quality as tq

    train, held, info = tq.load_real(SimpleNamespace(activations=path, train_rows=args.train_rows, heldout_rows=args.heldout_rows), Path("."))
    return train, held, info["label"], info["hook"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    set_offline_env()
    os.environ.setdefault("TQDM_DISABLE", "1")

    started = time.perf_counter()
    info = machine_info(packages=("torch",))
    log(f"machine: {machine_line(info)}")
    rates = rate_pairs(args.rates)
    if not rates or rates[0] != (1.0, 1.0):
        raise SystemExit("--rates must start with 1:1, the defaults every other pair is judged against")
    if args.search and (args.whiten or args.anisotropic):
        raise SystemExit("--search reports on the data as it is: give it without --whiten and --anisotropic")
    if args.fixed_centre and (args.search or args.whiten or args.anisotropic):
        raise SystemExit("--fixed-centre is a table of its own: give it without --search, --whiten and --anisotropic")
    if args.harder and (args.search or args.whiten or args.anisotropic or args.fixed_centre):
        raise SystemExit("--harder is a table of its own: give it without --search, --whiten, --anisotropic and --fixed-centre")
    if (args.noise_shares is not None or args.feature_multiples is not None) and not args.harder:
        raise SystemExit("--noise-shares and --feature-multiples shape the dictionaries of --harder: give them with --harder")
    if args.harder:
        args.noise_shares = "0.2,0.5" if args.noise_shares is None else args.noise_shares
        args.feature_multiples = "16" if args.feature_multiples is None else args.feature_multiples
        if not all(0 < float(v) < 1 for v in args.noise_shares.split(",") if v):
            raise SystemExit("--noise-shares: each share of the variance must lie between 0 and 1 (e.g. 0.2,0.5)")
    if args.bias_rate is not None and not args.fixed_centre:
        raise SystemExit("--bias-rate sets the encoder bias's rate of --fixed-centre: give it with --fixed-centre")
    if args.fixed_centre:
        args.bias_rate = 10.0 if args.bias_rate is None else args.bias_rate
        register_fixed_centre(args.bias_rate)
    if args.anisotropic and not args.activations:
        raise SystemExit("--anisotropic takes its spectrum from the first --activations file")
    rows: list[dict[str, Any]] = []
    spectrum = None
    for path in args.activations:
        x_train, held, name, hook = load_real(path, args)
        rows += run_data(f"{name} {hook}", name, x_train, held, args, rates, k=args.k, batch_size=args.batch_size)
        if args.fixed_centre:
            rows += with_fixed_centre(f"{name} {hook}", name, x_train, held, args, rates, k=args.k, batch_size=args.batch_size)
        if args.whiten:
            rows += run_data(f"{name} {hook}, whitened", f"{name}, whitened", *whitened(x_train, held), args, rates, k=args.k, batch_size=args.batch_size)
        if spectrum is None:
            spectrum = covariance_spectrum(ordinary(x_train))[0]
            spectrum_of = name
    for d in (int(v) for v in args.syn_d.split(",") if v):
        for batch_size in (int(b) for b in args.syn_batch_sizes.split(",")):
            n_train = 64 * batch_size
            x, dictionary = synthetic_rows(n_train + 8192, d, 4 * d)
            rows += run_data(f"synthetic d={d}", "synthetic", x[:n_train], x[n_train:], args, rates, k=args.syn_k, batch_size=batch_size, dictionary=dictionary)
            if args.fixed_centre:
                rows += with_fixed_centre(f"synthetic d={d}", "synthetic", x[:n_train], x[n_train:], args, rates, k=args.syn_k, batch_size=batch_size, dictionary=dictionary)
            if args.harder:
                rows += harder_data(x, dictionary, d, n_train, args, rates, batch_size)
            if args.anisotropic:
                y = anisotropic(x, spectrum)
                rows += run_data(f"synthetic d={d}, {spectrum_of}'s spectrum", "synthetic, anisotropic", y[:n_train], y[n_train:], args, rates,
                                 k=args.syn_k, batch_size=batch_size)
    markdown = summarise(args, argv, rates, rows, info, time.perf_counter() - started)
    print(markdown)
    if args.output_md:
        update_section(args.output_md, args.section, markdown)
        log(f"updated the '{args.section}' section of {args.output_md}")
    if args.json:
        Path(args.json).write_text(json.dumps({"argv": argv, "info": info, "rows": rows}, indent=2, default=str) + "\n")
    return 0


def rate_table(args, rates, rows: list[dict[str, Any]], variants: bool) -> tuple[str, str]:
    """(table, counts): each rate's held-out FVU and never-firing share and whether the defaults are
    within the tolerance; with ``--search`` also each rate's search score, the search's pick, whether
    that is within the tolerance, and the defaults' gradient SNR."""
    names = rate_names(rates, short=args.search)
    table = []
    passed: dict[str, list[bool]] = {}
    picked: dict[str, list[bool]] = {}
    snr: dict[str, list[float]] = {}
    by_budget: dict[int, list[tuple[float, float]]] = {}  # steps -> (the defaults' SNR, defaults ÷ best) per cell
    for row in rows:
        runs = row["runs"]
        best = min(range(len(runs)), key=lambda i: runs[i]["fvu"])
        ok = runs[0]["fvu"] <= runs[best]["fvu"] * (1 + args.tolerance)
        passed.setdefault(row["kind"] + (f", SAE {row['d_sae'] // row['d_in']}x d" if args.harder else ""), []).append(ok)
        cells = []
        for i, r in enumerate(runs):
            text = (f"{r['fvu']:.3f} / {r['never_fired']:.0%}" + (f" / {r['mmcs']:.2f}" if args.harder and "mmcs" in r else "")
                    + (f" ({r['probe_fvu']:.3f})" if args.search else ""))
            cells.append(f"**{text}**" if i == best else text)
        if args.search:
            pick = min(range(len(runs)), key=lambda i: runs[i]["probe_fvu"])
            pick_ok = runs[pick]["fvu"] <= runs[best]["fvu"] * (1 + args.tolerance)
            picked.setdefault(row["kind"], []).append(pick_ok)
            snr.setdefault(row["kind"], []).append(runs[0]["snr"])
            by_budget.setdefault(row["steps"], []).append((runs[0]["snr"], runs[0]["fvu"] / runs[best]["fvu"]))
            tail = [names[pick], f"{runs[pick]['fvu'] / runs[best]['fvu']:.3f}", "yes" if pick_ok else "**no**", f"{runs[0]['snr']:.2f}"]
        else:
            tail = ["yes" if ok else "**no**"]
        table.append([row["data"], *([f"{row['isotropy']:.3f}"] if variants else []), f"{row['d_sae']:,} ({row['d_sae'] // row['d_in']}x)", row["steps"], f"{row['batch_size']:,}", *cells,
                      f"{runs[0]['fvu'] / runs[best]['fvu']:.3f}", *tail])
    header = ["data", *(["PR/d"] if variants else []), "d_sae", "steps", "rows per step", *names, "defaults ÷ best"]
    header += ["search picks", "pick ÷ best", "pick passes", "SNR ÷ noise"] if args.search else ["pass"]

    def tally(counts: dict[str, list[bool]]) -> str:
        return "; ".join(f"{name}: {sum(v)} of {len(v)}" for name, v in counts.items())

    counts = f"Defaults within {args.tolerance:.0%} of the best: {tally(passed)}."
    if args.search:
        from scipy.stats import spearmanr

        order = [f"{spearmanr(*zip(*cells)).statistic:+.2f} over the {len(cells)} cells of {steps} steps" for steps, cells in sorted(by_budget.items())]
        counts += (f" The search's pick within {args.tolerance:.0%} of the best: {tally(picked)}. The defaults' SNR: "
                   + "; ".join(f"{name}: {min(v):.2f}-{max(v):.2f}" for name, v in snr.items())
                   + "; its rank correlation with 'defaults ÷ best': " + ", ".join(order) + ".")
    return markdown_table(header, table), counts


def rate_names(rates, short: bool = False) -> list[str]:
    """The column name of each rate pair ('dec 2x, enc 2x'; ``short``: 'both 2x' when the two are equal)."""
    return [("both" if short and dx == ex else f"dec {dx:g}x, enc") + f" {ex:g}x" for dx, ex in rates]


def bias_table(rates, rows: list[dict[str, Any]]) -> str:
    """Each run's mean pre-activation on the held-out rows (massive rows left out), split into what
    the input gives (``W_enc`` applied to the encoder's input) and the encoder bias."""
    names = rate_names(rates)
    table = [[row["data"], f"{row['d_sae']:,} ({row['d_sae'] // row['d_in']}x)", row["steps"], f"{row['batch_size']:,}",
              *(f"{r['input_bias']:+.2f} / {r['b_enc']:+.2f}" for r in row["runs"])] for row in rows]
    return markdown_table(["data", "d_sae", "steps", "rows per step", *names], table)


def summarise(args, argv: list[str], rates, rows: list[dict[str, Any]], info: dict[str, Any], seconds: float) -> str:
    variants = args.whiten or args.anisotropic
    table, counts = rate_table(args, rates, rows, variants)
    about = ""
    if args.search:
        about = (f" In brackets: the FVU after the first {args.search_fraction:.0%} of the run at that rate (the full run's schedule) on the "
                 f"training stream's next {args.search_rows:,} rows (massive rows left out; once a run has passed over its data, rows it has seen), "
                 "what a search at the start of the run would judge by; 'search picks': the lowest of them; 'pick passes': the pick's run within "
                 f"{args.tolerance:.0%} of the best of the rates searched; 'SNR ÷ noise': the decoder's gradient signal-to-noise ratio at that "
                 "point of the defaults' run (Adam's bias-corrected m^2 / v averaged over the decoder weights that had a gradient) over what "
                 "pure noise gives after as many steps (0.077 after 16 steps, 0.053 after 64): 1 for noise, 13 to 19 when every step's "
                 "gradient is the same.")
    return "\n".join([
        f"_Written by `benchmarks/lr_data_dependence.py` on {info['date']} in {seconds / 60:.0f} min; rerun it to refresh this section._",
        "",
        "Reproduce (from the repository root" + ("; `acts.h5` and `gemma.h5` as in \"train quality\"):" if args.activations else "):"),
        "",
        "```bash",
        command_line(__file__, argv),
        "```",
        "",
        f"Machine: {machine_line(info)}.",
        "",
        "Held-out FVU (without the massive-activation rows) / features that never fire on the held-out rows, of TopK SAEs "
        "with saetool's defaults but for the learning rates: the decoder's and the encoder's, each a multiple of its default "
        "for the width and budget (the short-run factor included; the first column is the defaults). "
        + (f"Real data: the first {args.train_rows:,} rows to train, the last {args.heldout_rows:,} held out, k {args.k}. " if args.activations else "")
        + "Synthetic: 4 x d random unit "
        f"directions in d dimensions, about 5 active per token, k {args.syn_k}, 64 batches' worth of rows to train, 8,192 others held out. "
        "Bold: the cell's best FVU" + ("." if args.search else f"; 'pass': the defaults within {args.tolerance:.0%} of it.")
        + (" 'PR/d': the participation ratio of the training rows' centred covariance (massive rows left out) over the dimension (1: isotropic; 1/d: one "
           "direction holds all the variance). 'whitened': the massive rows left out of both sets, both PCA-whitened with the training "
           "rows' covariance (eigenvalues floored at 1e-3 of their mean); 'X's spectrum': the synthetic rows stretched to the largest d "
           "eigenvalues of X's training rows (massive rows left out) along random orthogonal directions." if variants else "")
        + (" 'fixed centre': both sets moved by the training rows' geometric median (where the decoder bias starts), the encoder "
           "reading them as they are instead of minus the trained decoder bias, and the encoder bias at "
           f"{args.bias_rate:g}x the encoder's rate; the input scale is the one the trainer gives the data as it is (moved, "
           "the rows' norms shrink and the trainer would scale them up)." if args.fixed_centre else "")
        + (" 'noise N%': the same rows plus isotropic Gaussian noise that holds N% of their variance (the held-out rows "
           "too); 'M x d directions': a dictionary of M x d directions instead of 4 x d, as many active per token (so each "
           "direction is active M / 4 times less often), the SAE's width as for the others. The third figure of each cell: "
           "MMCS, the mean over the true directions of the best cosine to a decoder row (how much of the dictionary the "
           "SAE recovered)." if args.harder else "")
        + about,
        "",
        table,
        "",
        counts,
        *(["", "The mean pre-activation on the held-out rows (massive rows left out) in two parts: what the input gives (the "
           "encoder's weights applied to its input: minus the decoder bias, or minus the fixed centre) / the encoder bias; "
           "one mean over the rows and the features, in the units of the saved SAE's feature activations (on raw activations).",
           "", bias_table(rates, rows)] if args.fixed_centre else []),
    ])


if __name__ == "__main__":
    raise SystemExit(main())
