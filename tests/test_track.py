"""saetool track: the tracker's events, the planted ground truth, the artifact and the command."""

from __future__ import annotations

import json
import h5py
import shutil

import numpy as np
import pytest

from tests.helpers import assert_clean_error, run_cli

from saetool.errors import SaetoolError
from saetool.track.tracker import Link, build_tracks, find_events

HOOKS = [f"blocks.{i}.hook_resid_post" for i in range(3)]


def test_events_from_links():
    links = [Link(0, 0, 0, 0.9, 0.9), Link(0, 1, 1, 0.8, 0.7), Link(0, 1, 2, 0.8, 0.6), Link(0, 2, 3, 0.7, 0.6), Link(0, 3, 3, 0.7, 0.6),
             Link(0, 5, 5, 0.7, 0.6), Link(0, 5, 6, 0.7, 0.6), Link(0, 6, 6, 0.7, 0.6)]
    kinds = {(e.kind, e.sources, e.targets) for e in find_events(0, [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6, 7], links)}
    assert kinds == {
        ("continue", (0,), (0,)), ("split", (1,), (1, 2)), ("merge", (2, 3), (3,)), ("complex", (5, 6), (5, 6)),
        ("death", (4,), ()), ("birth", (), (4,)), ("birth", (), (7,)),
    }


def test_tracks_follow_continues_and_restart_at_splits():
    live = [[0, 1], [0, 1, 2], [0, 1]]
    links = [[Link(0, 0, 0, 1, 1), Link(0, 1, 1, 1, 1), Link(0, 1, 2, 1, 1)], [Link(1, 0, 0, 1, 1), Link(1, 1, 1, 1, 1)]]
    tracks, events = build_tracks(live, links)
    assert [(t.start, t.features, t.start_event, t.end_event) for t in tracks] == [
        (0, [0, 0, 0], "first", "last"), (0, [1], "first", "split"), (1, [1, 1], "split", "last"), (1, [2], "split", "death"),
    ]
    assert tracks[1].children == [2, 3] and tracks[2].parents == [1]
    assert sum(e.kind == "death" for e in events) == 1


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Three planted layers (every kind of event at both steps), a TopK SAE trained by saetool on each."""
    from saetool.track.synthetic import planted_layers
    from saetool.train.api import train_sae
    from saetool.train.config import TrainConfig
    from saetool.train.synthetic import write_activations

    folder = tmp_path_factory.mktemp("track")
    layers, truth = planted_layers(8192, d=32, spread=1.0, seed=0)
    acts = write_activations(folder / "acts.h5", dict(zip(HOOKS, layers)))
    saes = []
    for hook in HOOKS:
        # one rate for encoder and decoder: planted, noise-free features want a fast encoder (docs/benchmarks.md, "train quality")
        cfg = TrainConfig(arch="topk", d_sae=24, k=2, hook=hook, batch_size=256, steps=300, lr=3e-3, encoder_lr_ratio=1.0, dead_tokens=512,
                          checkpoint_every=100000, log_every=1000, val_fraction=0.05, seed=0)
        saes.append(train_sae(cfg, [acts], folder / f"sae-{hook}.h5", progress=False).path)
    return folder, acts, saes, truth


def test_ground_truth_events_recovered(planted):
    from saetool.sae.io import load_sae
    from saetool.track.api import TrackConfig, run_track
    from saetool.track.store import read_tracks
    from saetool.track.synthetic import match_features, precision_recall

    folder, acts, saes, truth = planted
    result = run_track(TrackConfig(), saes, activations=acts, output=folder / "tracks.h5", csv=folder / "tracks.csv")
    g = result.graph
    matches = [match_features(load_sae(p).W_dec.detach(), truth.directions[i], g.live[i]) for i, p in enumerate(saes)]
    assert [len(set(m.values())) for m in matches] == [len(f) for f in truth.features]  # the SAEs found every planted feature
    precision, recall = precision_recall(g.events, matches, truth)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    structural = ("split", "merge", "birth", "death")
    precision, recall = precision_recall(g.events, matches, truth, kinds=structural)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    tables, attrs = read_tracks(result.path)
    assert attrs["mode"] == "corpus" and attrs["layers"] == [0, 1, 2]
    assert len(tables["tracks"]) == len(g.tracks) == attrs["summary"]["n_tracks"]
    assert sum(attrs["summary"]["tracks_spanning"].values()) == len(g.tracks)
    # the six persistent roots span all three layers
    assert attrs["summary"]["tracks_spanning"].get("3", 0) >= 6
    lay = tables["layers"].set_index("layer")
    assert lay.loc[1, "birth"] == attrs["summary"]["events"]["birth"] - lay.loc[2, "birth"]
    csv = (folder / "tracks.csv").read_text().splitlines()
    assert csv[0].startswith("track,layer,feature,name") and len(csv) == 1 + len(tables["members"])


def test_decoder_only_links_without_activations(planted):
    from saetool.track.api import TrackConfig, run_track

    from saetool.sae.io import load_sae
    from saetool.track.synthetic import match_features, precision_recall

    folder, _, saes, truth = planted
    result = run_track(TrackConfig(), saes, output=folder / "dec.h5")
    g = result.graph
    assert all(len(live) == 24 for live in g.live)  # no activations: every feature counts
    assert all(np.isnan(ln.correlation) for step in g.links for ln in step)
    matches = [match_features(load_sae(p).W_dec.detach(), truth.directions[i], g.live[i]) for i, p in enumerate(saes)]
    precision, _ = precision_recall(g.events, matches, truth, kinds=("continue",))
    assert precision >= 0.9  # what decoder directions alone link is right; the SAEs' unused features add false events


def test_track_command_and_errors(planted, tmp_path):
    folder, acts, saes, _ = planted
    proc = run_cli("track", *map(str, saes), "-o", str(tmp_path / "t.h5"), "--plot", str(tmp_path / "flow.png"), "--html", str(tmp_path / "t.html"))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["kind"] == "tracks" and record["layers"] == [0, 1, 2] and record["events"]["split"] >= 2
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    page = " ".join((tmp_path / "t.html").read_text().split())
    assert 'href="features-L1.html#feature-' in page
    assert "The pages of 3 of 3 layers are not beside this page yet (layers 0, 1, 2)" in page  # none written: said, not silently broken
    (tmp_path / "features-L1.html").write_text("<html></html>")
    assert run_cli("track", *map(str, saes), "-o", str(tmp_path / "t2.h5"), "--html", str(tmp_path / "t2.html")).returncode == 0
    assert "The pages of 2 of 3 layers are not beside this page yet (layers 0, 2)" in " ".join((tmp_path / "t2.html").read_text().split())
    url = run_cli("track", *map(str, saes), "-o", str(tmp_path / "t4.h5"), "--html", str(tmp_path / "t4.html"), "--browser", "https://example.org/L{layer}.html")
    assert url.returncode == 0 and "not beside this page" not in (tmp_path / "t4.html").read_text()  # a URL is not checked on disk
    assert "layer 0:" in proc.stderr  # the summary, found the training activations by itself
    assert "reconstruction target" not in proc.stderr  # these SAEs met theirs (k 2 misses the default L0 range: a choice, not noise)
    # an SAE whose training checklist failed: track says so before linking
    bad = tmp_path / "bad-sae.h5"
    shutil.copy(saes[1], bad)
    with h5py.File(bad, "r+") as fh:
        training = json.loads(fh.attrs["training"])
        training["checklist"] = [{**item, "value": 0.61, "target": "< 0.3", "passed": False} if item.get("key") == "fvu" else item for item in training["checklist"]]
        fh.attrs["training"] = json.dumps(training)
    failed = run_cli("track", str(saes[0]), str(bad), str(saes[2]), "-o", str(tmp_path / "t3.h5"))
    assert failed.returncode == 0, failed.stderr
    assert "1 of 3 SAEs missed their training checklist's reconstruction target (layer 1: FVU 0.61 for < 0.3)" in " ".join(failed.stderr.split())
    assert_clean_error(run_cli("track", str(saes[0]), "-o", str(tmp_path / "x.h5")), "two or more layers")
    assert_clean_error(run_cli("track", *map(str, saes), "--min-ratio", "2", "-o", str(tmp_path / "x.h5")), "--min-ratio")


@pytest.fixture(scope="module")
def tiny_layer_saes(tiny_gpt2, tmp_path_factory):
    """TopK SAEs at blocks.0 and blocks.1 of the tiny GPT-2 (one extract, 100 steps each)."""
    from saetool.extract.api import ExtractConfig, extract_activations
    from saetool.train.api import train_sae
    from saetool.train.config import TrainConfig

    folder = tmp_path_factory.mktemp("track_text")
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    acts = extract_activations(ExtractConfig(hooks=hooks, num_tokens=512, context_size=64), folder / "acts.h5", progress=False, model=tiny_gpt2)
    return [train_sae(TrainConfig(arch="topk", d_sae=64, k=4, hook=h, batch_size=128, steps=40, lr=2e-3, checkpoint_every=100000, seed=0),
                      [acts], folder / f"sae-{h}.h5", progress=False).path for h in hooks]


def test_text_mode_tracks_per_token_and_compare(tiny_gpt2, tiny_layer_saes, tmp_path):
    from saetool.track.store import read_tracks
    from saetool.track.text import MEASURES, TextConfig, run_text_track

    a = tmp_path / "a.txt"
    a.write_text("The cat sat on the mat.\nStocks fell sharply on Monday.\nThe match ended in a draw.\n")
    b = tmp_path / "b.txt"
    b.write_text(a.read_text())
    result = run_text_track(TextConfig(top_features=4, tokens="all"), tiny_layer_saes, [a, b], output=tmp_path / "t.h5", model=tiny_gpt2)
    tables, attrs = read_tracks(result.path)
    assert attrs["mode"] == "text" and attrs["layers"] == [0, 1]
    tokens, tracks, members = tables["tokens"], tables["tracks"], tables["members"]
    per_token = tracks.groupby(["set", "prompt", "position"]).size()
    assert list(per_token.loc[[tuple(r) for r in tokens[["set", "prompt", "position"]].to_numpy()]]) == list(tokens["n_tracks"])
    assert (tokens["competing"] <= tokens["n_tracks"]).all() and (tokens["competing"] >= 1).all()
    assert members.groupby("track").size().loc[tracks["id"]].tolist() == tracks["length"].tolist()
    # at most 4 hypotheses per layer: at most 8 tracks, at most 4 alive at the last layer
    assert tokens["n_tracks"].max() <= 8 and tokens["competing"].max() <= 4
    cmp = tables["compare"].set_index("measure")
    assert list(cmp.index) == list(MEASURES)
    # the same prompts twice: no difference, nothing significant
    assert np.allclose(cmp["difference"].dropna(), 0.0) and (cmp["p_adjusted"].dropna() == 1.0).all()
    assert set(cmp["test"]) == {"paired t"} and (cmp["n"] == 3).all() and attrs["summary"]["pairing"] == {"paired": True, "tokens": "all", "left_out": []}
    assert len(result.lines) == 4 + len(MEASURES)  # the sets, the pairing, the measures and the model check
    assert attrs["summary"]["model_check"]["difference"] == 0 and attrs["summary"]["model_check"]["pairs_a_likelier"] == 0
    # text mode, too, says when an SAE missed its training checklist's reconstruction target
    bad = tmp_path / "bad.h5"
    shutil.copy(tiny_layer_saes[1], bad)
    with h5py.File(bad, "r+") as fh:
        training = json.loads(fh.attrs["training"])
        training["checklist"] = [{"key": "fvu", "name": "FVU (held-out)", "value": 0.72, "target": "< 0.3", "passed": False}]
        fh.attrs["training"] = json.dumps(training)
    proc = run_cli("track", str(tiny_layer_saes[0]), str(bad), "--texts", str(a), "--top-features", "4", "-o", str(tmp_path / "bad-t.h5"))
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stderr.split())  # the 40-step SAE at layer 0 misses its own target too
    assert "2 of 2 SAEs missed their training checklist's reconstruction target (layer 0: FVU" in said and "layer 1: FVU 0.72 for < 0.3" in said


def test_compare_pairs_by_line_and_scores_the_tokens_that_differ(tiny_gpt2, tiny_layer_saes, tmp_path):
    """Files of equal length pair line by line; each prompt is scored from the first token where it
    differs from its pair (the answer, not the shared question), and the test is paired."""
    from saetool.analysis.pairing import first_difference
    from saetool.analysis.pathways_inputs import rows_from_texts
    from saetool.steer.stats import paired_t_p, welch_p
    from saetool.track.store import read_tracks
    from saetool.track.text import MEASURES, TextConfig, run_text_track

    true = ["Q: What is the capital of France? A: Paris.", "Q: How many legs does a spider have? A: Eight.",
            "Q: Which planet is the largest? A: Jupiter.", "Q: What colour is the sky on a clear day? A: Blue.",
            "Q: What is frozen water called? A: Ice."]
    false = ["Q: What is the capital of France? A: Lyon.", "Q: How many legs does a spider have? A: Six.",
             "Q: Which planet is the largest? A: Saturn.", "Q: What colour is the sky on a clear day? A: Green.",
             "Q: What is frozen water called? A: Ice."]  # the last pair is identical: left out
    true.append("Q: What is the capital of Italy? A: Rome")
    false.append("Q: What is the capital of Italy? A: Rome, surely.")  # one a prefix of the other: left out too
    a, b = tmp_path / "true.txt", tmp_path / "false.txt"
    a.write_text("\n".join(true) + "\n")
    b.write_text("\n".join(false) + "\n")
    result = run_text_track(TextConfig(top_features=4), tiny_layer_saes, [a, b], output=tmp_path / "t.h5", model=tiny_gpt2)
    tables, attrs = read_tracks(result.path)
    prompts, tokens, cmp = tables["prompts"], tables["tokens"], tables["compare"].set_index("measure")
    rows = [rows_from_texts(tiny_gpt2.tokenizer, t, 64) for t in (true, false)]
    starts = [first_difference(x, y) for x, y in zip(*rows)]
    assert 1 < starts[0] < len(rows[0][0]) - 1 and starts[4] == len(rows[0][4]) and starts[5] == len(rows[0][5])
    for lab in ("true", "false"):
        mine = prompts[prompts["set"] == lab].sort_values("prompt")
        assert list(mine["first_scored"]) == starts
        for i, s in enumerate(starts[:5]):  # a prompt's measure is the mean over its tokens from the first differing one
            toks = tokens[(tokens["set"] == lab) & (tokens["prompt"] == i)]
            assert list(toks["scored"]) == [int(p >= s) for p in toks["position"]]
            assert mine["n_scored"].iloc[i] == int((toks["position"] >= s).sum())
            want = toks[toks["position"] >= s]["n_tracks"].mean() if i < 4 else np.nan
            assert mine["n_tracks"].iloc[i] == pytest.approx(want, nan_ok=True)
    assert attrs["summary"]["pairing"] == {"paired": True, "tokens": "differing", "left_out": [4, 5]}
    assert any("2 pair(s) left out" in line and "line 5, 6" in line for line in result.lines)
    ta, tb = (prompts[prompts["set"] == lab].sort_values("prompt")["n_tracks"].tolist() for lab in ("true", "false"))
    assert cmp.loc["n_tracks", "n"] == 4 and cmp.loc["n_tracks", "test"] == "paired t"
    assert cmp.loc["n_tracks", "difference"] == pytest.approx(np.mean(np.array(ta[:4]) - np.array(tb[:4])))
    assert cmp.loc["n_tracks", "testable"] == 1 and cmp.loc["n_tracks", "p"] == pytest.approx(paired_t_p(ta[:4], tb[:4]))
    assert cmp.loc["n_tracks", "low_difference"] < cmp.loc["n_tracks", "difference"] < cmp.loc["n_tracks", "high_difference"]
    # unpaired: every token scored, Welch's test
    un = run_text_track(TextConfig(top_features=4, pairing="unpaired"), tiny_layer_saes, [a, b], output=tmp_path / "u.h5", model=tiny_gpt2)
    ut, uattrs = read_tracks(un.path)
    assert (ut["tokens"]["scored"] == 1).all() and (ut["prompts"]["first_scored"] == 0).all()
    ucmp = ut["compare"].set_index("measure")
    ua, ub = (ut["prompts"][ut["prompts"]["set"] == lab]["n_tracks"].tolist() for lab in ("true", "false"))
    assert set(ucmp["test"]) == {"Welch"} and ucmp.loc["n_tracks", "p"] == pytest.approx(welch_p(ua, ub), nan_ok=True)
    assert uattrs["summary"]["pairing"]["paired"] is False and len(ucmp) == len(MEASURES)
    # equal lengths but unrelated lines: auto does not pair them (--pairing paired would)
    d = tmp_path / "other.txt"
    d.write_text("\n".join(["Stocks fell sharply on Monday.", "The cat sat on the mat.", "Rain is expected later today.",
                            "She opened the door and smiled.", "A small dog ran across the street.", "We cooked dinner together."]) + "\n")
    loose = run_text_track(TextConfig(top_features=4), tiny_layer_saes, [a, d], output=tmp_path / "x.h5", model=tiny_gpt2)
    assert any("compared unpaired (equal length, but 6 of 6 line pairs share fewer than 3 opening tokens" in line for line in loose.lines)
    assert set(loose.tables["compare"]["test"]) == {"Welch"}
    # sets of different sizes cannot pair
    c = tmp_path / "short.txt"
    c.write_text("\n".join(false[:3]) + "\n")
    auto = run_text_track(TextConfig(top_features=4), tiny_layer_saes, [a, c], output=tmp_path / "v.h5", model=tiny_gpt2)
    assert any("compared unpaired (6 and 3 prompts)" in line for line in auto.lines)
    with pytest.raises(SaetoolError, match="--pairing paired needs two sets of equal size"):
        run_text_track(TextConfig(top_features=4, pairing="paired"), tiny_layer_saes, [a, c], output=tmp_path / "w.h5", model=tiny_gpt2)
    assert not (tmp_path / "w.h5").exists()


def test_compare_sets_calls_a_constant_measure_not_testable():
    """A measure with one value on every prompt of both sets has no test (not p = 1), and the
    adjustment runs over the measures tested."""
    import pandas as pd

    from saetool.steer.stats import adjust, welch_p
    from saetool.track.text import MEASURES, compare_sets

    rng = np.random.default_rng(0)
    rows = [{"set": lab, "prompt": i, **{m: float(rng.normal(1 if lab == "a" else 0)) for m in MEASURES}, "competing": 16.0}
            for lab in ("a", "b") for i in range(8)]
    table = compare_sets(pd.DataFrame(rows), ["a", "b"], "holm").set_index("measure")
    assert table.loc["competing", "testable"] == 0 and np.isnan(table.loc["competing", "p"]) and np.isnan(table.loc["competing", "p_adjusted"])
    others = [m for m in MEASURES if m != "competing"]
    frame = pd.DataFrame(rows)
    ps = [welch_p(list(frame[frame.set == "a"][m]), list(frame[frame.set == "b"][m])) for m in others]
    assert list(table.loc[others, "p_adjusted"]) == pytest.approx(adjust(ps, "holm"))  # Holm over the five tested, not six


def test_compare_sets_paired_and_welch_intervals_and_untestable_spreads():
    """Paired: the t-interval of the pairs' differences, p from scipy's ttest_rel; one difference on
    every pair is not testable (not p = 0). Unpaired: Welch's interval by the Welch-Satterthwaite
    formula, written out here; one value in each set is not testable."""
    import pandas as pd
    from scipy import stats

    from saetool.track.text import MEASURES, compare_sets

    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 1.0, 12)
    b = a - rng.normal(0.5, 0.3, 12)
    rows = [{"set": lab, "prompt": i, **{m: float(v[i]) for m in MEASURES}} for lab, v in (("a", a), ("b", b)) for i in range(12)]
    for r in rows:  # n_tracks: b is a shifted by exactly 1 on every pair
        r["n_tracks"] = float(a[r["prompt"]] + (0 if r["set"] == "a" else -1))
    frame = pd.DataFrame(rows)
    paired = compare_sets(frame, ["a", "b"], "none", paired=True).set_index("measure")
    d = a - b
    half = stats.t.ppf(0.975, 11) * d.std(ddof=1) / np.sqrt(12)
    row = paired.loc["mean_length"]
    assert row["difference"] == pytest.approx(d.mean()) and row["low_difference"] == pytest.approx(d.mean() - half)
    assert row["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue) and row["n"] == 12
    assert paired.loc["n_tracks", "testable"] == 0 and np.isnan(paired.loc["n_tracks", "p"])
    unpaired = compare_sets(frame, ["a", "b"], "none", paired=False).set_index("measure")
    va, vb = a.var(ddof=1) / 12, b.var(ddof=1) / 12
    dof = (va + vb) ** 2 / (va**2 / 11 + vb**2 / 11)
    half = stats.t.ppf(0.975, dof) * np.sqrt(va + vb)
    row = unpaired.loc["mean_length"]
    assert row["low_difference"] == pytest.approx(a.mean() - b.mean() - half) and row["high_difference"] == pytest.approx(a.mean() - b.mean() + half)
    assert row["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue) and row["test"] == "Welch"
    constant = frame.assign(top_share=np.where(frame["set"] == "a", 0.5, 0.25))
    assert compare_sets(constant, ["a", "b"], "none", paired=False).set_index("measure").loc["top_share", "testable"] == 0


def test_crosscoder_decoder_norms_are_tracks(tmp_path):
    """A hand-built crosscoder over three layers: one feature everywhere, one born at 1, one dying after 1, one with a gap."""
    import torch

    from saetool.artifacts.provenance import build_provenance
    from saetool.sae.config import SAEConfig
    from saetool.sae.io import write_sae_artifact
    from saetool.sae.model import build_sae
    from saetool.track.api import TrackConfig, run_track

    d, n = 4, 4
    profile = torch.tensor([[1.0, 0.9, 1.0], [0.0, 1.0, 0.8], [1.0, 0.7, 0.02], [1.0, 0.0, 0.6]])  # [feature, layer] decoder norms
    w_dec = torch.cat([profile[:, i : i + 1] * torch.eye(n, d) for i in range(3)], dim=1)
    cfg = SAEConfig(arch="crosscoder", d_in=3 * d, d_sae=n, hook=HOOKS[0], options={"hooks": HOOKS, "widths": [d] * 3})
    sae = build_sae(cfg, {"W_enc": w_dec.T.clone(), "b_enc": torch.zeros(n), "W_dec": w_dec, "b_dec": torch.zeros(3 * d)})
    path = write_sae_artifact(tmp_path / "cc.h5", sae, provenance=build_provenance(hooks=HOOKS))
    result = run_track(TrackConfig(), [path], output=tmp_path / "t.h5")
    got = sorted((t.features[0], t.start, t.end, t.start_event, t.end_event) for t in result.graph.tracks)
    assert got == [(0, 0, 2, "first", "last"), (1, 1, 2, "birth", "last"), (2, 0, 1, "first", "death"), (3, 0, 0, "first", "death"), (3, 2, 2, "birth", "last")]
    assert result.summary["events"]["split"] == result.summary["events"]["merge"] == 0


def test_compare_checks_how_likely_the_model_finds_each_answer(tiny_gpt2, tiny_layer_saes, tmp_path):
    """A comparison also reports the model's log-probability of each prompt's scored tokens (the
    answer, given the question), against a plain forward pass of the Hugging Face model, and in how
    many pairs the first set's answer is the likelier: whether the model tells the sets apart at all."""
    import torch
    from scipy.stats import binomtest

    from saetool.analysis.pairing import first_difference
    from saetool.analysis.pathways_inputs import rows_from_texts
    from saetool.steer.stats import paired_t_p
    from saetool.track.store import read_tracks
    from saetool.track.text import TextConfig, run_text_track

    true = ["Q: What is the capital of France? A: Paris.", "Q: How many legs does a spider have? A: Eight.",
            "Q: Which planet is the largest? A: Jupiter.", "Q: What is frozen water called? A: Ice."]
    false = ["Q: What is the capital of France? A: Berlin, of course.", "Q: How many legs does a spider have? A: Six.",
             "Q: Which planet is the largest? A: Saturn.", "Q: What is frozen water called? A: Ice."]  # the last pair: left out
    a, b = tmp_path / "true.txt", tmp_path / "false.txt"
    a.write_text("\n".join(true) + "\n")
    b.write_text("\n".join(false) + "\n")
    result = run_text_track(TextConfig(top_features=4, batch_size=3), tiny_layer_saes, [a, b], output=tmp_path / "t.h5", model=tiny_gpt2)
    prompts = result.tables["prompts"]
    rows = [rows_from_texts(tiny_gpt2.tokenizer, t, 64) for t in (true, false)]
    hf = tiny_gpt2.model
    want = {}
    for lab, set_rows in zip(("true", "false"), rows):
        for i, row in enumerate(set_rows):
            start = first_difference(rows[0][i], rows[1][i])
            with torch.no_grad():
                logp = torch.log_softmax(hf(torch.tensor([row])).logits[0].double(), -1)
            want[lab, i] = sum(float(logp[t - 1, row[t]]) for t in range(start, len(row))) if start < len(row) else float("nan")
    got = {(r["set"], r["prompt"]): r["logprob"] for r in prompts.to_dict(orient="records")}
    assert got == pytest.approx(want, abs=1e-4, nan_ok=True)  # batched and right-padded: the same as one prompt alone
    assert np.isnan(got["true", 3]) and got["false", 0] < got["false", 1]  # "Berlin, of course." is more tokens to pay for
    check = read_tracks(result.path)[1]["summary"]["model_check"]
    ta, fa = [want["true", i] for i in range(3)], [want["false", i] for i in range(3)]
    assert check["n"] == 3 and check["test"] == "paired t" and check["pairs_a_likelier"] == sum(x > y for x, y in zip(ta, fa))
    assert check["difference"] == pytest.approx(np.mean(np.subtract(ta, fa)), abs=1e-4) and check["p"] == pytest.approx(paired_t_p(ta, fa), rel=1e-3)
    line = next(line for line in result.lines if line.startswith("model check:"))
    assert f"true the likelier in {check['pairs_a_likelier']} of 3 pairs" in line and "not adjusted with the measures" in line
    assert check["sign_p"] == pytest.approx(binomtest(check["pairs_a_likelier"], 3).pvalue)  # no ties among three sums
    # one prompt set alone: no comparison, no check
    single = run_text_track(TextConfig(top_features=4), tiny_layer_saes, [a], output=tmp_path / "s.h5", model=tiny_gpt2)
    assert "logprob" not in single.tables["prompts"] and not any(line.startswith("model check") for line in single.lines)
