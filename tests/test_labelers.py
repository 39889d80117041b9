"""Feature labelers: ``tokens``, ``llm`` (local SmolLM2 and an OpenAI-compatible endpoint), detection scores.

Examples are real SmolLM2 tokenizations of news-style sentences. The endpoint
is a real HTTP server on 127.0.0.1 in a thread that checks the API key and
answers like a chat-completions API.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import socket
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from saetool.errors import SaetoolError
from saetool.interpret.labelers import LLMLabeler, TokensLabeler, clean_explanation, mark_token, marked_window, show_token, snippet, token_patterns
from saetool.models.chat import DEFAULT_KEY_ENV, EndpointChatLM, LocalChatLM, chat_lm, parse_yes_no, safe_url
from saetool.interpret.records import Example, FeatureRecord, LabelContext
from saetool.interpret.scoring import auroc, balanced_accuracy, detection_score

THE_SENTENCES = [
    "The price of the shares fell after the end of the year.",
    "Most of the fans left before the match ended in a draw.",
    "He spoke about the future of the club at a meeting.",
    "Half of the money went to a charity in the north.",
]
HELD_OUT_SENTENCES = [
    "Ministers met the union leaders on Tuesday.",
    "Police closed the road for several hours.",
    "Critics praised the film for its acting.",
]
PLAIN_SENTENCES = [
    "Ministers said talks would continue next week.",
    "Police are still looking for witnesses.",
    "Critics praised its acting and music.",
    "Voters go to polls soon, officials said.",
]
DIGIT_SENTENCES = [
    "Profits rose to 45 million pounds in 2004.",
    "About 300 people lost their jobs last year.",
    "Shares gained 12 percent on Monday.",
    "The firm sold 8 million phones by March.",
]


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(saetool_cache):
    from transformers import AutoTokenizer

    from saetool.models.embedded import SMOLLM2

    return AutoTokenizer.from_pretrained(str(SMOLLM2.ensure_cached()))


def tokenize(tokenizer, text: str) -> tuple[list[int], list[str]]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids, [tokenizer.decode([i]) for i in ids]


def windows(tokenizer, texts, where, *, width: int = 6, activation: float = 1.0) -> list[Example]:
    """One window per token position for which ``where(tokens, i)`` holds."""
    out = []
    for seq, text in enumerate(texts):
        ids, toks = tokenize(tokenizer, text)
        for i in range(len(toks)):
            if where(toks, i):
                lo, hi = max(0, i - width), i + width + 1
                out.append(Example(activation=activation, token_ids=ids[lo:hi], tokens=toks[lo:hi], position=i - lo, seq_index=seq, token_position=i))
    return out


def record(top, held_out=(), negatives=(), index=0) -> FeatureRecord:
    acts = [e.activation for e in top] or [0.0]
    return FeatureRecord(index=index, density=0.01, max_activation=max(acts), mean_activation=sum(acts) / len(acts),
                         top_examples=list(top), held_out=list(held_out), negatives=list(negatives))


def is_digit(toks, i):
    return toks[i].strip().isdigit()


def digit_feature(tokenizer) -> FeatureRecord:
    positives = windows(tokenizer, DIGIT_SENTENCES, is_digit)
    negatives = windows(tokenizer, PLAIN_SENTENCES, lambda t, i: i == 3, activation=0.0)
    return record(positives[:4], positives[4:8], negatives, index=7)


# -- registration and display ------------------------------------------------------------------------
def test_builtin_labelers_are_registered():
    from saetool.plugins import host

    regs = host().collect("feature_labelers")
    assert {"tokens", "llm"} <= set(regs) and not {"tokens", "llm"} & set(host().collect("position_labelers"))
    for name in ("tokens", "llm"):
        obj = regs[name].obj
        assert obj.name == name and obj.description
        assert regs[name].plugin == "saetool.builtins.labelers"


def test_show_token_keeps_whitespace_visible():
    assert show_token(" the") == '" the"'
    assert show_token("\n") == '"\\n"'
    assert show_token("\t\"x\"") == '"\\t\\"x\\""'
    assert show_token("\u00a0caf\u00e9") == '"\\u00a0café"'  # invisible space escaped, accents kept
    assert show_token("a\u200bb") == '"a\\u200bb"'
    assert show_token("日本") == '"日本"'
    assert show_token("") == '""'


# -- tokens labeler ---------------------------------------------------------------------------------
def test_tokens_label_names_top_tokens_and_bigram(tokenizer):
    top = windows(tokenizer, THE_SENTENCES, lambda t, i: t[i] in (" the", " a"))
    # 9 × " the" (5 after " of"), 3 × " a": both tokens, and the recurring bigram " of the"
    assert [e.token for e in top].count(" the") == 9 and [e.token for e in top].count(" a") == 3
    held = windows(tokenizer, HELD_OUT_SENTENCES, lambda t, i: t[i] == " the")
    neg = windows(tokenizer, PLAIN_SENTENCES, lambda t, i: i == 2, activation=0.0)
    assert len(held) == 3 and len(neg) == 4
    labels = TokensLabeler().label([record(top, held, neg)], LabelContext())
    (label,) = labels
    assert label.text == 'tokens: " the", " a" | bigram " of the"'
    assert label.labeler == "tokens"
    assert label.score == 1.0
    det = label.details["detection"]
    assert (det["n_positive"], det["n_negative"], det["true_positive_rate"], det["true_negative_rate"]) == (3, 4, 1.0, 1.0)
    assert det["scope"] == "token"
    window = TokensLabeler().label([record(top, held, neg)], LabelContext(options={"scope": "window"}))[0]
    assert window.score == 1.0 and window.text == label.text  # no " the"/" a" anywhere in the negatives
    assert label.details["patterns"] == [
        {"tokens": [" the"], "count": 9}, {"tokens": [" a"], "count": 3}, {"tokens": [" of", " the"], "count": 5}]
    json.dumps(asdict(label))  # details are JSON-ready
    # deterministic: same input, same label
    assert TokensLabeler().label([record(top, held, neg)], LabelContext())[0] == label


def test_trigram_replaces_the_bigram_it_extends():
    def ex(tokens, pos):
        return Example(activation=1.0, token_ids=list(range(len(tokens))), tokens=tokens, position=pos)

    end_of_the = [ex(["In", " the", " end", " of", " the", " day"], 4)] * 3
    pats = token_patterns(record(end_of_the + [ex(["Out", " in", " the", " blue"], 2)]))
    assert [(p.tokens, p.count) for p in pats] == [((" the",), 4), ((" end", " of", " the"), 3)]
    # a bigram more frequent than the trigram stays
    pats = token_patterns(record(end_of_the + [ex(["Out", " of", " the", " blue"], 2)]))
    assert [(p.tokens, p.count) for p in pats] == [((" the",), 4), ((" of", " the"), 4), ((" end", " of", " the"), 3)]


def test_tokens_label_of_a_text_independent_feature_scores_exactly_chance(tokenizer):
    rng = random.Random(0)
    pool = windows(tokenizer, HELD_OUT_SENTENCES + PLAIN_SENTENCES, lambda t, i: True)
    top = rng.sample(pool, 8)
    # the feature's activity does not depend on the text: the same windows are
    # activating (held out) and non-activating, so any text-only label scores 0.5
    shared = rng.sample(pool, 6)
    held = [Example(**{**asdict(e), "activation": 1.0}) for e in shared]
    neg = [Example(**{**asdict(e), "activation": 0.0}) for e in shared]
    label = TokensLabeler().label([record(top, held, neg)], LabelContext())[0]
    assert label.score == 0.5
    det = label.details["detection"]
    assert det["true_positive_rate"] + det["true_negative_rate"] == pytest.approx(1.0)


def test_token_scope_asks_about_the_marked_token(tokenizer):
    """Negatives centred on inactive tokens next to a " the": the window contains
    the label's token, the marked token is not it."""
    top = windows(tokenizer, THE_SENTENCES, lambda t, i: t[i] == " the")
    held = windows(tokenizer, HELD_OUT_SENTENCES, lambda t, i: t[i] == " the")
    neg = windows(tokenizer, HELD_OUT_SENTENCES, lambda t, i: i > 0 and t[i - 1] == " the", activation=0.0)
    assert len(held) == len(neg) == 3 and all(" the" in e.tokens and e.token != " the" for e in neg)
    rec = record(top, held, neg)
    token = TokensLabeler().label([rec], LabelContext())[0]
    window = TokensLabeler().label([rec], LabelContext(options={"scope": "window"}))[0]
    assert token.text == window.text == 'tokens: " the" | bigram " of the"'
    assert token.score == 1.0 and window.score == 0.5  # every negative window contains " the"
    assert window.details["detection"]["true_negative_rate"] == 0.0
    with pytest.raises(SaetoolError, match="scope='everywhere' is not one of token, window"):
        TokensLabeler().label([rec], LabelContext(options={"scope": "everywhere"}))


def test_tokens_label_without_scoring_data_or_activations(tokenizer):
    top = windows(tokenizer, DIGIT_SENTENCES, is_digit)
    no_neg = TokensLabeler().label([record(top[:4], top[4:], [])], LabelContext())[0]
    assert no_neg.score is None and no_neg.text.startswith("tokens: ")
    no_held = TokensLabeler().label([record(top[:4], [], top[4:])], LabelContext())[0]
    assert no_held.score is None
    dead = FeatureRecord(index=3, density=0.0, max_activation=0.0, mean_activation=0.0)
    assert TokensLabeler().label([dead], LabelContext())[0].text == "(no activations)"
    # no examples, only counted top tokens (e.g. a record read back without windows)
    counted = FeatureRecord(index=4, density=0.1, max_activation=2.0, mean_activation=1.0, top_tokens=[("\n", 12), (" and", 5), (" x", 1)])
    assert TokensLabeler().label([counted], LabelContext())[0].text == 'tokens: "\\n", " and"'


# -- detection scoring ----------------------------------------------------------------------------
def test_balanced_accuracy_and_auroc_against_independent_computations():
    from scipy.stats import mannwhitneyu

    pos_pred = [True, True, False, True, True]
    neg_pred = [False, True, False, False]
    assert balanced_accuracy(pos_pred, neg_pred) == pytest.approx((4 / 5 + 3 / 4) / 2)
    assert balanced_accuracy([], neg_pred) is None
    rng = random.Random(1)
    pos = [round(rng.random(), 1) + 0.2 for _ in range(30)]  # rounding makes ties
    neg = [round(rng.random(), 1) for _ in range(25)]
    u = mannwhitneyu(pos, neg, alternative="two-sided").statistic
    assert auroc(pos, neg) == pytest.approx(u / (30 * 25), abs=1e-12)
    naive = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (30 * 25)
    assert auroc(pos, neg) == pytest.approx(naive, abs=1e-12)
    assert auroc([1.0], [0.0]) == 1.0 and auroc([0.0], [1.0]) == 0.0 and auroc([0.5], [0.5]) == 0.5


def test_detection_score_from_probabilities_has_auroc(tokenizer):
    feature = digit_feature(tokenizer)
    probs = {id(e): p for e, p in zip(feature.held_out + feature.negatives, [0.9, 0.6, 0.4, 0.8, 0.3, 0.7, 0.1, 0.2])}
    det = detection_score(lambda e: probs[id(e)], feature.held_out, feature.negatives)
    assert (det.n_positive, det.n_negative) == (4, 4)
    assert det.true_positive_rate == 0.75 and det.true_negative_rate == 0.75 and det.score == 0.75
    assert det.auroc == pytest.approx(14 / 16)  # 0.7 beats 0.4 and 0.6: 2 of 16 pairs lost
    assert det.details()["auroc"] == pytest.approx(0.875)
    boolean = detection_score(lambda e: probs[id(e)] > 0.5, feature.held_out, feature.negatives)
    assert boolean.auroc is None and "auroc" not in boolean.details() and boolean.score == 0.75
    assert detection_score(lambda e: True, [], feature.negatives).score is None


# -- llm labeler: prompts and parsing ----------------------------------------------------------------
def test_snippet_marks_the_activating_token(tokenizer):
    (ex,) = windows(tokenizer, ["Shares gained 12 percent on Monday."], lambda t, i: t[i] == " percent")
    assert snippet(ex, before=4, after=2, mark=True) == "gained 12 <<percent>> on Monday"  # digits are single tokens
    assert snippet(ex, before=4, after=2, mark=False) == "gained 12 percent on Monday"
    # a whitespace-only token (SmolLM2 splits " 2004" into " " and digits) is named, never an empty <<>>
    (year,) = windows(tokenizer, ["Profits rose in 2004."], lambda t, i: t[i] == " ")
    assert snippet(year, before=2, after=2, mark=True) == "rose in <<[space]>>20"
    assert marked_window(year, [year.position, year.position + 1]) == "Profits rose in <<[space]>><<2>>004."
    assert mark_token("\n") == "\n<<[newline]>>" and mark_token(" cat") == " <<cat>>"


def test_clean_explanation_and_yes_no():
    assert clean_explanation('Answer: "numbers and years".\nMore.') == "numbers and years"
    assert clean_explanation("The marked tokens are all digits.") == "digits"
    assert clean_explanation("1. <<Years>>") == "Years"
    assert clean_explanation("  \n ") == ""
    assert len(clean_explanation("word " * 100)) <= 163
    assert parse_yes_no("Yes.") and parse_yes_no(" yes, it does") and not parse_yes_no("No") and not parse_yes_no("")


# -- llm labeler: local SmolLM2 -------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """The machine is shared; one torch thread is faster than two fighting for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_llm_labeler_with_the_embedded_smollm2(tokenizer, one_thread):
    from saetool.plugins import host

    labeler = host().get("feature_labelers", "llm")
    feature = digit_feature(tokenizer)
    ctx = LabelContext(model="smollm2-135m", options={"n_examples": "4", "n_score": "3", "max_new_tokens": "12"})
    (label,) = labeler.label([feature], ctx)
    assert label.labeler in ("llm", "tokens")
    assert label.text.strip() and "\n" not in label.text
    if label.labeler == "llm":  # (tokens is the documented fallback for an empty explanation)
        assert 0.0 <= label.score <= 1.0
        det = label.details["detection"]
        assert det["n_positive"] == 3 and det["n_negative"] == 3 and 0.0 <= det["auroc"] <= 1.0
        assert label.details["model"] == "local smollm2-135m"


def test_local_yes_probability_is_batch_independent(one_thread):
    lm = chat_lm({})
    assert isinstance(lm, LocalChatLM) and chat_lm({}) is lm  # loaded once
    questions = [
        [{"role": "user", "content": "Is Paris in France? Answer Yes or No."}],
        [{"role": "system", "content": "Answer only Yes or No."}, {"role": "user", "content": "Is the number 7 a word about weather in this text: 'Shares gained 7 percent'?"}],
    ]
    batched = lm.yes_probabilities(questions)
    single = [lm.yes_probability(q) for q in questions]
    assert all(0.0 < p < 1.0 for p in batched)
    assert batched == pytest.approx(single, abs=1e-4)  # left padding does not change the answer
    assert isinstance(lm.complete(questions[0], max_new_tokens=4), str)


@pytest.mark.slow  # loads SmolLM2 a second time (about 4 CPU-seconds)
def test_local_chat_model_given_by_path(one_thread):
    """``--labeler-option model=FOLDER``: a transformers chat model from a local folder answers as
    the same model named (the embedded SmolLM2's converted folder)."""
    from saetool.models.embedded import SMOLLM2

    folder = str(SMOLLM2.ensure_cached())
    by_path = chat_lm({"model": folder})
    assert isinstance(by_path, LocalChatLM) and by_path is not chat_lm({})
    question = [[{"role": "user", "content": "Is Paris in France? Answer Yes or No."}]]
    assert by_path.yes_probabilities(question) == pytest.approx(chat_lm({}).yes_probabilities(question), abs=1e-5)


# -- llm labeler: an OpenAI-compatible endpoint ---------------------------------------------------------
class ChatHandler(BaseHTTPRequestHandler):
    key = ""
    requests: list[dict] = []

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        type(self).requests.append({"path": self.path, "auth": auth, "body": body})
        if self.path.startswith("/slow/"):
            time.sleep(2)  # longer than the client waits
            return self._send(504, {"error": {"message": "too late"}})
        if self.path.startswith("/echo/"):
            return self._send(500, {"error": {"message": f"internal error handling header {auth}"}})
        if self.path.startswith("/junk/"):
            return self._send(200, {"unexpected": True})
        if not self.path.endswith("/v1/chat/completions"):
            return self._send(404, {"error": {"message": "no such route"}})
        if auth != f"Bearer {type(self).key}":
            return self._send(401, {"error": {"message": "invalid api key"}})
        user = body["messages"][-1]["content"]
        if user.startswith("Snippets:"):
            answer = "Answer: numbers and amounts."
        elif "Do all the tokens marked" in user:  # fuzzing: are the marked tokens numbers?
            marked = re.findall(r"<<(.*?)>>", user.split("Snippet: ", 1)[1].split("\n")[0])
            answer = "Yes." if marked and all(m.strip().isdigit() for m in marked) else "No."
        elif "Snippet: " in user:
            text = user.split("Snippet: ", 1)[1].split("\n")[0]
            answer = "Yes." if any(ch.isdigit() for ch in text) else "No."
        else:
            return self._send(400, {"error": {"message": "unexpected prompt"}})
        self._send(200, {"object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]})


@pytest.fixture
def endpoint(monkeypatch):
    key = "sk-test-" + secrets.token_hex(12)
    handler = type("Handler", (ChatHandler,), {"key": key, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(DEFAULT_KEY_ENV, key)
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "key": key, "handler": handler}
    finally:
        server.shutdown()
        server.server_close()


def test_llm_labeler_with_an_endpoint(endpoint, tokenizer, capsys):
    feature = digit_feature(tokenizer)
    options = {"url": endpoint["url"] + "/v1", "model": "test-model", "n_examples": "4"}
    (label,) = LLMLabeler().label([feature], LabelContext(options=options))
    assert label.text == "numbers and amounts" and label.labeler == "llm"
    assert label.score == 1.0
    det = label.details["detection"]
    assert (det["n_positive"], det["n_negative"], det["true_positive_rate"], det["true_negative_rate"]) == (4, 4, 1.0, 1.0)
    assert label.details["model"] == f"endpoint {endpoint['url']}/v1 (test-model)"
    reqs = endpoint["handler"].requests
    assert len(reqs) == 1 + 4 + 4
    assert all(r["auth"] == f"Bearer {endpoint['key']}" and r["body"]["model"] == "test-model" for r in reqs)
    assert reqs[0]["body"]["temperature"] == 0 and reqs[0]["body"]["max_tokens"] == 32
    assert reqs[0]["body"]["messages"][-1]["content"].count("<<") == 4
    snippets = [r["body"]["messages"][-1]["content"].split("Snippet: ")[1].split("\n")[0] for r in reqs[1:]]
    assert all(s.count("<<") == 1 for s in snippets) and all(r["body"]["max_tokens"] == 3 for r in reqs[1:])
    # the key reaches the server only: not the label, its details, the objects or the console
    out = capsys.readouterr()
    for text in (repr(label), json.dumps(asdict(label)), out.out, out.err, repr(chat_lm(options)), repr(vars(chat_lm(options)))):
        assert endpoint["key"] not in text


def test_llm_fuzzing_through_an_endpoint_asks_about_the_marked_tokens(endpoint, tokenizer):
    """Windows with per-token values (as interpret makes them) are also scored by fuzzing: each
    held-out window once with its activating tokens marked and once with as many others."""
    feature = digit_feature(tokenizer)
    for ex in feature.top_examples + feature.held_out:
        ex.values = [1.0 if t.strip().isdigit() else 0.0 for t in ex.tokens]
    options = {"url": endpoint["url"] + "/v1", "model": "test-model", "n_examples": "4"}
    (label,) = LLMLabeler().label([feature], LabelContext(options=options))
    fuzz = label.details["fuzzing"]
    assert (fuzz["n_positive"], fuzz["n_negative"], fuzz["score"], fuzz["chance"]) == (4, 4, 1.0, 0.5)
    assert fuzz["ci95"][0] > 0.5 and label.details["detection"]["score"] == 1.0
    asked = [r["body"]["messages"][-1]["content"] for r in endpoint["handler"].requests if "Do all the tokens marked" in r["body"]["messages"][-1]["content"]]
    asked = [q.split("Snippet: ", 1)[1].split("\n")[0] for q in asked]
    assert len(asked) == 8
    right, wrong = asked[:4], asked[4:]
    for ex, r, w in zip(feature.held_out, right, wrong):
        digits = sum(t.strip().isdigit() for t in ex.tokens)
        assert r.count("<<") == w.count("<<") == digits  # as many marks either way
        assert all(m.strip().isdigit() for m in re.findall(r"<<(.*?)>>", r))
        assert not any(m.strip().isdigit() for m in re.findall(r"<<(.*?)>>", w)) and "<<>>" not in w  # a lone space is named


def test_endpoint_errors_are_one_line_and_never_show_the_key(endpoint, monkeypatch):
    key, url = endpoint["key"], endpoint["url"]
    messages = [{"role": "user", "content": "hi"}]
    cases = {
        "/echo/v1": "HTTP 500",  # the server echoes the Authorization header back
        "/junk/v1": "not an OpenAI-style chat completion",
        "/nowhere": "HTTP 404",
    }
    for path, needle in cases.items():
        with pytest.raises(SaetoolError) as err:
            EndpointChatLM(url + path).complete(messages)
        line = err.value.one_line()
        assert needle in line and f"{url}{path}" in line and "tokens label is used instead" in line
        assert key not in line and key not in str(err.value) and "\n" not in line
        if path.startswith("/echo/"):
            assert "header Bearer ***" in line  # redacted, not dropped
    with pytest.raises(SaetoolError, match="no answer within 0.3 s"):
        EndpointChatLM(url + "/slow/v1", timeout=0.3).complete(messages)
    monkeypatch.setenv(DEFAULT_KEY_ENV, "wrong-key")
    with pytest.raises(SaetoolError, match="HTTP 401 .*invalid api key"):
        chat_lm({"url": url + "/v1"}).complete(messages)


def test_unreachable_endpoint_is_a_clean_error(monkeypatch, tokenizer):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = "sk-secret-" + secrets.token_hex(8)
    monkeypatch.setenv("MY_LABELER_KEY", key)
    options = {"url": f"http://127.0.0.1:{port}/v1?api_key={key}", "key_env": "MY_LABELER_KEY", "timeout": "5"}
    with pytest.raises(SaetoolError) as err:
        LLMLabeler().label([digit_feature(tokenizer)], LabelContext(options=options))
    line = err.value.one_line()
    assert f"http://127.0.0.1:{port}/v1" in line and "unreachable" in line and "tokens label is used instead" in line
    assert key not in line and key not in str(err.value) and "\n" not in line
    assert safe_url(options["url"]) == f"http://127.0.0.1:{port}/v1"
    # other secrets in the URL are not shown either; user:password@ is refused
    with pytest.raises(SaetoolError, match="unreachable") as err:
        chat_lm({"url": f"http://127.0.0.1:{port}/v1?token=tok3n"}).complete([{"role": "user", "content": "hi"}])
    assert "tok3n" not in str(err.value) and f"http://127.0.0.1:{port}/v1" in err.value.one_line()
    with pytest.raises(SaetoolError, match="carries credentials") as err:
        chat_lm({"url": f"http://me:hunter2pw@127.0.0.1:{port}/v1"})
    assert "hunter2pw" not in str(err.value)


def test_bad_llm_options_are_refused_before_any_request(endpoint):
    with pytest.raises(SaetoolError, match="secret on the command line") as err:
        chat_lm({"url": endpoint["url"], "key": "sk-on-the-command-line"})
    assert "sk-on-the-command-line" not in str(err.value)
    with pytest.raises(SaetoolError, match="NOT_SET_ANYWHERE .*not set"):
        chat_lm({"url": endpoint["url"], "key_env": "NOT_SET_ANYWHERE"})
    with pytest.raises(SaetoolError, match="not an http"):
        chat_lm({"url": "ftp://127.0.0.1/v1"})
    with pytest.raises(SaetoolError, match="timeout"):
        chat_lm({"url": endpoint["url"], "timeout": "soon"})
    with pytest.raises(SaetoolError, match="no option temprature"):
        LLMLabeler().label([], LabelContext(options={"url": endpoint["url"], "temprature": "0"}))
    with pytest.raises(SaetoolError, match="n_score"):
        LLMLabeler().label([], LabelContext(options={"url": endpoint["url"], "n_score": "-1"}))
    assert endpoint["handler"].requests == []
