"""``saetool transitions``: transition labelers on real tokenizers, SAE features at the
labeled tokens checked against independent computations, generation with SmolLM2,
the LLM labeler through a real (local) OpenAI-style endpoint, and bad input."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_clean_error, run_cli

TEXTS = [
    "I lost my job and felt awful. However, a friend helped me find a new one.",
    "The rain ruined our trip, but the hotel was lovely.",
    "Everything went wrong today and luckily nobody was hurt.",
    "It was a long, grey and tiring afternoon at the office.",  # no transition word
]


@pytest.fixture(scope="module")
def smol_tokenizer(saetool_cache):
    from transformers import AutoTokenizer

    from saetool.models.embedded import SMOLLM2

    return AutoTokenizer.from_pretrained(str(SMOLLM2.ensure_cached()))


def _rows(tokenizer, texts):
    from saetool.analysis.pathways_inputs import rows_from_texts

    return rows_from_texts(tokenizer, texts, 256)


# -- labelers ---------------------------------------------------------------------------------------
def test_transition_words_are_found_on_the_tokenizers_tokens(smol_tokenizer):
    from saetool.analysis.transitions_labelers import TransitionWords

    tok = smol_tokenizer
    rows = _rows(tok, TEXTS)
    found = TransitionWords().locate(TEXTS, rows, tok)
    # independent: the transition token sits right after the tokens of the text before it (plus BOS)
    for i, prefix in ((0, "I lost my job and felt awful."), (1, "The rain ruined our trip,"), (2, "Everything went wrong today and")):
        assert found[i] == 1 + len(tok(prefix, add_special_tokens=False)["input_ids"]), i
    assert [tok.decode([rows[i][found[i]]]) for i in range(3)] == [" However", " but", " luck"]  # "luckily" is two tokens
    assert found[3] is None
    # whole words only, case-insensitive; "luck" and "button" are not transition words
    more = ["Good luck with the button.", "BUT then it worked.", "It was unfortunately slow."]
    assert TransitionWords().locate(more, _rows(tok, more), tok) == [None, 1, None]
    text = ["Bad start, but then it got better, yet slowly."]
    r = _rows(tok, text)
    last = TransitionWords().locate(text, r, tok, {"occurrence": "last"})[0]
    only_yet = TransitionWords().locate(text, r, tok, {"words": "yet"})[0]
    assert tok.decode([r[0][last]]) == " slowly" and last == only_yet + 1


def test_transition_words_on_a_sentencepiece_tokenizer(saetool_cache):
    """Gemma's single-token decode drops the leading space; words are still split right."""
    from transformers import AutoTokenizer

    from saetool.analysis.transitions_labelers import TransitionWords, token_words
    from saetool.models.embedded import GEMMA3

    tok = AutoTokenizer.from_pretrained(str(GEMMA3.ensure_cached()))
    rows = _rows(tok, TEXTS[:1])
    words = [w for _, w in token_words(rows[0], tok)]
    assert words[:6] == ["I", "lost", "my", "job", "and", "felt"]
    (pos,) = TransitionWords().locate(TEXTS[:1], rows, tok)
    assert tok.convert_ids_to_tokens(rows[0][pos]) == "▁However"


def test_position_labelers_are_registered_through_their_hook():
    from saetool.plugins import host

    regs = host().collect("position_labelers")
    for name in ("transition-words", "llm-transition"):
        assert callable(regs[name].obj.locate) and name not in host().collect("feature_labelers")
        assert regs[name].plugin == "saetool.builtins.pathways"


class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-style /chat/completions server that answers with a fixed word."""

    answer = "However"
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": type(self).answer + "."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Endpoint.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_llm_transition_asks_the_endpoint_and_finds_its_word(smol_tokenizer, endpoint):
    from saetool.analysis.transitions_labelers import LLMTransition, build_messages, parse_answer

    tok = smol_tokenizer
    rows = _rows(tok, TEXTS)
    found = LLMTransition().locate(TEXTS, rows, tok, {"url": endpoint})
    assert tok.decode([rows[0][found[0]]]) == " However"
    assert found[1:] == [None, None, None]  # the word the LLM named is not in those texts
    assert len(_Endpoint.seen) == 4
    assert _Endpoint.seen[0]["messages"] == build_messages(TEXTS[0]) and TEXTS[0] in _Endpoint.seen[0]["messages"][1]["content"]
    assert parse_answer(' "Luckily," ') == "luckily" and parse_answer("NONE") is None and parse_answer("") is None
    assert parse_answer('The word "However" is the only word that starts the') == "however"
    assert parse_answer("It turns at but.") == "but" and parse_answer("Suddenly") == "suddenly"


def test_llm_transition_error_is_a_saetool_error():
    from saetool.analysis.transitions_labelers import LLMTransition
    from saetool.errors import SaetoolError

    with pytest.raises(SaetoolError, match="127.0.0.1:9"):
        LLMTransition().locate(["a but b"], [[1, 2]], None, {"url": "http://127.0.0.1:9/v1", "timeout": "5"})


# -- the stage --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_gpt2_dir, tmp_path_factory):
    """The tiny GPT-2, a random ReLU SAE at blocks.1.hook_resid_post, and the texts on disk."""
    from saetool.artifacts.provenance import build_provenance
    from saetool.models.registry import load_model
    from saetool.sae.config import SAEConfig
    from saetool.sae.io import write_sae_artifact
    from saetool.sae.model import build_sae

    folder = tmp_path_factory.mktemp("transitions")
    g = torch.Generator().manual_seed(0)
    cfg = SAEConfig(arch="relu", d_in=64, d_sae=48, hook="blocks.1.hook_resid_post", activation="relu", model=str(tiny_gpt2_dir))
    sae = build_sae(cfg, {"W_enc": torch.randn(64, 48, generator=g), "b_enc": torch.zeros(48),
                          "W_dec": torch.randn(48, 64, generator=g) * 0.02, "b_dec": torch.zeros(64)})
    path = write_sae_artifact(folder / "sae.h5", sae, provenance=build_provenance(model=cfg.model, hooks=[cfg.hook]))
    texts = folder / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return {"model": load_model(str(tiny_gpt2_dir)), "sae": path, "texts": texts, "folder": folder}


def test_features_at_the_transition_tokens_match_an_independent_computation(tiny, tmp_path):
    from saetool.analysis.transitions import TransitionsConfig, read_transitions, run_transitions
    from saetool.sae.io import load_sae

    model = tiny["model"]
    out = tmp_path / "t.h5"
    result = run_transitions(TransitionsConfig(top=5, batch_size=3), tiny["sae"], texts_file=tiny["texts"], output=out, model=model)
    assert result.n_samples == 3 and result.positions[3] is None
    assert result.tokens[:3] == [" However", " but", " luck"]
    data = read_transitions(out)
    assert list(data["position"]) == [p if p is not None else -1 for p in result.positions]
    # activations: each text alone (no padding), through the public run_with_cache
    hook = "blocks.1.hook_resid_post"
    rows = _rows(model.tokenizer, TEXTS)
    expected = torch.stack([
        model.run_with_cache(torch.tensor([rows[i]]), [hook])[hook][0, result.positions[i]] for i in range(3)
    ])
    assert np.allclose(data["activations"], expected.numpy(), atol=1e-5)
    assert list(data["sample_text"]) == [0, 1, 2]
    # reconstruction metrics and feature counts recomputed with numpy
    sae = load_sae(tiny["sae"])
    x = expected.double().numpy()
    f = sae.encode(expected).detach().double().numpy()
    x_hat = f @ sae.W_dec.detach().double().numpy() + sae.b_dec.detach().double().numpy()
    m = data["metrics"]
    assert m["mse"] == pytest.approx(((x - x_hat) ** 2).mean(), rel=1e-5)
    every = torch.cat([model.run_with_cache(torch.tensor([r]), [hook])[hook][0, 1:] for r in rows]).double().numpy()
    assert m["explained_variance"] == pytest.approx(1 - ((x - x_hat) ** 2).sum() / ((x - every.mean(0)) ** 2).sum(), rel=1e-5)
    assert m["explained_variance_within"] == pytest.approx(1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum(), rel=1e-5)
    f_all = sae.encode(torch.from_numpy(every).float()).detach().double().numpy()
    e_hat = f_all @ sae.W_dec.detach().double().numpy()
    assert data["baseline"]["explained_variance"] == pytest.approx(1 - ((every - e_hat) ** 2).sum() / ((every - every.mean(0)) ** 2).sum(), rel=1e-4)
    cos = (x * x_hat).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(x_hat, axis=1)
    assert m["cosine"] == pytest.approx(cos.mean(), rel=1e-5)
    assert m["l0"] == pytest.approx((f > 0).sum(1).mean())
    counts = (f > 0).sum(0)
    common = data["common"]
    assert len(common) == 5 and list(common["count"]) == sorted(counts, reverse=True)[:5]
    for fid, count, share in zip(common["feature"], common["count"], common["share"]):
        assert counts[fid] == count and share == pytest.approx(count / 3)
    assert list(common["name"]) == [f"L1-{i}" for i in common["feature"]]
    assert data["baseline"]["n"] == sum(len(r) - 1 for r in rows)  # every token but BOS
    assert data["labeler"] == "transition-words" and data["n_texts"] == 4


CONTROL_TEXTS = [
    "The train leaves at nine. However, the bus is faster.",
    "We moved the meeting to Tuesday. However, the room is the same.",
    "The report has ten pages, but the summary has one.",
]


def test_control_shares_and_lift_match_an_independent_computation(tiny, tmp_path):
    """--control (the same labeling on neutral inputs): each common feature's share at the
    control's tokens and its lift, recomputed from the control's activations; the artifact
    keeps the control's texts, tokens and activations."""
    from saetool.analysis.transitions import TransitionsConfig, read_transitions, run_transitions
    from saetool.sae.io import load_sae

    control = tmp_path / "control.txt"
    control.write_text("\n".join(CONTROL_TEXTS) + "\n")
    out = tmp_path / "t.h5"
    result = run_transitions(TransitionsConfig(top=48), tiny["sae"], texts_file=tiny["texts"], control_file=control, output=out, model=tiny["model"])
    assert result.control is not None and result.control.n_samples == 3
    assert result.control.tokens == [" However", " However", " but"]
    data = read_transitions(out)
    c = data["control"]
    assert c["texts"] == CONTROL_TEXTS and list(c["token"]) == result.control.tokens and list(c["sample_text"]) == [0, 1, 2]
    model, hook = tiny["model"], "blocks.1.hook_resid_post"
    rows = _rows(model.tokenizer, CONTROL_TEXTS)
    expected = torch.stack([model.run_with_cache(torch.tensor([r]), [hook])[hook][0, p] for r, p in zip(rows, result.control.positions)])
    assert np.allclose(c["activations"], expected.numpy(), atol=1e-5)
    sae = load_sae(tiny["sae"])
    share_c = (sae.encode(expected) > 0).double().mean(0).numpy()
    share = (sae.encode(torch.from_numpy(data["activations"])) > 0).double().mean(0).numpy()
    common = data["common"]
    assert len(common) == int((share > 0).sum())
    for fid, cs, lift in zip(common["feature"], common["control_share"], common["lift"]):
        assert cs == pytest.approx(share_c[fid])
        assert lift == (pytest.approx(share[fid] / share_c[fid]) if share_c[fid] > 0 else np.inf)
    assert data["n_control_samples"] == 3 and data["control_metrics"]["n"] == 3
    assert data["settings"]["control_file"] == str(control.resolve())
    # the second table: features in at least half the samples (two or more), largest lift over the control first
    specific = data["specific"]
    n = len(data["activations"])
    count = (sae.encode(torch.from_numpy(data["activations"])) > 0).sum(0).numpy()
    want = [i for i in range(48) if count[i] >= 2 and count[i] >= 0.5 * n]
    assert sorted(specific["feature"]) == sorted(want)
    lifts = [share[i] / share_c[i] if share_c[i] > 0 else np.inf for i in specific["feature"]]
    assert lifts == sorted(lifts, reverse=True) and list(specific["lift"]) == pytest.approx(lifts)
    # VADER's sentiment before the labeled token and from it on, and the texts that turn negative -> positive
    from saetool.steer.metrics import sentiment_score

    rows_t = _rows(model.tokenizer, TEXTS)
    for i, pos in enumerate(result.positions):
        if pos is None:
            assert np.isnan(data["sentiment"][i]).all()
            continue
        before = sentiment_score(model.tokenizer.decode(rows_t[i][:pos], skip_special_tokens=True))
        after = sentiment_score(model.tokenizer.decode(rows_t[i][pos:], skip_special_tokens=True))
        assert list(data["sentiment"][i]) == pytest.approx([before, after])
    s_ = data["sentiment"]
    assert data["n_turning"] == int(((s_[:, 0] < 0) & (s_[:, 1] > 0)).sum()) >= 1  # "I lost my job and felt awful. However, a friend helped..."
    assert data["control"]["sentiment"].shape == (3, 2)
    # without a control the artifact has none, and no control columns
    plain = read_transitions(run_transitions(TransitionsConfig(), tiny["sae"], texts_file=tiny["texts"], output=tmp_path / "p.h5", model=tiny["model"]).path)
    assert plain["control"] is None and "lift" not in plain["common"] and plain["specific"] is None


def test_cli_control_columns_and_a_control_without_transitions(tiny, tmp_path):
    control = tmp_path / "control.txt"
    control.write_text("\n".join(CONTROL_TEXTS) + "\n")
    out = tmp_path / "t.h5"
    proc = run_cli("transitions", "--sae", str(tiny["sae"]), "--texts", str(tiny["texts"]), "--control", str(control), "--top", "4", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_control_samples"] == 3
    assert "control share" in proc.stderr and "lift" in proc.stderr and "control tokens: ' However' x2, ' but' x1" in proc.stderr
    err = " ".join(proc.stderr.split())
    assert "features most specific to the transition" in err and "texts that turn from negative to positive" in err
    assert "⟦ However⟧, a friend helped me" in err  # the labeled token shown in its context
    # the transitions also label " luck": the control is not like for like, and says so
    assert "are not the transitions'" in " ".join(proc.stderr.split())
    # a control in which the labeler finds nothing: a SaetoolError (one line, exit 2 on the CLI), nothing written
    from saetool.analysis.transitions import TransitionsConfig, run_transitions
    from saetool.errors import SaetoolError

    calm = tmp_path / "calm.txt"
    calm.write_text("A calm and ordinary afternoon.\nNothing happened at all.\n")
    bad = tmp_path / "bad.h5"
    with pytest.raises(SaetoolError, match=r"in any of the 2 control text\(s\)"):
        run_transitions(TransitionsConfig(), tiny["sae"], texts_file=tiny["texts"], control_file=calm, output=bad, model=tiny["model"])
    assert not bad.exists() and not Path(str(bad) + ".partial").exists()


def test_only_turning_keeps_the_texts_that_turn(tiny, tmp_path, capsys):
    """--only-turning: the samples are the labeled texts VADER finds negative before the token and
    positive from it on, with the same activations as without the option; the other texts keep their
    sentiment but no sample; a set in which none turns is a one-line error, nothing written."""
    from saetool.analysis.transitions import TransitionsConfig, n_labeled, read_transitions, run_transitions
    from saetool.errors import SaetoolError

    every = run_transitions(TransitionsConfig(), tiny["sae"], texts_file=tiny["texts"], output=tmp_path / "all.h5", model=tiny["model"])
    turns = [i for i, (b, a) in enumerate(every.sentiment) if b < 0 and a > 0]
    assert 1 <= len(turns) < every.n_samples  # the fixture has labeled texts that do not turn
    kept = run_transitions(TransitionsConfig(only_turning=True), tiny["sae"], texts_file=tiny["texts"], output=tmp_path / "turn.h5", model=tiny["model"])
    assert [i for i, p in enumerate(kept.positions) if p is not None] == turns
    data, full = read_transitions(kept.path), read_transitions(every.path)
    assert list(data["sample_text"]) == turns and data["n_samples"] == data["n_turning"] == len(turns)
    rows = [list(full["sample_text"]).index(i) for i in turns]
    assert np.allclose(data["activations"], full["activations"][rows])
    assert np.array_equal(np.isnan(data["sentiment"]), np.isnan(full["sentiment"])) and n_labeled(data["sentiment"]) == every.n_samples
    assert data["settings"]["only_turning"] is True and data["n_labeled"] == every.n_samples
    assert f"{every.n_samples - len(turns)} of {every.n_samples} labeled text(s) do not turn" in " ".join(capsys.readouterr().err.split())
    # the control is not filtered
    control = tmp_path / "control.txt"
    control.write_text("\n".join(CONTROL_TEXTS) + "\n")
    runs = [read_transitions(run_transitions(TransitionsConfig(only_turning=flag), tiny["sae"], texts_file=tiny["texts"], control_file=control,
                                             output=tmp_path / f"c{flag}.h5", model=tiny["model"]).path) for flag in (False, True)]
    assert runs[1]["n_samples"] == len(turns) and runs[1]["control"]["texts"] == CONTROL_TEXTS
    assert np.array_equal(runs[0]["control"]["activations"], runs[1]["control"]["activations"]) and runs[1]["n_control_samples"] == 3
    # the terminal: the count of those that turn out of the labeled ones, the left-out texts marked, the kept count
    proc = run_cli("transitions", "--sae", str(tiny["sae"]), "--texts", str(tiny["texts"]), "--only-turning", "-o", str(tmp_path / "cli.h5"))
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())
    n = every.n_samples
    assert f"{len(turns)} of {n} (the {len(turns)} kept: --only-turning)" in err and "left out: does not turn" in err
    assert f"{n} of {len(TEXTS)} texts labeled, {len(turns)} kept: --only-turning" in err
    flat = tmp_path / "flat.txt"
    flat.write_text("\n".join(CONTROL_TEXTS) + "\n")
    bad = tmp_path / "bad.h5"
    with pytest.raises(SaetoolError, match="none of the 3 labeled text"):
        run_transitions(TransitionsConfig(only_turning=True), tiny["sae"], texts_file=flat, output=bad, model=tiny["model"])
    assert not bad.exists() and not Path(str(bad) + ".partial").exists()


def test_offset_reads_the_token_before(tiny, tmp_path):
    from saetool.analysis.transitions import TransitionsConfig, run_transitions

    base = run_transitions(TransitionsConfig(), tiny["sae"], texts_file=tiny["texts"], output=tmp_path / "a.h5", model=tiny["model"])
    before = run_transitions(TransitionsConfig(offset=-1), tiny["sae"], texts_file=tiny["texts"], output=tmp_path / "b.h5", model=tiny["model"])
    assert [p - 1 if p is not None else None for p in base.positions] == before.positions
    assert before.tokens[:3] == [".", ",", " and"]


def test_generating_transition_texts_with_smollm2(smollm2, tmp_path):
    """Two base prompts, short continuations, the bridge, and a hand-made SAE on SmolLM2's layer 3."""
    from saetool.analysis.transitions import TransitionsConfig, read_transitions, run_transitions
    from saetool.artifacts.provenance import build_provenance
    from saetool.sae.config import SAEConfig
    from saetool.sae.io import write_sae_artifact
    from saetool.sae.model import build_sae

    g = torch.Generator().manual_seed(0)
    cfg = SAEConfig(arch="relu", d_in=576, d_sae=64, hook="blocks.3.hook_resid_post", activation="relu", model="smollm2-135m")
    sae = build_sae(cfg, {"W_enc": torch.randn(576, 64, generator=g) / 24, "b_enc": torch.zeros(64),
                          "W_dec": torch.randn(64, 576, generator=g) / 8, "b_dec": torch.zeros(576)})
    sae_path = write_sae_artifact(tmp_path / "sae.h5", sae, provenance=build_provenance(model="smollm2-135m", hooks=[cfg.hook]))
    prompts = tmp_path / "prompts.txt"
    bases = ["I'm having a tough day because", "Everything feels overwhelming when"]
    prompts.write_text("\n".join(bases) + "\n")
    out = tmp_path / "t.h5"
    config = TransitionsConfig(max_new_tokens=6, labeler_options={"words": "however"})
    result = run_transitions(config, sae_path, prompts_file=prompts, output=out, model=smollm2)
    assert result.n_samples == 2
    data = read_transitions(out)
    assert all(t.startswith(p) and " However," in t for t, p in zip(data["texts"], bases))
    assert data["token"] == [" However", " However"]
    assert data["settings"]["generated"] is True and data["model"] == "smollm2-135m"
    # the same texts read back from a file give the same activations
    again = tmp_path / "again.jsonl"
    again.write_text("".join(json.dumps({"text": t}) + "\n" for t in data["texts"]))
    from_file = run_transitions(TransitionsConfig(), sae_path, texts_file=again, output=tmp_path / "u.h5", model=smollm2)
    assert from_file.positions == result.positions
    assert np.allclose(read_transitions(tmp_path / "u.h5")["activations"], data["activations"], atol=1e-5)


def test_cli_writes_the_artifact_a_manifest_and_tables(tiny, tmp_path):
    out = tmp_path / "t.h5"
    proc = run_cli("transitions", "--sae", str(tiny["sae"]), "--texts", str(tiny["texts"]), "--top", "4", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["kind"] == "transitions" and manifest["path"] == str(out.resolve())
    assert manifest["n_texts"] == 4 and manifest["n_samples"] == 3
    assert "no transition token in 1 of 4" in proc.stderr
    assert "features common at the transition" in proc.stderr and "explained var" in proc.stderr and "' However' x1" in proc.stderr
    from saetool.artifacts.store import open_artifact

    with open_artifact(out, kind="transitions") as art:
        assert len(art["common/feature"]) == 4 and art.provenance["parents"][0]["kind"] == "sae"


@pytest.mark.parametrize(
    "case, needle",
    [("no_transition", "no transition token"), ("no_tokens", "tokenise to nothing"), ("feature_labeler", "labels features")],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tiny, tmp_path, case, needle):
    texts = tmp_path / "texts.txt"
    texts.write_text("A calm and ordinary afternoon.\nNothing happened at all.\n" if case != "no_tokens" else "<|im_end|>\n")
    out = tmp_path / "t.h5"
    extra = ["--labeler", "tokens"] if case == "feature_labeler" else []
    proc = run_cli("transitions", "--sae", str(tiny["sae"]), "--texts", str(texts), "-o", str(out), *extra)
    assert_clean_error(proc, needle)
    assert proc.stdout == "" and not out.exists() and not Path(str(out) + ".partial").exists()


def test_texts_and_prompts_are_exclusive(tiny, tmp_path):
    from saetool.analysis.transitions import TransitionsConfig, run_transitions
    from saetool.errors import SaetoolError

    with pytest.raises(SaetoolError, match="either --texts"):
        run_transitions(TransitionsConfig(), tiny["sae"], texts_file=tiny["texts"], prompts_file=tiny["texts"], output=tmp_path / "t.h5", model=tiny["model"])
    with pytest.raises(SaetoolError, match="must look like KEY=VALUE"):
        from saetool.cli.options import key_values

        key_values(["words"], "--labeler-option", example="words=but")
    assert list(tmp_path.iterdir()) == []


def test_cli_generated_texts_prefer_the_bridge_and_join_cleanly(tiny, tiny_gpt2_dir, tmp_path):
    """transitions --prompts (issue 17): the bridge is labeled even after a " but" in the
    negative part; continuations are joined as generated (no stray space); the bridge starts
    a sentence."""
    import re

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saetool.analysis.transitions import read_transitions

    bases = ["I tried hard but failed and", "It rained all day but", "However hard I tried, it failed and"]  # the last: the bridge's word before it
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(bases) + "\n")
    out = tmp_path / "t.h5"
    proc = run_cli("transitions", "--sae", str(tiny["sae"]), "--prompts", str(prompts), "--bridge", " However,", "--max-new-tokens", "5", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = read_transitions(out)
    assert data["token"] == [" However"] * 3
    # independent: greedy continuation with plain transformers, decoded without stripping
    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2_dir))
    for base, text in zip(bases, data["texts"]):
        ids = tok(base, return_tensors="pt")
        new = lm.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)[0, ids["input_ids"].shape[1]:]
        first = tok.decode(new, skip_special_tokens=True)
        ends = [i for i, ch in enumerate(first) if ch in ".!?"]
        head = base + (first[: ends[-1] + 1] if ends else first.rstrip().rstrip(",;:-–— "))
        assert text.startswith(head), (text, head)
        assert re.match(r"^[.!?]?\"? However,", text[len(head):]), text
    for text, position in zip(data["texts"], data["position"]):  # the bridge's own token: [BOS] + the tokens before it
        assert position == 1 + len(tok(text[: text.index(" However,")])["input_ids"]), (text, position)
    assert read_transitions(out)["settings"]["labeler_options"] == {"prefer": "however"}
