"""``saetool select``: Cohen's d per SAE feature between two activation sets,
checked against scipy on real SmolLM2 activations and a trained SAE."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from saetool.analysis.select import (
    ActivationsArtifactSet,
    CompletionsSet,
    SelectConfig,
    read_selection,
    select_features,
)
from saetool.analysis.stats import Moments, cohens_d
from saetool.errors import SaetoolError
from tests.helpers import REPO, assert_clean_error, run_cli

HOOK3, HOOK4 = "blocks.3.hook_resid_post", "blocks.4.hook_resid_post"


@pytest.fixture(scope="module")
def two_sets(smollm2, tmp_path_factory):
    """News (bbc-news) and scripture (kjv) activations at layers 3 and 4, 512 tokens each."""
    from saetool.extract.api import ExtractConfig, extract_activations

    folder = tmp_path_factory.mktemp("select_sets")
    out = {}
    for name, corpus in (("news", "bbc-news"), ("kjv", "kjv")):
        config = ExtractConfig(corpus=corpus, hooks=[HOOK3, HOOK4], num_tokens=512, context_size=64, batch_size=8)
        out[name] = extract_activations(config, folder / f"{name}.h5", progress=False, model=smollm2)
    return out


def _edited_sae(src, dst, **changes):
    """A copy of an sae artifact with config fields changed (a real file on disk)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as fh:
        cfg = json.loads(fh.attrs["config"])
        cfg.update(changes)
        fh.attrs["config"] = json.dumps(cfg)
    return dst


@pytest.fixture(scope="module")
def sae4(smollm2_sae, tmp_path_factory):
    """The layer-3 SAE relabelled to read layer 4 (same width): a second layer to select on."""
    return _edited_sae(smollm2_sae, tmp_path_factory.mktemp("sae4") / "sae4.h5", hook=HOOK4, hook_out=HOOK4)


def _features(acts_path, hook, sae_path):
    """Every token's feature activations, computed directly (the reference)."""
    from saetool.artifacts.activations import ActivationsFile
    from saetool.sae.io import load_sae

    sae = load_sae(sae_path)
    with ActivationsFile(acts_path) as f, torch.no_grad():
        return sae.encode(f.read(hook, dtype=torch.float32)).double().numpy(), f.seq_index()


def _reference_d(xa, xb):
    """Cohen's d from scipy's equal-variance t statistic: d = t·sqrt(1/n_a + 1/n_b)."""
    t = stats.ttest_ind(xa, xb, axis=0, equal_var=True).statistic
    return t * np.sqrt(1 / len(xa) + 1 / len(xb))


def test_moments_and_cohens_d_match_numpy_and_scipy():
    rng = np.random.default_rng(0)
    xa = rng.gamma(2.0, size=(301, 6))
    xb = rng.gamma(2.5, size=(157, 6)) + 0.2
    xa[:, 4] = 0.0  # a dead feature: zero variance, equal means
    xb[:, 4] = 0.0
    xa[:, 5] = 1.0  # constant in each set, different means: perfect separation
    xb[:, 5] = 2.0
    ma, mb = Moments.empty(6), Moments.empty(6)
    for chunk in np.array_split(xa, 7):  # chunked merging must equal the one-shot numbers
        ma.update(chunk)
    for chunk in np.array_split(xb, 3):
        mb.update(chunk)
    np.testing.assert_allclose(ma.mean, xa.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ma.var, xa.var(0, ddof=1), rtol=1e-10, atol=1e-15)
    d = cohens_d(ma, mb)
    pooled = np.sqrt(((len(xa) - 1) * xa.var(0, ddof=1) + (len(xb) - 1) * xb.var(0, ddof=1)) / (len(xa) + len(xb) - 2))
    np.testing.assert_allclose(d[:4], (xa.mean(0) - xb.mean(0))[:4] / pooled[:4], rtol=1e-10)
    np.testing.assert_allclose(d[:4], _reference_d(xa[:, :4], xb[:, :4]), rtol=1e-8)
    assert d[4] == 0.0
    assert d[5] == -np.inf


def _check_per_token(sets, saes, tmp_path):
    """Per-token d for every feature of each (layer, hook, SAE) in ``saes`` equals scipy's."""
    a, b = ActivationsArtifactSet(sets["news"], "a"), ActivationsArtifactSet(sets["kjv"], "b")
    from saetool.sae.io import load_sae

    d_sae = load_sae(saes[0][2]).cfg.d_sae
    config = SelectConfig(top=d_sae, chunk_rows=100)  # all features; chunks that straddle sequences
    result = select_features(a, b, [sae for _, _, sae in reversed(saes)], tmp_path / "sel.h5", config=config)
    table = read_selection(result.path)
    assert table.attrs["layers"] == [layer for layer, _, _ in saes] and table.attrs["unit"] == "token"
    for layer, hook, sae in saes:
        xa, _ = _features(sets["news"], hook, sae)
        xb, _ = _features(sets["kjv"], hook, sae)
        ref = _reference_d(xa, xb)
        dead = (xa.std(0) == 0) & (xb.std(0) == 0) & (xa.mean(0) == xb.mean(0))
        part = table[table["layer"] == layer].set_index("feature").sort_index()
        assert len(part) == d_sae and list(part.index) == list(range(d_sae))
        assert (part["n_a"] == 512).all() and (part["n_b"] == 512).all()
        np.testing.assert_allclose(part["d"].to_numpy()[~dead], ref[~dead], rtol=1e-6, atol=1e-9)
        assert (part["d"].to_numpy()[dead] == 0).all()
        np.testing.assert_allclose(part["mean_a"], xa.mean(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(part["std_b"], xb.std(0, ddof=1), rtol=1e-6, atol=1e-9)
        assert (part["name"] == [f"L{layer}-{i}" for i in part.index]).all()


def test_select_per_token_matches_scipy(two_sets, smollm2_sae, sae4, tmp_path):
    _check_per_token(two_sets, [(3, HOOK3, smollm2_sae), (4, HOOK4, sae4)], tmp_path)


@pytest.fixture(scope="module")
def tiny_two_sets(tiny_gpt2, tmp_path_factory):
    """News and scripture through the tiny random GPT-2 at layers 0 and 1, 512 tokens each."""
    from saetool.extract.api import ExtractConfig, extract_activations

    folder = tmp_path_factory.mktemp("select_tiny_sets")
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    return {name: extract_activations(ExtractConfig(corpus=corpus, hooks=hooks, num_tokens=512, context_size=64, batch_size=8), folder / f"{name}.h5", progress=False, model=tiny_gpt2)
            for name, corpus in (("news", "bbc-news"), ("kjv", "kjv"))}


def test_select_per_token_matches_scipy_on_the_tiny_model(tiny_two_sets, tiny_sae, tmp_path):
    hook0 = "blocks.0.hook_resid_post"
    sae0 = _edited_sae(tiny_sae, tmp_path / "sae0.h5", hook=hook0, hook_out=hook0)
    _check_per_token(tiny_two_sets, [(0, hook0, sae0), (1, "blocks.1.hook_resid_post", tiny_sae)], tmp_path)


def test_select_per_sequence_matches_scipy(two_sets, smollm2_sae, tmp_path):
    a, b = ActivationsArtifactSet(two_sets["news"], "a"), ActivationsArtifactSet(two_sets["kjv"], "b")
    result = select_features(a, b, [smollm2_sae], tmp_path / "seq.h5", config=SelectConfig(top=512, unit="sequence", chunk_rows=50))
    table = result.table.set_index("feature").sort_index()
    means = []
    for name in ("news", "kjv"):
        x, seq = _features(two_sets[name], HOOK3, smollm2_sae)
        means.append(pd.DataFrame(x).groupby(seq).mean().to_numpy())
    assert table["n_a"].iloc[0] == len(means[0]) == len(np.unique(_features(two_sets["news"], HOOK3, smollm2_sae)[1]))
    ref = _reference_d(*means)
    ok = np.isfinite(ref)
    assert ok.sum() > 400
    np.testing.assert_allclose(table["d"].to_numpy()[ok], ref[ok], rtol=1e-6, atol=1e-9)


def test_select_per_sequence_max_matches_scipy(two_sets, smollm2_sae, tmp_path):
    """Each sequence's largest activation is its sample; chunks that split a sequence join it."""
    a, b = ActivationsArtifactSet(two_sets["news"], "a"), ActivationsArtifactSet(two_sets["kjv"], "b")
    result = select_features(a, b, [smollm2_sae], tmp_path / "max.h5", config=SelectConfig(top=512, unit="sequence-max", chunk_rows=50, permutations=20))
    table = result.table.set_index("feature").sort_index()
    with h5py.File(result.path, "r") as fh:  # the chance level of the largest |d|, from the label shuffles
        chance, shuffles = json.loads(fh.attrs["chance_max_abs_d"]), int(fh.attrs["permutations"])
    assert list(chance) == ["3"] and 0 < chance["3"] < np.abs(table["d"]).max() and shuffles == 20
    maxima = []
    for name in ("news", "kjv"):
        x, seq = _features(two_sets[name], HOOK3, smollm2_sae)
        maxima.append(pd.DataFrame(x).groupby(seq).max().to_numpy())
    ref = _reference_d(*maxima)
    ok = np.isfinite(ref)
    assert ok.sum() > 400
    np.testing.assert_allclose(table["d"].to_numpy()[ok], ref[ok], rtol=1e-6, atol=1e-9)


def test_per_sequence_means_warn_when_the_sets_differ_in_length():
    from saetool.analysis.select import length_warning

    assert length_warning([10, 12], [11, 11]) is None
    message = length_warning([14, 13], [8, 8.4], ("harm", "benign"))
    assert message.startswith("set harm's sequences have 13.5 tokens on average, set benign's 8.2: a per-sequence mean dilutes") and "--per sequence-max does not" in message
    assert "maximum grows with the tokens" in length_warning([14, 13], [8, 8.4], unit="sequence-max") and "matched length" in message


def test_cli_top_n_exports_and_manifest(two_sets, smollm2_sae, tmp_path):
    out, csv, js = tmp_path / "sel.h5", tmp_path / "top.csv", tmp_path / "top.json"
    proc = run_cli("select", str(two_sets["news"]), str(two_sets["kjv"]), "--sae", str(smollm2_sae), "--top", "7", "-e", str(csv), "-e", str(js), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout.strip().splitlines()[-1])
    assert manifest["kind"] == "selection" and manifest["n_features"] == 7 and manifest["layers"] == [3]
    table = read_selection(out)
    assert len(table) == 7 and list(table["rank"]) == list(range(1, 8))
    assert (np.diff(np.abs(table["d"])) <= 0).all()
    xa, _ = _features(two_sets["news"], HOOK3, smollm2_sae)
    xb, _ = _features(two_sets["kjv"], HOOK3, smollm2_sae)
    ref = np.nan_to_num(_reference_d(xa, xb))
    top_ref = np.argsort(-np.abs(ref), kind="stable")[:7]
    assert list(table["feature"]) == list(top_ref)
    assert list(table["name"]) == [f"L3-{i}" for i in top_ref]
    assert pd.read_csv(csv)["name"].tolist() == list(table["name"])
    exported = json.loads(js.read_text())
    assert [r["name"] for r in exported["rows"]] == list(table["name"])
    assert exported["rows"][0]["d"] == pytest.approx(float(table["d"].iloc[0]))
    assert "L3-" in proc.stderr  # the table


def test_select_only_listed_features(two_sets, smollm2_sae, tmp_path):
    a, b = ActivationsArtifactSet(two_sets["news"], "a"), ActivationsArtifactSet(two_sets["kjv"], "b")
    result = select_features(a, b, [smollm2_sae], tmp_path / "f.h5", config=SelectConfig(top=2, features=["L3-5", "L3-9", "L3-100"]))
    assert set(result.table["name"]) <= {"L3-5", "L3-9", "L3-100"} and len(result.table) == 2


def test_select_on_completions_conditions_matches_direct_runs(smollm2, smollm2_sae, tmp_path):
    """Two conditions of a completions artifact re-run through the model (batched,
    left-padded) equal the same texts run one by one."""
    from saetool.artifacts.provenance import build_provenance
    from saetool.sae.io import load_sae
    from saetool.steer.completions import write_completions
    from saetool.steer.prompts import encode, format_prompts

    prompts = ["Tell me about the weather.", "What is a good book?", "Describe a city."]
    texts = {
        "baseline": ["It is sunny and warm today.", "Many people enjoy novels.", "The city has tall buildings and busy streets."],
        "steered": ["And God said, let there be light.", "In the beginning was the Word.", ""],
    }
    path = write_completions(tmp_path / "c.h5", prompts=prompts, splits=[None] * 3, texts=texts, settings={"chat": True, "model": "smollm2-135m"}, provenance=build_provenance(model="smollm2-135m"))
    sets = [CompletionsSet(path, c, c, model=smollm2, batch_size=2) for c in ("baseline", "steered")]
    result = select_features(*sets, [smollm2_sae], tmp_path / "s.h5", config=SelectConfig(top=512, unit="sequence", labels=("baseline", "steered")))
    sae = load_sae(smollm2_sae)
    tok = smollm2.tokenizer
    prompt_ids = encode(tok, format_prompts(tok, prompts, chat=True), chat=True)
    per_seq = {}
    for cond, values in texts.items():
        rows = []
        for i, text in enumerate(values):
            if not text:
                continue
            comp = tok.encode(text, add_special_tokens=False)
            ids = torch.tensor([prompt_ids[i] + comp])
            with torch.no_grad():
                acts = smollm2.run_with_cache(ids, [HOOK3])[HOOK3][0, -len(comp):]
                rows.append(sae.encode(acts.float()).double().mean(0).numpy())
        per_seq[cond] = np.stack(rows)
    table = result.table.set_index("feature").sort_index()
    assert table["n_a"].iloc[0] == 3 and table["n_b"].iloc[0] == 2  # the empty completion is left out
    np.testing.assert_allclose(table["mean_a"], per_seq["baseline"].mean(0), rtol=1e-3, atol=1e-4)
    ref = _reference_d(per_seq["baseline"], per_seq["steered"])
    ok = np.isfinite(ref) & (np.abs(ref) < 1e3)
    np.testing.assert_allclose(table["d"].to_numpy()[ok], ref[ok], rtol=1e-2, atol=1e-3)
    # the two conditions pair by prompt: the two prompts with a completion in both, the empty one left out
    assert read_selection(result.path).attrs["pairing"] == {"paired": True, "pairs": 2, "why": ""}
    want = stats.ttest_rel(per_seq["baseline"][:2], per_seq["steered"], axis=0).statistic / np.sqrt(2)
    fine = np.isfinite(want) & (np.abs(want) < 1e3)
    np.testing.assert_allclose(table["d_paired"].to_numpy()[fine], want[fine], rtol=1e-2, atol=1e-3)


# -- bad input ---------------------------------------------------------------------------------------
def test_feature_out_of_range_is_a_clean_error(two_sets, smollm2_sae, tmp_path):
    out = tmp_path / "x.h5"
    proc = run_cli("select", str(two_sets["news"]), str(two_sets["kjv"]), "--sae", str(smollm2_sae), "--features", "L3-512", "-o", str(out))
    assert_clean_error(proc, "L3-512", "out of range", "512 features")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_saes_from_different_models_are_refused(two_sets, smollm2_sae, tmp_path):
    other = _edited_sae(smollm2_sae, tmp_path / "gemma.h5", model="gemma3-270m", hook=HOOK4, hook_out=HOOK4)
    out = tmp_path / "x.h5"
    proc = run_cli("select", str(two_sets["news"]), str(two_sets["kjv"]), "--sae", str(smollm2_sae), "--sae", str(other), "-o", str(out))
    assert_clean_error(proc, "different models")
    assert not out.exists()


def test_more_bad_input(two_sets, smollm2_acts, smollm2_sae, tmp_path):
    a, b = ActivationsArtifactSet(two_sets["news"], "a"), ActivationsArtifactSet(two_sets["kjv"], "b")
    with pytest.raises(SaetoolError, match="two SAEs for layer 3"):
        select_features(a, b, [smollm2_sae, smollm2_sae], tmp_path / "x.h5")
    with pytest.raises(SaetoolError, match="no SAE for layer 7"):
        select_features(a, b, [smollm2_sae], tmp_path / "x.h5", config=SelectConfig(features=["L7-1"]))
    with pytest.raises(SaetoolError, match="not a feature name"):
        select_features(a, b, [smollm2_sae], tmp_path / "x.h5", config=SelectConfig(features=["feature 3"]))
    only3 = ActivationsArtifactSet(smollm2_acts, "b")  # layer 3 only
    with pytest.raises(SaetoolError, match="no activations at blocks.4"):
        select_features(a, only3, [_edited_sae(smollm2_sae, tmp_path / "s4.h5", hook=HOOK4, hook_out=HOOK4)], tmp_path / "x.h5")
    with pytest.raises(SaetoolError, match="--top"):
        select_features(a, b, [smollm2_sae], tmp_path / "x.h5", config=SelectConfig(top=0))
    assert not (tmp_path / "x.h5").exists()
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    proc = run_cli("select", str(empty), str(two_sets["kjv"]), "--sae", str(smollm2_sae), "-o", str(tmp_path / "y.h5"))
    assert_clean_error(proc, "not an HDF5 file")
    assert not (tmp_path / "y.h5").exists()


def test_the_chance_level_of_the_largest_d_is_a_permutation_quantile():
    from saetool.analysis.stats import permutation_max_abs_d

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 300)), rng.normal(size=(30, 300))
    null = permutation_max_abs_d(a, b, permutations=50, seed=1)
    # by hand: the same shuffles, d of every feature by the formula, the largest
    x, order = np.concatenate([a, b]), np.random.default_rng(1)
    for got in null[:5]:
        idx = order.permutation(50)
        pa, pb = x[idx[:20]], x[idx[20:]]
        want = np.abs(_reference_d(pa, pb)).max()
        assert got == pytest.approx(want, rel=1e-5)  # the samples are held as float32
    assert 0.6 < np.quantile(null, 0.95) < 1.5  # 300 null features, 20 vs 30 samples
    only = permutation_max_abs_d(a, b, permutations=5, seed=1, columns=np.array([0, 1]))
    assert (only <= null[:5] + 1e-12).all()


def test_same_length_shuffles_keep_what_length_explains():
    """Labels shuffled only among rows of one stratum: each shuffle keeps every stratum's count of
    set-a rows, so a feature that is the length itself keeps its |d| in the null, where plain
    shuffles would call it far above chance; with every row in one stratum it is a plain shuffle."""
    from saetool.analysis.stats import permutation_max_abs_d

    rng = np.random.default_rng(0)
    la, lb = rng.integers(10, 18, size=40), rng.integers(6, 12, size=40)  # set a longer, overlapping lengths
    a = np.column_stack([la + rng.normal(0, 0.1, 40), rng.normal(size=(40, 50))])  # feature 0 = length
    b = np.column_stack([lb + rng.normal(0, 0.1, 40), rng.normal(size=(40, 50))])
    observed = abs(_reference_d(a[:, :1], b[:, :1])[0])
    plain = permutation_max_abs_d(a, b, permutations=100, seed=1)
    strata = np.concatenate([la, lb])
    same = permutation_max_abs_d(a, b, permutations=100, seed=1, strata=strata)
    assert observed > np.quantile(plain, 0.95) + 1  # by plain shuffles, length looks like a strong effect
    assert np.quantile(same, 0.95) > 0.8 * observed  # within lengths, it is what chance gives
    # each shuffle keeps each stratum's set-a count (checked by replaying the shuffles)
    order, is_a = np.random.default_rng(1), np.arange(80) < 40
    groups = [np.flatnonzero(strata == v) for v in np.unique(strata)]
    for got in same[:3]:
        labels = is_a.copy()
        for g in groups:
            labels[g] = order.permutation(is_a[g])
        x = np.concatenate([a, b])
        assert [labels[g].sum() for g in groups] == [is_a[g].sum() for g in groups]
        assert got == pytest.approx(np.abs(_reference_d(x[labels], x[~labels])).max(), rel=1e-5)
    one = permutation_max_abs_d(a, b, permutations=20, seed=1, strata=np.zeros(80))
    assert np.quantile(one, 0.95) < observed / 2  # one stratum: plain shuffles
    with pytest.raises(ValueError, match="one value per row"):
        permutation_max_abs_d(a, b, permutations=1, strata=np.zeros(3))


def test_same_length_check_keeps_the_sequences_both_sets_share():
    """Only sequences of a length both sets hold: a feature that is the length loses its d there,
    one with a real set effect keeps it; the sequences used are counted; the candidates' columns
    map to the table's features."""
    from types import SimpleNamespace

    import pandas as pd

    from saetool.analysis.select import SameLength, SelectConfig, same_length_check

    rng = np.random.default_rng(0)
    la, lb = rng.integers(8, 20, size=60), rng.integers(4, 14, size=60)  # set a longer; lengths 8-13 shared
    def sample(lengths, effect):
        return np.column_stack([lengths + rng.normal(0, 0.5, len(lengths)), effect + rng.normal(size=len(lengths)), rng.normal(size=(len(lengths), 30))]).astype(np.float32)
    xa, xb = sample(la, 1.0), sample(lb, 0.0)  # feature 0: length; feature 1: a real difference (d about 1)
    acc = lambda x, lengths: SimpleNamespace(samples=lambda: x, lengths=list(lengths), columns=None)  # noqa: E731
    table = pd.DataFrame({"layer": [3, 3], "feature": [0, 1], "d": [2.0, 1.0]})
    got = same_length_check({3: acc(xa, la)}, {3: acc(xb, lb)}, [SimpleNamespace(layer=3)], SelectConfig(permutations=50), table)
    shared = (np.isin(la, lb).sum(), np.isin(lb, la).sum())
    assert got.rows == {3: shared} and 0 < got.level[3] < 1.5
    assert abs(got.d[0]) < 0.6 and got.d[1] > 0.7  # length explained the first, not the second
    ya, yb = xa[np.isin(la, lb)], xb[np.isin(lb, la)]
    assert got.d[1] == pytest.approx(_reference_d(ya[:, 1:2], yb[:, 1:2])[0], rel=1e-4)
    # candidates restricted (--features): the samples hold those columns only
    sub = same_length_check({3: SimpleNamespace(samples=lambda: xa[:, [1]], lengths=list(la), columns=np.array([1]))},
                            {3: SimpleNamespace(samples=lambda: xb[:, [1]], lengths=list(lb), columns=np.array([1]))},
                            [SimpleNamespace(layer=3)], SelectConfig(permutations=10), table.iloc[[1]].reset_index(drop=True))
    assert sub.d[0] == pytest.approx(got.d[1], rel=1e-6)
    # no length held by both sets: nothing measured
    none = same_length_check({3: acc(xa, la + 100)}, {3: acc(xb, lb)}, [SimpleNamespace(layer=3)], SelectConfig(permutations=10), table)
    assert none.level == {} and np.isnan(none.d).all() and isinstance(none, SameLength)


def test_per_sequence_samples_keep_only_the_candidate_features():
    from saetool.analysis.select import _SequenceStat

    rng = np.random.default_rng(0)
    f, seq = rng.random((12, 5)), np.repeat([0, 1, 2], 4)
    acc = _SequenceStat(5, "max", keep_rows=True, columns=np.array([1, 3]))
    acc.update(f[:6], seq[:6])  # a sequence split across chunks
    acc.update(f[6:], seq[6:])
    acc.finish()
    want = pd.DataFrame(f).groupby(seq).max().to_numpy()
    np.testing.assert_allclose(acc.samples(), want[:, [1, 3]], rtol=1e-6)  # kept as float32
    np.testing.assert_allclose(acc.moments.mean, want.mean(0))  # the moments still cover every feature
    small = _SequenceStat(5, "max", keep_rows=True, budget=4, columns=np.array([1, 3]))  # two sequences of two features fit, not three
    small.update(f[:8], seq[:8])
    assert small.samples() is not None and small.samples().shape == (1, 2)  # the second sequence is still open
    small.update(f[8:], seq[8:])
    small.finish()
    assert small.samples() is None


def test_paired_d_and_its_sign_flip_null_match_scipy_and_a_replay():
    from saetool.analysis.stats import paired_d, sign_flip_max_abs_d

    rng = np.random.default_rng(0)
    base = rng.normal(size=(25, 40)) * 5  # what a pair shares (the question): large, cancels in the difference
    a, b = base + rng.normal(size=(25, 40)), base + rng.normal(size=(25, 40))
    a[:, 0] += 1.5  # feature 0: a real paired effect
    d = paired_d(a - b)
    t = stats.ttest_rel(a, b, axis=0).statistic
    np.testing.assert_allclose(d, t / np.sqrt(25), rtol=1e-10)
    assert d[0] > 0.5 and abs(_reference_d(a[:, :1], b[:, :1])[0]) < 0.5  # the pairs find what the unpaired d misses
    same = paired_d(np.array([[1.0, 0.0, -2.0], [1.0, 0.0, -2.0]]))  # every pair differs by the same amount
    assert same[0] == np.inf and same[1] == 0 and same[2] == -np.inf
    null = sign_flip_max_abs_d(a - b, permutations=30, seed=3)
    replay = np.random.default_rng(3)
    for got in null[:5]:
        signs = replay.choice(np.array([-1.0, 1.0]), size=25)
        assert got == pytest.approx(np.abs(paired_d((a - b) * signs[:, None])).max(), rel=1e-9)
    assert 0.4 < np.quantile(null, 0.95) < 1.2  # 40 null features, 25 pairs
    # differences of nearly constant size: a flip's variance is tiny but must not be lost to rounding (float64)
    steady = np.column_stack([1e4 + rng.normal(0, 1e-3, 25), rng.normal(size=25)])
    flipped = sign_flip_max_abs_d(steady, permutations=50, seed=0)
    replay = np.random.default_rng(0)
    for got in flipped[:5]:
        signs = replay.choice(np.array([-1.0, 1.0]), size=25)
        assert got == pytest.approx(np.abs(paired_d(steady * signs[:, None])).max(), rel=1e-6)
    with pytest.raises(ValueError, match="two pairs"):
        paired_d(np.zeros((1, 3)))


@pytest.fixture(scope="module")
def tiny_prompt_sets(tiny_gpt2, tmp_path_factory):
    """Seed 003's harmful prompts, their ordinary twins (line by line, the same opening) and the
    unrelated benign prompts, one sequence per line through the tiny GPT-2 at layer 1."""
    from saetool.extract.api import ExtractConfig, extract_activations

    folder = tmp_path_factory.mktemp("select_pairs")
    prompts = REPO / "examples" / "prompts"
    return {name: extract_activations(ExtractConfig(corpus=f"files:{prompts / name}.txt", hooks=["blocks.1.hook_resid_post"], num_tokens=4096,
                                                    context_size=32, batch_size=8, per_line=True), folder / f"{name}.h5", progress=False, model=tiny_gpt2)
            for name in ("harm_train", "benign_matched", "benign_train")}


def test_sets_that_pair_line_by_line_rank_by_the_paired_d(tiny_prompt_sets, tiny_sae, tmp_path):
    hook = "blocks.1.hook_resid_post"
    harm, matched = ActivationsArtifactSet(tiny_prompt_sets["harm_train"], "a"), ActivationsArtifactSet(tiny_prompt_sets["benign_matched"], "b")
    result = select_features(harm, matched, [tiny_sae], tmp_path / "p.h5", config=SelectConfig(top=20, unit="sequence-max", permutations=30),
                             exports=[tmp_path / "p.json"])
    maxima = []
    for name in ("harm_train", "benign_matched"):
        x, seq = _features(tiny_prompt_sets[name], hook, tiny_sae)
        maxima.append(pd.DataFrame(x).groupby(seq).max().to_numpy())
    assert len(maxima[0]) == len(maxima[1]) == 50
    ref = np.nan_to_num(stats.ttest_rel(*maxima, axis=0).statistic / np.sqrt(50))  # NaN: a feature with no difference in any pair
    table = result.table
    np.testing.assert_allclose(table["d_paired"], ref[table["feature"]], rtol=1e-5, atol=1e-9)
    want = np.lexsort((np.arange(len(ref)), -np.abs(ref)))[:20]
    assert list(table["feature"]) == list(want)  # ranked by the paired d, not by d
    np.testing.assert_allclose(table["d"], _reference_d(*maxima)[table["feature"]], rtol=1e-6)  # d stays Cohen's d
    stored = read_selection(result.path)
    assert stored.attrs["pairing"] == {"paired": True, "pairs": 50, "why": ""}
    assert list(stored.attrs["chance_max_abs_d_paired"]) == ["1"] and "chance_max_abs_d" not in stored.attrs
    np.testing.assert_allclose(stored["d_paired"], table["d_paired"])
    assert json.loads((tmp_path / "p.json").read_text())["pairing"]["paired"] is True
    # unrelated prompts of the same count: not paired by auto; --pairing paired pairs them anyway
    other = ActivationsArtifactSet(tiny_prompt_sets["benign_train"], "b")
    un = select_features(harm, other, [tiny_sae], tmp_path / "u.h5", config=SelectConfig(top=5, unit="sequence-max", permutations=10))
    attrs = read_selection(un.path).attrs
    assert attrs["pairing"]["paired"] is False and "share fewer than 3 opening tokens" in attrs["pairing"]["why"]
    assert "d_paired" not in un.table and "chance_max_abs_d" in attrs
    forced = select_features(harm, other, [tiny_sae], tmp_path / "f.h5", config=SelectConfig(top=5, unit="sequence-max", permutations=0, pairing="paired"))
    assert "d_paired" in forced.table and "chance_max_abs_d_paired" not in read_selection(forced.path).attrs
    off = select_features(harm, matched, [tiny_sae], tmp_path / "o.h5", config=SelectConfig(top=5, unit="sequence-max", permutations=0, pairing="unpaired"))
    assert "d_paired" not in off.table and read_selection(off.path).attrs["pairing"] == {"paired": False, "pairs": 0, "why": "--pairing unpaired"}


def test_pairing_bad_input(tiny_prompt_sets, tiny_two_sets, tiny_sae, tmp_path):
    harm = ActivationsArtifactSet(tiny_prompt_sets["harm_train"], "a")
    news = ActivationsArtifactSet(tiny_two_sets["news"], "b")
    with pytest.raises(SaetoolError, match="--pairing paired needs two sets of equal size"):
        select_features(harm, news, [tiny_sae], tmp_path / "x.h5", config=SelectConfig(unit="sequence", pairing="paired"))
    proc = run_cli("select", str(tiny_prompt_sets["harm_train"]), str(tiny_prompt_sets["benign_matched"]), "--sae", str(tiny_sae), "--pairing", "paired", "-o", str(tmp_path / "y.h5"))
    assert_clean_error(proc, "--pairing paired compares sequences, not tokens")
    with pytest.raises(SaetoolError, match="unknown --pairing 'both'"):
        SelectConfig(unit="sequence", pairing="both").validate()
    assert not list(tmp_path.glob("*.h5"))


def test_pairs_match_by_position_or_by_prompt_and_fall_back_or_fail():
    """Two prompt files pair the i-th sequence with the i-th (whatever their ids); two completions
    conditions pair by prompt id, an empty completion leaving its prompt out. Too few pairs, or
    samples over the budget: auto compares unpaired (with a warning), paired is a one-line error."""
    from types import SimpleNamespace

    from saetool.analysis.select import paired_comparison, paired_differences

    xa, xb = np.arange(6.0).reshape(3, 2), np.arange(6.0).reshape(3, 2)[::-1] * 2
    acc = lambda x, ids: SimpleNamespace(samples=lambda: x, ids=ids, columns=None)  # noqa: E731
    a, b = acc(xa, [0, 1, 2]), acc(xb, [0, 2, 5])
    diff, left = paired_differences(a, b, by_id=False)
    np.testing.assert_array_equal(diff, xa - xb)
    assert left == 0
    diff, left = paired_differences(a, b, by_id=True)  # ids 0 and 2 in both
    np.testing.assert_array_equal(diff, xa[[0, 2]] - xb[[0, 1]])
    assert left == 2
    layer = [SimpleNamespace(layer=3, sae=SimpleNamespace(cfg=SimpleNamespace(d_sae=2)))]
    one = {3: acc(xa[:1], [0])}
    assert paired_comparison(one, one, layer, SelectConfig(unit="sequence", permutations=0)) is None  # auto: unpaired
    with pytest.raises(SaetoolError, match="--pairing paired: the sets hold 1 sequence pair"):
        paired_comparison(one, one, layer, SelectConfig(unit="sequence", permutations=0, pairing="paired"))
    over = {3: acc(None, [0, 1])}
    over[3].samples = lambda: None
    with pytest.raises(SaetoolError, match="too many sequences to keep"):
        paired_comparison(over, over, layer, SelectConfig(unit="sequence", permutations=0, pairing="paired"))
    got = paired_comparison({3: a}, {3: acc(xb, [0, 1, 2])}, layer, SelectConfig(unit="sequence", permutations=0))
    np.testing.assert_allclose(got.d[3], stats.ttest_rel(xa, xb, axis=0).statistic / np.sqrt(3))
    assert got.n_pairs == 3
