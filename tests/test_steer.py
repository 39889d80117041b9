"""Steering vectors, ``run_steer`` and the ``steer``/``vector`` commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli
from saetool.artifacts.provenance import build_provenance
from saetool.errors import SaetoolError
from saetool.steer.vectors import SteeringVector, load_vector_file, read_vector, vector_from_sae, write_vector
from test_interventions import random_sae

HOOK = "blocks.6.hook_resid_post"


def write_prompts(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def make_vector(path, d=576, hook=HOOK, seed=0, model="smollm2-135m"):
    torch.manual_seed(seed)
    sv = SteeringVector(vector=torch.randn(d), hook=hook, model=model, method="import", resid_norm_mean=12.5)
    return write_vector(path, sv, provenance=build_provenance(model=model, hooks=[hook]))


# -- vectors ------------------------------------------------------------------------------------
def test_vector_artifact_roundtrip(tmp_path):
    from saetool.artifacts.store import open_artifact

    path = make_vector(tmp_path / "v.h5")
    sv = read_vector(path)
    assert sv.hook == HOOK and sv.layer == 6 and sv.d == 576 and sv.model == "smollm2-135m"
    assert sv.resid_norm_mean == 12.5
    torch.manual_seed(0)
    assert torch.allclose(sv.vector, torch.randn(576))
    with open_artifact(path, kind="vector") as art:
        assert art.attrs["norm"] == pytest.approx(float(sv.vector.norm()))
        assert art.provenance["hooks"] == [HOOK]


def test_vector_from_sae_is_the_decoder_row(tmp_path):
    sae = random_sae(16, 8)
    sv = vector_from_sae(sae, 3, source="x")
    assert torch.equal(sv.vector, sae.W_dec[3].detach())
    assert sv.hook == HOOK and sv.method == "from-sae" and sv.details["feature"] == 3
    with pytest.raises(SaetoolError, match="out of range"):
        vector_from_sae(sae, 8)


def test_load_vector_file_formats(tmp_path):
    v = np.arange(5, dtype="float32")
    np.save(tmp_path / "v.npy", v)
    torch.save({"direction": torch.from_numpy(v)}, tmp_path / "v.pt")
    (tmp_path / "v.txt").write_text("0 1 2\n3 4\n")
    for name in ("v.npy", "v.pt", "v.txt"):
        assert torch.equal(load_vector_file(tmp_path / name), torch.arange(5.0))
    np.save(tmp_path / "m.npy", np.zeros((3, 4)))
    with pytest.raises(SaetoolError, match="1-D"):
        load_vector_file(tmp_path / "m.npy")


def test_diff_means_is_the_difference_of_last_token_means(smollm2):
    from saetool.steer.prompts import encode, format_prompts
    from saetool.steer.vectors import diff_means_vectors

    pos, neg = ["How do I pick a lock?", "Write a scam email."], ["How do I bake bread?", "Name three fruits."]
    sv = diff_means_vectors(smollm2, pos, neg, [HOOK])[HOOK]

    def last_mean(texts):
        rows = encode(smollm2.tokenizer, format_prompts(smollm2.tokenizer, texts), chat=True)
        acts = [smollm2.run_with_cache(torch.tensor([r]), [HOOK])[HOOK][0, -1] for r in rows]
        return torch.stack(acts).mean(0)

    assert torch.allclose(sv.vector, last_mean(pos) - last_mean(neg), atol=1e-3)
    assert sv.layer == 6 and sv.method == "diff-means" and sv.details["n_positive"] == 2
    assert 10 < sv.resid_norm_mean < 1000  # the first token's huge norm is left out


# -- steering ------------------------------------------------------------------------------------
def test_run_steer_writes_baseline_and_steered(smollm2, tmp_path):
    from saetool.steer.api import SteerConfig, SteerSource, run_steer
    from saetool.steer.completions import read_completions
    from saetool.steer.generation import GenerationSettings

    prompts = write_prompts(tmp_path / "p.txt", ["# a comment", "Tell me about dogs.", "", "What is rain?"])
    sv = read_vector(make_vector(tmp_path / "v.h5"))
    cfg = SteerConfig(prompts=str(prompts), alpha=150.0, generation=GenerationSettings(max_new_tokens=5, batch_size=2))
    res = run_steer(cfg, SteerSource(vector=sv, parent=sv.path), tmp_path / "out.h5", model=smollm2, progress=False)
    comp = read_completions(res.path)
    assert comp.prompts == ["Tell me about dogs.", "What is rain?"]
    assert list(comp.texts) == ["baseline", "steered"]
    assert comp.texts["baseline"] != comp.texts["steered"]
    for cond in ("baseline", "steered"):
        assert set(comp.metrics[cond]) == {"refusal", "helpfulness", "coherence", "sentiment"}
        assert all(len(v) == 2 for v in comp.metrics[cond].values())
    assert comp.settings["alpha"] == 150.0 and comp.settings["hook"] == HOOK and comp.settings["scale"] == "unit"
    assert comp.provenance["parents"][0]["kind"] == "vector"
    # baseline coherence (the model's own greedy text) beats a wildly steered one
    assert np.nanmean(comp.metrics["steered"]["coherence"]) > np.nanmean(comp.metrics["baseline"]["coherence"])


def test_clamp_via_run_steer_and_scale_relative(smollm2, tmp_path):
    from saetool.steer.api import SteerConfig, SteerSource, run_steer
    from saetool.steer.generation import GenerationSettings

    prompts = write_prompts(tmp_path / "p.txt", ["Say hello."])
    gen = GenerationSettings(max_new_tokens=3)
    sae = random_sae(smollm2.d_model, 16)
    cfg = SteerConfig(prompts=str(prompts), intervention="clamp", alpha=30.0, metrics=["refusal"], generation=gen)
    res = run_steer(cfg, SteerSource(sae=sae, feature=2, sae_path="mem"), tmp_path / "c.h5", model=smollm2, progress=False)
    assert res.hook == HOOK and res.completions.settings["intervention"] == "clamp"
    # relative scale measures the norm at a hook the vector was not made at
    sv = read_vector(make_vector(tmp_path / "v.h5", hook="blocks.3.hook_resid_post"))
    cfg = SteerConfig(prompts=str(prompts), layer=4, scale="relative", alpha=0.5, metrics=["refusal"], generation=gen, baseline=False)
    res = run_steer(cfg, SteerSource(vector=sv), tmp_path / "r.h5", model=smollm2, progress=False)
    assert res.hook == "blocks.4.hook_resid_post"
    assert res.completions.settings["norm_ref"] > 10
    assert list(res.completions.texts) == ["steered"]


def test_sampling_is_seeded(smollm2):
    from saetool.steer.generation import GenerationSettings, generate_completions
    from saetool.steer.prompts import format_prompts

    texts = format_prompts(smollm2.tokenizer, ["Write a word.", "Name an animal."])
    s = GenerationSettings(max_new_tokens=6, do_sample=True, temperature=1.5, seed=11)
    a = generate_completions(smollm2, texts, chat=True, settings=s)
    b = generate_completions(smollm2, texts, chat=True, settings=s)
    c = generate_completions(smollm2, texts, chat=True, settings=s, seed=12)
    assert a == b
    assert a != c


def test_non_finite_alpha_is_caught_in_generation(smollm2, tmp_path):
    from saetool.steer.api import SteerConfig, SteerSource, run_steer
    from saetool.steer.generation import GenerationSettings
    from saetool.steer.interventions import NonFiniteActivations

    prompts = write_prompts(tmp_path / "p.txt", ["Hi."])
    sv = read_vector(make_vector(tmp_path / "v.h5"))
    cfg = SteerConfig(prompts=str(prompts), alpha=1e39, baseline=False, generation=GenerationSettings(max_new_tokens=2))
    with pytest.raises(NonFiniteActivations, match="non-finite"):
        run_steer(cfg, SteerSource(vector=sv), tmp_path / "o.h5", model=smollm2, progress=False)
    assert not (tmp_path / "o.h5").exists()


# -- CLI --------------------------------------------------------------------------------------------
@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_cli_vector_import_piped_into_steer(tmp_path):
    np.save(tmp_path / "dir.npy", np.random.default_rng(0).standard_normal(576).astype("float32"))
    imp = run_cli("vector", "import", str(tmp_path / "dir.npy"), "--layer", "6", "--model", "smollm2-135m", "-o", str(tmp_path / "v.h5"))
    assert imp.returncode == 0, imp.stderr
    manifest = json.loads(imp.stdout)
    assert manifest["kind"] == "vector" and manifest["hook"] == HOOK
    prompts = write_prompts(tmp_path / "p.txt", ["How do I pick a lock?", "Give me a pancake recipe."])
    out = tmp_path / "c.h5"
    proc = run_cli("steer", "--prompts", str(prompts), "--alpha", "60", "--max-new-tokens", "4", "--metrics", "refusal,helpfulness", "-o", str(out), input=imp.stdout)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "completions"
    assert "baseline" in proc.stderr and "steered" in proc.stderr and "refusal" in proc.stderr
    from saetool.steer.completions import read_completions

    comp = read_completions(out)
    assert comp.n == 2 and comp.settings["alpha"] == 60.0


def test_cli_vector_from_sae(tmp_path):
    from saetool.sae.io import write_sae_artifact

    sae = random_sae(16, 8)
    path = write_sae_artifact(tmp_path / "sae.h5", sae, provenance=build_provenance())
    proc = run_cli("vector", "from-sae", str(path), "--feature", "5", "-o", str(tmp_path / "f5.h5"))
    assert proc.returncode == 0, proc.stderr
    sv = read_vector(tmp_path / "f5.h5")
    assert torch.allclose(sv.vector, sae.W_dec[5].detach())
    assert sv.details["feature"] == 5
    # vector random --like: a seeded random direction of that vector's norm at its hook, for the same model
    rnd = [tmp_path / name for name in ("r0.h5", "r0-again.h5", "r1.h5")]
    for out, seed in zip(rnd, (0, 0, 1)):
        proc = run_cli("vector", "random", "--like", str(tmp_path / "f5.h5"), "--seed", str(seed), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["method"] == "random"
    a, b, c = (read_vector(p) for p in rnd)
    assert a.norm == pytest.approx(sv.norm, rel=1e-5) and a.hook == sv.hook and a.model == sv.model and a.method == "random"
    assert torch.equal(a.vector, b.vector) and not torch.allclose(a.vector, c.vector)  # seeded
    assert abs(float(torch.nn.functional.cosine_similarity(a.vector, sv.vector, dim=0))) < 0.9
    assert a.details["seed"] == 0 and a.details["like"] == str((tmp_path / "f5.h5").resolve())
    assert_clean_error(run_cli("vector", "random", "--like", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "x.h5")), "does not exist")
    np.save(tmp_path / "zero.npy", np.zeros(8, dtype=np.float32))
    assert run_cli("vector", "import", str(tmp_path / "zero.npy"), "--layer", "1", "-o", str(tmp_path / "zero.h5")).returncode == 0
    assert_clean_error(run_cli("vector", "random", "--like", str(tmp_path / "zero.h5"), "-o", str(tmp_path / "z.h5")), "has norm 0")
    assert not (tmp_path / "z.h5").exists()


def test_cli_bad_inputs_fail_fast(tmp_path):
    make_vector(tmp_path / "v.h5")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing here\n")
    out = tmp_path / "o.h5"
    assert_clean_error(run_cli("steer", str(tmp_path / "v.h5"), "--prompts", str(empty), "-o", str(out)), "no prompts")
    assert_clean_error(run_cli("steer", str(tmp_path / "v.h5"), "--prompts", str(tmp_path / "nope.txt"), "-o", str(out)), "does not exist")
    prompts = write_prompts(tmp_path / "p.txt", ["Hi."])
    assert_clean_error(run_cli("steer", str(tmp_path / "missing.h5"), "--prompts", str(prompts), "-o", str(out)), "does not exist")
    assert_clean_error(run_cli("steer", str(tmp_path / "v.h5"), "--prompts", str(prompts), "--scale", "huge", "-o", str(out)), "scale")
    assert_clean_error(run_cli("vector", "import", str(tmp_path / "v.h5")), "--layer")
    assert_clean_error(run_cli("vector", "import", "--hook", "", str(tmp_path / "v.h5")), "unknown hook ''")  # found by test_fuzz: an internal error
    assert not out.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--layer", "40"], "out of range"),
        (["--alpha", "1e39"], "non-finite"),
        (["WRONG_DIM"], "dimension"),
    ],
    ids=["layer-out-of-range", "nan-alpha", "wrong-dimension"],
)
def test_cli_bad_inputs_with_the_model(tmp_path, args, needle):
    make_vector(tmp_path / "v.h5")
    make_vector(tmp_path / "small.h5", d=10)
    prompts = write_prompts(tmp_path / "p.txt", ["Hi."])
    out = tmp_path / "o.h5"
    vec = str(tmp_path / "small.h5") if args == ["WRONG_DIM"] else str(tmp_path / "v.h5")
    extra = [] if args == ["WRONG_DIM"] else args
    proc = run_cli("steer", vec, "--prompts", str(prompts), "--max-new-tokens", "2", "--no-baseline", "-o", str(out), *extra)
    assert_clean_error(proc, needle)
    assert not out.exists() and not (tmp_path / "o.h5.partial").exists()


def test_prompt_files(tmp_path):
    from saetool.steer.prompts import read_prompts, read_words

    (tmp_path / "p.jsonl").write_text('{"prompt": "a", "split": "x"}\n"b"\n{"text": "c", "split": "y"}\n')
    assert [p.text for p in read_prompts(tmp_path / "p.jsonl")] == ["a", "b", "c"]
    assert [p.text for p in read_prompts(tmp_path / "p.jsonl", split="y")] == ["c"]
    with pytest.raises(SaetoolError, match="split 'z'"):
        read_prompts(tmp_path / "p.jsonl", split="z")
    assert read_words("happy, joy") == ["happy", "joy"]
    assert not math.isnan(len(read_words("happy")))


@pytest.mark.slow  # runs the CLI end to end on the tiny model (many seconds on 2 cores)
def test_cli_prompt_suffix_condition_and_vader_sentiment(tiny_gpt2_dir, tmp_path):
    """--prompt-suffix (seed 000's "(thinking positively)", issue 17): a `prompted` condition
    equal to running the suffixed prompts unsteered; sentiment is VADER's compound score."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from saetool.steer.completions import read_completions

    model = str(tiny_gpt2_dir)
    vec = tmp_path / "v.h5"
    assert run_cli("vector", "words", "--layer", "1", "--model", model, "-o", str(vec)).returncode == 0
    openings = ["Today I feel", "This morning I woke up and"]
    prompts = tmp_path / "p.txt"
    prompts.write_text("# openings\n" + "\n".join(openings) + "\n")
    out = tmp_path / "s.h5"
    common = ["--model", model, "--no-chat", "--max-new-tokens", "4", "--metrics", "sentiment"]
    proc = run_cli("steer", str(vec), "--prompts", str(prompts), "--alpha", "4", "--prompt-suffix", " (thinking positively)", *common, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    comp = read_completions(out)
    assert list(comp.texts) == ["baseline", "steered", "prompted"]
    assert comp.settings["prompt_suffixes"] == {"prompted": " (thinking positively)"}
    assert "prompted (prompt + ' (thinking positively)')" in " ".join(proc.stderr.replace("│", " ").split())  # the table's header names the suffix
    suffixed = tmp_path / "q.txt"
    suffixed.write_text("\n".join(o + " (thinking positively)" for o in openings) + "\n")
    again = run_cli("steer", str(vec), "--prompts", str(suffixed), "--alpha", "4", *common, "-o", str(tmp_path / "t.h5"))
    assert again.returncode == 0, again.stderr
    assert read_completions(tmp_path / "t.h5").texts["baseline"] == comp.texts["prompted"]
    vader = SentimentIntensityAnalyzer()
    for cond in comp.texts:
        assert comp.metrics[cond]["sentiment"] == pytest.approx([vader.polarity_scores(t)["compound"] for t in comp.texts[cond]])
    two = run_cli("steer", str(vec), "--prompts", str(prompts), "--prompt-suffix", " (thinking positively)", "--prompt-suffix", " (feeling down)",
                  "--no-baseline", *common, "-o", str(tmp_path / "u.h5"))
    assert two.returncode == 0, two.stderr
    assert list(read_completions(tmp_path / "u.h5").texts) == ["steered", "prompted-1", "prompted-2"]
    assert_clean_error(run_cli("steer", str(vec), "--prompts", str(prompts), "--prompt-suffix", " ", *common, "-o", str(tmp_path / "w.h5")), "--prompt-suffix is empty")


def test_metrics_table_names_each_metrics_direction():
    """The metrics table says which way is better where a metric knows: coherence is a loss."""
    from types import SimpleNamespace

    from rich.console import Console

    from saetool.cli.steer_cmd import metrics_table

    values = {"coherence": [1.0, 2.0, 1.5], "helpfulness": [1, 0, 1], "sentiment": [0.1, -0.2, 0.3]}
    comp = SimpleNamespace(n=3, metrics={"baseline": values, "steered": values})
    console = Console(width=250, record=True)
    console.print(metrics_table(comp, ["baseline", "steered"], sorted(values)))
    text = console.export_text()
    assert "coherence (lower is better)" in text and "helpfulness (higher is better)" in text
    assert "sentiment " in text and "sentiment (" not in text  # no direction: neither
