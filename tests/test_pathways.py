"""``saetool pathways``: on a tiny GPT-2 with hand-built SAEs where one upstream
feature is wired to drive the target, attribution ranks it first and the patch
replay confirms it, against quantities computed independently of the pathways code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from helpers import assert_clean_error, run_cli

TEXTS = [
    "The weather was cold and grey all week.",
    "She opened the door and smiled at the visitors.",
    "Markets fell sharply after the announcement on Monday.",
    "A small dog ran across the quiet street.",
    "We cooked dinner together and talked for hours.",
]
UP, DOWN = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"
S, W, T = 3, 5, 2  # the driving source, a weaker copy (decoder 0.3 u), the target
BIAS = 2.0  # keeps the target's ReLU in its linear range


@dataclass
class Wired:
    model: object
    up: Path
    down: Path
    texts: Path
    u: torch.Tensor
    folder: Path


def _sae(hook, enc, dec, b_enc, model_id):
    from saetool.sae.config import SAEConfig
    from saetool.sae.model import build_sae

    d, n = enc.shape
    cfg = SAEConfig(arch="relu", d_in=d, d_sae=n, hook=hook, activation="relu", model=model_id)
    return build_sae(cfg, {"W_enc": enc, "b_enc": b_enc, "W_dec": dec, "b_dec": torch.zeros(d)})


def _write(sae, path):
    from saetool.artifacts.provenance import build_provenance
    from saetool.sae.io import write_sae_artifact

    write_sae_artifact(path, sae, provenance=build_provenance(model=sae.cfg.model, hooks=[sae.cfg.hook]))
    return path


def _counted(model, texts):
    from saetool.analysis.pathways_inputs import batch, rows_from_texts, special_ids

    rows = rows_from_texts(model.tokenizer, texts, 64)
    return batch(rows, model.tokenizer.pad_token_id, special_ids(model.tokenizer))


@pytest.fixture(scope="module")
def wired(tiny_gpt2_dir, tmp_path_factory) -> Wired:
    """Upstream SAE (layer 0): feature S reads and writes u (the mean residual direction),
    W reads u and writes 0.3 u, the others write directions orthogonal to u.
    Downstream SAE (layer 1): target T reads u, so S drives T through the residual stream."""
    from saetool.models.registry import load_model

    folder = tmp_path_factory.mktemp("pathways")
    model = load_model(str(tiny_gpt2_dir))
    ids, mask, pos = _counted(model, TEXTS)
    x0 = model.run_with_cache(ids, [UP], attention_mask=mask)[UP][pos]
    u = x0.mean(0)
    u = u / u.norm()
    d = model.d_model
    g = torch.Generator().manual_seed(1)

    def ortho(v):
        v = v - (v @ u) * u
        return v / v.norm()

    n0, n1 = 16, 8
    enc0 = torch.randn(d, n0, generator=g)
    enc0 = enc0 / enc0.norm(dim=0)
    dec0 = torch.stack([ortho(torch.randn(d, generator=g)) for _ in range(n0)])
    enc0[:, S], dec0[S] = u, u
    enc0[:, W], dec0[W] = u, 0.3 * u
    enc1 = torch.randn(d, n1, generator=g)
    enc1 = enc1 / enc1.norm(dim=0)
    enc1[:, T] = u
    b1 = torch.zeros(n1)
    b1[T] = BIAS
    mid = str(tiny_gpt2_dir)
    up = _write(_sae(UP, enc0, dec0, torch.zeros(n0), mid), folder / "up.h5")
    down = _write(_sae(DOWN, enc1, torch.randn(n1, d, generator=g), b1, mid), folder / "down.h5")
    texts = folder / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    return Wired(model, up, down, texts, u, folder)


def _run(wired, out, **kw):
    from saetool.analysis.pathways import PathwaysConfig, run_pathways

    targets = kw.pop("targets", ["L1-2", "L1-0"])
    config = PathwaysConfig(**{"top_k": 6, "batch_size": 2, **kw})
    return run_pathways(config, [wired.up, wired.down], targets, texts_file=wired.texts, output=out, model=wired.model, progress=False)


def _independent_ablation(wired) -> tuple[float, float]:
    """(sum of f_S, change of the target's summed activation when S is removed) with plain
    run_with_cache and an edit hook written here, not the pathways code."""
    model, u = wired.model, wired.u
    ids, mask, pos = _counted(model, TEXTS)

    def target_sum(edit=None):
        acts = model.run_with_cache(ids, [UP, DOWN], attention_mask=mask, edit_hooks=edit)
        return torch.relu(acts[DOWN][pos] @ u + BIAS).sum().item(), acts[UP]

    clean, x0 = target_sum()
    f_s = torch.relu(x0 @ u) * pos  # [batch, pos]

    def remove_s(x):
        return x - f_s.unsqueeze(-1) * u

    ablated, _ = target_sum({UP: remove_s})
    return f_s.sum().item(), ablated - clean


def test_the_wired_source_ranks_first_and_the_replay_confirms_it(wired, tmp_path):
    result = _run(wired, tmp_path / "p.h5")
    edges = result.edges
    for_t = edges[edges.target == "L1-2"].sort_values("rank")
    assert list(for_t.source[:2]) == ["L0-3", "L0-5"]  # S first, its weaker copy second
    s, w = for_t.iloc[0], for_t.iloc[1]
    sum_fs, true_change = _independent_ablation(wired)
    # ablation predicted from the gradient: about -sum(f_S) (the target reads u with unit weight)
    assert s.predicted == pytest.approx(-sum_fs, rel=0.05)
    assert s.predicted == pytest.approx(-s.attribution)  # factor 0: predicted = -attribution
    # the replay measures exactly what removing f_S * u from the residual does
    assert s.actual == pytest.approx(true_change, rel=1e-3, abs=1e-4)
    assert abs(s.actual) > 1.0 and s.actual < 0
    assert w.actual / s.actual == pytest.approx(0.3, abs=0.03)
    others = for_t.iloc[2:]
    assert len(others) == 4 and (others.actual.abs() < 0.1 * abs(s.actual)).all()
    # predicted vs actual agree edge by edge, and the reported correlation is scipy's on the table
    assert np.allclose(edges.predicted, edges.actual, atol=0.1 * abs(s.actual))
    r = stats.pearsonr(edges.predicted, edges.actual).statistic
    rho = stats.spearmanr(edges.predicted, edges.actual).statistic
    assert result.correlation["pearson"] == pytest.approx(r) and r > 0.99
    assert result.correlation["spearman"] == pytest.approx(rho)
    assert result.correlation["n_edges"] == len(edges) == 12
    # per edge: does the sign agree; per target: its own edges' r and share of agreeing signs (scipy's on its rows)
    assert list(edges.sign_agrees) == list((np.sign(edges.predicted) == np.sign(edges.actual)).astype(int))
    assert result.correlation["sign_agreement"] == pytest.approx(edges.sign_agrees.mean())
    for name, row in result.targets.set_index("name").iterrows():
        mine = edges[edges.target == name]
        assert row.pearson == pytest.approx(stats.pearsonr(mine.predicted, mine.actual).statistic)
        assert row.sign_agreement == pytest.approx(mine.sign_agrees.mean())
    assert result.targets.set_index("name").loc["L1-2", "pearson"] > 0.99
    # the target activation recorded is the clean summed activation
    tgt = result.targets.set_index("name")
    ids, mask, pos = _counted(wired.model, TEXTS)
    x1 = wired.model.run_with_cache(ids, [DOWN], attention_mask=mask)[DOWN][pos]
    assert tgt.loc["L1-2", "activation"] == pytest.approx(torch.relu(x1 @ wired.u + BIAS).sum().item(), rel=1e-5)


def test_control_edges_are_other_sources_matched_in_activity_and_the_wired_edges_beat_them(wired, tmp_path):
    """Per target, --control-edges other sources, each drawn (seeded per target) from the unused active
    sources nearest its edge's summed activation, replayed the same way; the edges' |actual| is tested
    against theirs (one-sided Mann-Whitney, scipy's on the tables), Holm over the targets."""
    from saetool.analysis.pathways import MATCH_POOL, read_controls
    from saetool.sae.io import load_sae

    result = _run(wired, tmp_path / "p.h5", targets=["L1-2"], top_k=2, control_edges=6, seed=3)
    edges, controls = result.edges, result.controls
    assert list(edges.source) == ["L0-3", "L0-5"] and len(controls) == 6
    assert list(controls.matched_to) == ["L0-3", "L0-5"] * 3 and not set(controls.source) & set(edges.source) and controls.source.is_unique
    # summed activations computed here, from a plain forward pass and the SAE's encoder
    ids, mask, pos = _counted(wired.model, TEXTS)
    x0 = wired.model.run_with_cache(ids, [UP], attention_mask=mask)[UP][pos]
    activity = load_sae(wired.up).encode(x0).sum(0).double().detach().numpy()
    assert np.allclose(edges.source_activation, activity[edges.source_feature], rtol=1e-4)
    assert np.allclose(controls.source_activation, activity[controls.source_feature], rtol=1e-4)
    free = [k for k in range(16) if activity[k] > 0 and k not in (3, 5)]
    taken: list[int] = []
    for row in controls.itertuples():  # each from the MATCH_POOL free sources nearest its edge's activity, in turn
        edge = int(row.matched_to.split("-")[1])
        pool = sorted((k for k in free if k not in taken), key=lambda k: (abs(np.log(activity[k]) - np.log(activity[edge])), k))[:MATCH_POOL]
        assert row.source_feature in pool
        taken.append(row.source_feature)
    # the rank is the source's place by |attribution| among every upstream feature
    everything = _run(wired, tmp_path / "all.h5", targets=["L1-2"], top_k=16, control_edges=0).edges.set_index("source")
    assert list(everything.loc[controls.source, "rank"]) == list(controls["rank"])
    assert np.allclose(everything.loc[controls.source, "actual"], controls.actual, rtol=1e-4, atol=1e-5)  # the same replay
    assert (controls.predicted == -controls.attribution).all()
    row = result.targets.set_index("name").loc["L1-2"]
    assert row.n_control == 6 and row.mean_abs_actual == pytest.approx(edges.actual.abs().mean())
    assert row.control_mean_abs_actual == pytest.approx(controls.actual.abs().mean()) and row.control_mean_abs_actual < 0.1 * row.mean_abs_actual
    assert row.control_p == pytest.approx(stats.mannwhitneyu(edges.actual.abs(), controls.actual.abs(), alternative="greater").pvalue)
    assert row.control_p < 0.05 and row.control_p_adjusted == row.control_p  # one target: Holm changes nothing
    stored = read_controls(result.path)
    assert list(stored.source) == list(controls.source) and np.allclose(stored.actual, controls.actual)
    # seeded per target: the same draw again, and with another target beside it; another seed draws others
    again = _run(wired, tmp_path / "q.h5", targets=["L1-2"], top_k=2, control_edges=6, seed=3).controls
    both = _run(wired, tmp_path / "b.h5", targets=["L1-2", "L1-0"], top_k=2, control_edges=6, seed=3)
    other = _run(wired, tmp_path / "r.h5", targets=["L1-2"], top_k=2, control_edges=6, seed=4).controls
    assert list(again.source) == list(controls.source) == list(both.controls[both.controls.target == "L1-2"].source)
    assert list(other.source) != list(controls.source)
    tgt = both.targets.set_index("name")
    ps = list(tgt["control_p"])
    from saetool.steer.stats import holm

    assert list(tgt["control_p_adjusted"]) == pytest.approx(holm(ps))
    assert len(_run(wired, tmp_path / "s.h5", targets=["L1-2"], top_k=2, control_edges=0).controls) == 0
    off = _run(wired, tmp_path / "t.h5", targets=["L1-2"], top_k=2, replay=False)
    assert len(off.controls) == 0 and np.isnan(off.targets["control_p"].iloc[0])
    # by default max(--top-k, 10), as many as there are unused active sources (16 features, 3 edges)
    assert len(_run(wired, tmp_path / "u.h5", targets=["L1-2"], top_k=3).controls) == min(10, len(free) - 1)


def test_batching_and_padding_do_not_change_the_numbers(wired, tmp_path):
    one = _run(wired, tmp_path / "a.h5", batch_size=1, top_k=3).edges
    five = _run(wired, tmp_path / "b.h5", batch_size=5, top_k=3).edges
    assert list(one.source) == list(five.source)
    assert np.allclose(one.attribution, five.attribution, rtol=1e-4, atol=1e-5)
    assert np.allclose(one.actual, five.actual, rtol=1e-4, atol=1e-5)


def test_scaling_instead_of_ablating(wired, tmp_path):
    ablate = _run(wired, tmp_path / "a.h5", targets=["L1-2"], top_k=1)
    double = _run(wired, tmp_path / "b.h5", targets=["L1-2"], top_k=1, factor=2.0)
    a, d = ablate.edges.iloc[0], double.edges.iloc[0]
    assert a.source == d.source == "L0-3"
    assert d.predicted == pytest.approx(d.attribution) and d.predicted > 0
    assert d.actual == pytest.approx(-a.actual, rel=0.05)  # the target is linear in f_S here


def test_cli_writes_the_artifact_a_json_export_and_a_manifest(wired, tmp_path):
    from saetool.analysis.pathways import read_pathways
    from saetool.artifacts.store import open_artifact

    out, export = tmp_path / "p.h5", tmp_path / "p.json"
    proc = run_cli("pathways", "--sae", str(wired.up), "--sae", str(wired.down), "--target", "L1-2", "-t", "L1-0",
                   "--texts", str(wired.texts), "-k", "3", "-b", "2", "-o", str(out), "--export", str(export))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["kind"] == "pathways" and manifest["path"] == str(out.resolve()) and manifest["n_edges"] == 6
    assert manifest["pearson"] > 0.99
    assert "L0-3" in proc.stderr and "Pearson" in proc.stderr and "per target, over its own edges" in proc.stderr
    assert "control: other sources matched in activity" in " ".join(proc.stderr.split()) and "(n 10)" in proc.stderr
    assert "(--show)" not in proc.stderr  # all 6 edges shown
    short = run_cli("pathways", "--sae", str(wired.up), "--sae", str(wired.down), "--target", "L1-2", "-t", "L1-0",
                    "--texts", str(wired.texts), "-k", "3", "-b", "2", "--show", "4", "-o", str(tmp_path / "short.h5"))
    assert short.returncode == 0 and "the first 4 of 6 edges (--show)" in " ".join(short.stderr.split())
    edges, targets, attrs = read_pathways(out)
    data = json.loads(export.read_text())
    assert [e["source"] for e in data["edges"]] == list(edges.source)
    assert len(data["controls"]) == 20 and not {e["source"] for e in data["controls"] if e["target"] == "L1-2"} & set(edges[edges.target == "L1-2"].source)
    assert np.allclose([e["actual"] for e in data["edges"]], edges.actual)
    assert edges[edges.target == "L1-2"].iloc[0].source == "L0-3"
    assert attrs["settings"]["top_k"] == 3 and [s["layer"] for s in attrs["saes"]] == [0, 1]
    with open_artifact(out, kind="pathways") as art:
        assert {p["kind"] for p in art.provenance["parents"]} == {"sae"}


def _other_model_sae(wired):
    from saetool.sae.io import load_sae

    sae = load_sae(wired.down)
    sae.cfg.model = "smollm2-135m"
    return _write(sae, wired.folder / "other.h5")


@pytest.mark.parametrize(
    "target, needle",
    [("L5-0", "no SAE for layer 5"), ("L0-1", "no SAE upstream"), ("layer1:2", "not a feature name"), ("L1-8", "out of range")],
)
def test_bad_targets_are_refused_before_any_work(wired, tmp_path, target, needle):
    from saetool.errors import SaetoolError

    with pytest.raises(SaetoolError, match=needle):
        _run(wired, tmp_path / "p.h5", targets=[target])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "case, needle",
    [("out_of_range", "out of range"), ("other_model", "different models"), ("no_tokens", "tokenise to nothing")],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(wired, tmp_path, case, needle):
    target, saes, texts = "L1-2", [wired.up, wired.down], wired.texts
    if case == "out_of_range":
        target = "L1-8"
    elif case == "other_model":
        saes = [wired.up, _other_model_sae(wired)]
    elif case == "no_tokens":
        texts = tmp_path / "empty.txt"
        texts.write_text("<|im_end|>\n<|im_start|>\n")
    out = tmp_path / "p.h5"
    args = [a for p in saes for a in ("--sae", str(p))]
    proc = run_cli("pathways", *args, "--target", target, "--texts", str(texts), "-o", str(out), "--export", str(tmp_path / "p.json"))
    assert_clean_error(proc, needle)
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("p.")) == []


#: The attributes every `selection` artifact carries (what `saetool select` writes), for hand-made tables.
SELECTION_ATTRS = {"unit": "token", "layers": [0, 1], "saes": {}, "d_sae": {}}


def test_transformer_lens_backend_and_corpus_windows_and_a_selection(wired, tiny_gpt2_dir, tmp_path):
    """The TransformerLens backend takes the same gradients; targets can come from a
    `selection` artifact; texts can be corpus windows."""
    import pandas as pd

    from saetool.analysis.pathways import selection_names
    from saetool.analysis.select import COLUMNS, write_selection
    from saetool.artifacts.provenance import build_provenance
    from saetool.models.registry import load_model

    table = pd.DataFrame({c: [0, 0] for c in COLUMNS[1:]} | {"name": ["L1-2", "L1-0"], "layer": [1, 1], "feature": [2, 0]})
    table = table.astype({c: float for c in ("d", "mean_a", "mean_b", "std_a", "std_b")})
    sel = write_selection(tmp_path / "sel.h5", table[list(COLUMNS)], attrs=SELECTION_ATTRS, provenance=build_provenance())
    names = selection_names(sel)
    assert names == ["L1-2", "L1-0"]
    hf = _run(wired, tmp_path / "hf.h5", targets=names, top_k=3).edges
    from saetool.analysis.pathways import PathwaysConfig, run_pathways

    tl_model = load_model(str(tiny_gpt2_dir), backend="transformer-lens")
    tl = run_pathways(PathwaysConfig(top_k=3, batch_size=2), [wired.up, wired.down], names, texts_file=wired.texts,
                      output=tmp_path / "tl.h5", model=tl_model, progress=False).edges
    assert list(tl.source) == list(hf.source)
    assert np.allclose(tl.attribution, hf.attribution, rtol=1e-3, atol=1e-4)
    assert np.allclose(tl.actual, hf.actual, rtol=1e-3, atol=1e-4)
    windows = run_pathways(PathwaysConfig(top_k=2, batch_size=4, context_size=16), [wired.up, wired.down], ["L1-2"], corpus="bbc-news",
                           num_texts=4, output=tmp_path / "c.h5", model=wired.model, progress=False)
    assert windows.n_texts == 4 and windows.n_tokens == 4 * 15  # BOS of each window is not counted
    assert windows.edges.iloc[0].source == "L0-3"


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_cli_selection_targets_at_the_lowest_layer_are_skipped_and_counted(wired, tmp_path):
    """A selection made over the same SAEs holds layer-0 features too (issue 17): pathways
    skips and counts them; an explicit --target there is still an error."""
    import pandas as pd

    from saetool.analysis.pathways import read_pathways
    from saetool.analysis.select import COLUMNS, write_selection
    from saetool.artifacts.provenance import build_provenance

    table = pd.DataFrame({c: [0, 0, 0] for c in COLUMNS[1:]} | {"name": ["L0-3", f"L1-{T}", "L0-5"], "layer": [0, 1, 0], "feature": [3, T, 5]})
    table = table.astype({c: float for c in ("d", "mean_a", "mean_b", "std_a", "std_b")})
    sel = write_selection(tmp_path / "sel.h5", table[list(COLUMNS)], attrs=SELECTION_ATTRS, provenance=build_provenance())
    out = tmp_path / "p.h5"
    proc = run_cli("pathways", "--sae", str(wired.up), "--sae", str(wired.down), "--selection", str(sel), "--texts", str(wired.texts),
                   "--top-k", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["targets"] == [f"L1-{T}"] and manifest["skipped_targets"] == 2
    assert "2 selected feature(s) at layer 0, the lowest SAE layer, are skipped" in " ".join(proc.stderr.split())
    edges, targets, attrs = read_pathways(out)
    assert list(targets["name"]) == [f"L1-{T}"] and attrs["skipped_targets"] == ["L0-3", "L0-5"]
    assert edges.iloc[0].source == f"L0-{S}"
    explicit = run_cli("pathways", "--sae", str(wired.up), "--sae", str(wired.down), "--target", "L0-3", "--texts", str(wired.texts), "-o", str(tmp_path / "q.h5"))
    assert_clean_error(explicit, "no SAE upstream")
    only_low = write_selection(tmp_path / "low.h5", table[table["layer"] == 0][list(COLUMNS)], attrs=SELECTION_ATTRS, provenance=build_provenance())
    assert_clean_error(run_cli("pathways", "--sae", str(wired.up), "--sae", str(wired.down), "--selection", str(only_low), "--texts", str(wired.texts),
                               "-o", str(tmp_path / "r.h5")), "lowest SAE layer")
