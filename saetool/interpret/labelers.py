"""The built-in feature labelers: ``tokens`` (no model) and ``llm`` (a chat model explains).

Both score their label detection-style (:mod:`saetool.interpret.scoring`):
the label predicts, for each held-out activating window and each
non-activating window of the feature, whether the feature fires there, and
the balanced accuracy of those predictions is :attr:`Label.score`. The
windows ``interpret`` keeps are centred on one token (active for held-out
windows, inactive for negatives), so by default (``scope=token``) a
prediction is about that marked token; ``--labeler-option scope=window``
asks about the whole window instead (stricter for features on common tokens,
whose tokens appear in most windows).

- ``tokens``: the tokens, and bigrams ending at a token, that best predict
  where the feature fires (:func:`fit_patterns`: fitted on the per-token
  activations of the top and interval windows, added greedily while the
  activations a pattern covers outweigh the silent positions it matches,
  at most 12, compared in any case and with or without the leading space),
  e.g. ``tokens: "the", "a" | bigram "of the" (any case)``; without per-token activations,
  the most frequent activating tokens and a recurring bigram or trigram, exactly
  (``tokens: " the"``, leading spaces kept). Tokens are shown quoted, control and
  invisible characters escaped. It predicts
  "fires" when one of those tokens or n-grams ends at the marked token (or,
  with ``scope=window``, occurs anywhere in the window).
- ``llm``: asks a chat model (:func:`saetool.models.chat.chat_lm`: the
  embedded SmolLM2-135M-Instruct, or an OpenAI-compatible endpoint given by
  ``url=``) for a short explanation of the top examples, with the activating
  token marked ``<<like this>>``, then asks it, for each scoring window,
  whether the marked token (or the window) fits the explanation.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from saetool.console import stderr
from saetool.errors import SaetoolError
from saetool.interpret.records import Example, FeatureRecord, Label, LabelContext, Labeler
from saetool.interpret.scoring import apply_scorers
from saetool.models.chat import CHAT_OPTIONS, chat_lm, check_no_secrets
from saetool.progress import token_progress


# -- showing tokens ---------------------------------------------------------------------
def show_token(text: str) -> str:
    """A token quoted so whitespace is visible: ``" the"``, ``"\\n"``, ``"caf\u00e9"``.

    JSON string escaping (quotes, backslashes, control characters), plus
    ``\\uXXXX`` for invisible characters (non-breaking and zero-width spaces,
    format characters); other unicode is kept as is.
    """
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(
        f"\\u{ord(ch):04x}" if ch != " " and unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Cf", "Cc", "Co", "Cn") else ch
        for ch in quoted
    )


# -- the tokens labeler -----------------------------------------------------------------
def fold(token: str) -> str:
    """A token as a reader compares it: lower case, without surrounding whitespace
    (a whitespace-only token stays as it is), so " The", "the" and " THE" are one word."""
    return token.strip().lower() or token


@dataclass(frozen=True)
class TokenPattern:
    """A token or an n-gram (tokens in order) and how many top examples show it.

    ``folded``: ``tokens`` are :func:`fold` ed and match any case, with or without
    the leading space; ``surface`` is how the pattern most often reads in the windows."""

    tokens: tuple[str, ...]
    count: int
    folded: bool = False
    surface: tuple[str, ...] | None = None

    @property
    def n(self) -> int:
        return len(self.tokens)

    def shown(self) -> str:
        """The pattern quoted; a folded one without the leading space of its first token."""
        parts = list(self.surface or self.tokens)
        if self.folded and parts:
            parts[0] = parts[0].strip() or parts[0]
        return show_token("".join(parts))

    def _key(self, tokens: Sequence[str]) -> tuple[str, ...]:
        return tuple(fold(t) for t in tokens) if self.folded else tuple(tokens)

    def found_in(self, tokens: Sequence[str]) -> bool:
        """Whether ``tokens`` contain this pattern anywhere."""
        n = self.n
        return any(self._key(tokens[i : i + n]) == self.tokens for i in range(len(tokens) - n + 1))

    def ends_at(self, tokens: Sequence[str], position: int) -> bool:
        """Whether this pattern ends at ``tokens[position]``."""
        start = position - self.n + 1
        return start >= 0 and position < len(tokens) and self._key(tokens[start : position + 1]) == self.tokens


def ngram_at(example: Example, n: int) -> tuple[str, ...] | None:
    """The ``n`` tokens ending at the example's activating token, or ``None`` near the start."""
    start = example.position - n + 1
    if start < 0 or example.position >= len(example.tokens):
        return None
    return tuple(example.tokens[start : example.position + 1])


def _ranked(counts: Counter, first_seen: dict[Any, int]) -> list[tuple[Any, int]]:
    """Most common first; ties in order of first appearance (deterministic)."""
    return sorted(counts.items(), key=lambda item: (-item[1], first_seen[item[0]]))


def token_patterns(record: FeatureRecord, *, max_tokens: int = 3, min_share: float = 0.1, min_ngram_share: float = 0.3) -> list[TokenPattern]:
    """The tokens and n-grams a ``tokens`` label names.

    Tokens: the activating tokens of the top examples (``record.top_tokens``
    when the examples are missing), most frequent first, at most
    ``max_tokens``, each at least ``min_share`` of all counts (the first
    always). N-grams: the most common bigram and trigram ending at the
    activating token, kept when at least two and at least ``min_ngram_share``
    of the top examples show it; a trigram as frequent as the bigram it
    extends replaces it.
    """
    examples = [e for e in record.top_examples if 0 <= e.position < len(e.tokens)]
    counts: Counter = Counter()
    first_seen: dict[Any, int] = {}
    if examples:
        for i, example in enumerate(examples):
            counts[example.token] += 1
            first_seen.setdefault(example.token, i)
    else:
        for i, (token, count) in enumerate(record.top_tokens):
            counts[token] += int(count)
            first_seen.setdefault(token, i)
    ranked = [(t, c) for t, c in _ranked(counts, first_seen) if c > 0]
    if not ranked:
        return []
    total = sum(c for _, c in ranked)
    patterns = [TokenPattern((ranked[0][0],), ranked[0][1])]
    for token, count in ranked[1:max_tokens]:
        if count / total >= min_share:
            patterns.append(TokenPattern((token,), count))

    needed = max(2, math.ceil(min_ngram_share * len(examples)))
    best: dict[int, TokenPattern] = {}
    for n in (2, 3):
        grams: Counter = Counter()
        seen: dict[Any, int] = {}
        for i, example in enumerate(examples):
            gram = ngram_at(example, n)
            if gram is not None:
                grams[gram] += 1
                seen.setdefault(gram, i)
        top = _ranked(grams, seen)
        if top and top[0][1] >= needed:
            best[n] = TokenPattern(top[0][0], top[0][1])
    if 2 in best and 3 in best and best[3].count >= best[2].count and best[3].tokens[1:] == best[2].tokens:
        del best[2]
    patterns.extend(best[n] for n in sorted(best))
    return patterns


def _training_positions(record: FeatureRecord) -> list[tuple[str, str | None, bool]]:
    """``(token, previous token, active)`` at each position of the record's top and interval
    windows that have per-token activations, each corpus position once, leaving out every
    position inside a held-out or negative window (the scorers' windows)."""
    scored = set()
    for e in (*record.held_out, *record.negatives):
        if e.seq_index >= 0 and e.token_position >= 0:
            start = e.token_position - e.position
            scored.update((e.seq_index, start + k) for k in range(len(e.tokens)))
    seen: set = set()
    out = []
    for n, e in enumerate((*record.top_examples, *record.interval_examples)):
        if e.values is None or len(e.values) != len(e.tokens):
            continue
        located = e.seq_index >= 0 and e.token_position >= 0
        for k, (token, value) in enumerate(zip(e.tokens, e.values)):
            key = (e.seq_index, e.token_position - e.position + k) if located else (-1 - n, k)
            if value is None or key in seen or key in scored:
                continue
            seen.add(key)
            out.append((token, e.tokens[k - 1] if k else None, value > 0))
    return out


def fit_patterns(
    record: FeatureRecord,
    token_counts: Mapping[str, int] | None = None,
    n_tokens: int = 0,
    *,
    max_items: int = 12,
    min_gain: float = 0.0,
    min_bigram: int = 2,
    folded: bool = True,
) -> list[TokenPattern] | None:
    """The tokens and bigrams (previous token, token) whose naming maximises the label's
    expected balanced accuracy, chosen greedily.

    Fitted on the activations at every token of the top and interval windows
    (never the held-out or negative windows the scorers use). The detection
    score is ``(TPR + TNR) / 2``, so adding a pattern gains the share of the
    feature's activations it newly covers (the true-positive rate, estimated
    from the windows) and loses the share of positions where the feature is 0
    that it matches (the false-positive rate: the larger of its share of the
    windows' inactive positions and, given ``token_counts`` over ``n_tokens``,
    its corpus share times the fraction of its window occurrences where the
    feature is silent, with one success and one failure added). Each step adds
    the pattern with the largest gain, until ``max_items`` patterns (a readable
    label) or no gain above ``min_gain``. A bigram needs ``min_bigram``
    activating occurrences (one is a coincidence of the windows) and is
    dropped once its last token is named alone. With ``folded`` (the default)
    tokens are compared as a reader compares words, in any case and with or
    without the leading space (:func:`fold`): " The" and "the" count as one.
    ``None`` when no window has per-token activations (then
    :func:`token_patterns` counts top tokens).
    """
    raw = _training_positions(record)
    key_of = fold if folded else (lambda token: token)
    positions = [(key_of(token), None if prev is None else key_of(prev), active) for token, prev, active in raw]
    if folded and token_counts:
        counts: Counter = Counter()
        for token, count in token_counts.items():
            counts[fold(token)] += count
        token_counts = counts
    n_active = sum(active for _, _, active in positions)
    if not n_active:
        return None
    n_silent_windows = max(1, len(positions) - n_active)
    n_silent_corpus = n_tokens * (1 - min(max(record.density, 0.0), 1.0))
    seen: Counter = Counter()
    fired: Counter = Counter()
    covers: dict[tuple[str, ...], set[int]] = {}
    surfaces: dict[tuple[str, ...], Counter] = {}
    for i, ((token, prev, active), (raw_token, raw_prev, _)) in enumerate(zip(positions, raw)):
        for key, text in (((token,), (raw_token,)), ((prev, token), (raw_prev, raw_token))) if prev is not None else (((token,), (raw_token,)),):
            seen[key] += 1
            fired[key] += active
            if active:
                covers.setdefault(key, set()).add(i)
                surfaces.setdefault(key, Counter())[text] += 1

    def false_positive_rate(key: tuple[str, ...]) -> float:
        rate = (seen[key] - fired[key]) / n_silent_windows
        if token_counts and n_silent_corpus > 0:
            count = token_counts.get(key[-1], 0) * (seen[key] / seen[key[-1],] if len(key) > 1 else 1.0)
            silent = 1 - (fired[key] + 1) / (seen[key] + 2)
            rate = max(rate, count * silent / n_silent_corpus)
        return rate

    cost = {key: false_positive_rate(key) for key in covers if len(key) == 1 or len(covers[key]) >= min_bigram}
    chosen: list[tuple[str, ...]] = []
    covered: set[int] = set()
    while len(chosen) < max_items:
        best, best_gain = None, min_gain
        for key in cost:  # insertion order: first seen first, so ties are deterministic
            if key in chosen or (len(key) > 1 and (key[-1],) in chosen):
                continue
            gain = len(covers[key] - covered) / n_active - cost[key]
            if gain > best_gain:
                best, best_gain = key, gain
        if best is None:
            break
        chosen = [k for k in chosen if not (len(best) == 1 and len(k) > 1 and k[-1] == best[0])] + [best]
        covered |= covers[best]
    if not chosen:  # nothing gains: the most frequent activating token, as before
        token, count = Counter(token for token, _, active in positions if active).most_common(1)[0]
        chosen = [(token,)]
    singles = [k for k in chosen if len(k) == 1]
    return [TokenPattern(k, fired[k], folded, surfaces[k].most_common(1)[0][0]) for k in singles + [k for k in chosen if len(k) > 1]]


def tokens_label_text(patterns: Sequence[TokenPattern]) -> str:
    """``tokens: "the", "a" | bigram "of the" (any case)`` (folded patterns) or
    ``tokens: " the", " a" | bigram " of the"`` (exact ones); ``(no activations)`` without patterns."""
    if not patterns:
        return "(no activations)"
    singles = [p.shown() for p in patterns if p.n == 1]
    parts = ["tokens: " + ", ".join(singles)]
    names = {2: "bigram", 3: "trigram"}
    parts.extend(f"{names.get(p.n, f'{p.n}-gram')} {p.shown()}" for p in patterns if p.n > 1)
    return " | ".join(parts) + (" (any case)" if any(p.folded for p in patterns) else "")


def patterns_predictor(patterns: Sequence[TokenPattern], scope: str = "token"):
    """Predict "fires" from ``patterns`` (activations are never looked at).

    ``scope="token"``: one of the patterns ends at the window's marked token;
    ``scope="window"``: the window contains one of them anywhere.
    """

    def predict(example: Example) -> bool:
        if scope == "window":
            return any(p.found_in(example.tokens) for p in patterns)
        return any(p.ends_at(example.tokens, example.position) for p in patterns)

    return predict


class PatternJudge:
    """The :class:`~saetool.interpret.scoring.Judge` of a ``tokens`` label: a window
    fires when a pattern ends at its marked token (``scope=window``: occurs in it);
    marks are right when a pattern ends at every marked token."""

    def __init__(self, patterns: Sequence[TokenPattern], scope: str = "token") -> None:
        self.patterns, self.scope = list(patterns), scope
        self._predict = patterns_predictor(self.patterns, scope)

    def detect(self, windows: Sequence[Example]) -> list[bool]:
        return [bool(self._predict(w)) for w in windows]

    def fuzz(self, windows: Sequence[Example], marks: Sequence[Sequence[int]]) -> list[bool]:
        return [bool(m) and all(any(p.ends_at(w.tokens, i) for p in self.patterns) for i in m) for w, m in zip(windows, marks)]


SCOPES = ("token", "window")


def scope_option(options: Mapping[str, str]) -> str:
    """The ``scope=`` labeler option: what a detection prediction is about (default ``token``)."""
    scope = (options.get("scope") or "token").strip().lower()
    if scope not in SCOPES:
        raise SaetoolError(f"--labeler-option scope={options.get('scope')!r} is not one of {', '.join(SCOPES)}")
    return scope


class TokensLabeler(Labeler):
    """Label a feature by its top activating tokens and recurring n-grams (no model)."""

    name = "tokens"
    description = "The tokens and bigrams that best predict where the feature fires (fitted for balanced accuracy on the top and interval windows, at most 12); scored by whether they end at the marked token (no model needed)"
    target = "features"

    def __init__(self, *, max_tokens: int = 3, min_share: float = 0.1, min_ngram_share: float = 0.3) -> None:
        self.max_tokens = max_tokens
        self.min_share = min_share
        self.min_ngram_share = min_ngram_share

    def label_one(self, record: FeatureRecord, *, scope: str = "token", scorers: Sequence[str] | None = None,
                  token_counts: Mapping[str, int] | None = None, n_tokens: int = 0) -> Label:
        patterns = fit_patterns(record, token_counts, n_tokens)
        chosen_by = "balanced accuracy"
        if patterns is None:
            patterns = token_patterns(record, max_tokens=self.max_tokens, min_share=self.min_share, min_ngram_share=self.min_ngram_share)
            chosen_by = "frequency"
        details: dict[str, Any] = {"patterns": [{"tokens": list(p.tokens), "count": p.count, **({"shown": list(p.surface or p.tokens), "any_case": True} if p.folded else {})} for p in patterns], "chosen_by": chosen_by}
        label = Label(text=tokens_label_text(patterns), labeler=self.name, score=None, details=details)
        if patterns:
            apply_scorers(record, label, PatternJudge(patterns, scope), scorers, extra={"scope": scope})
        return label

    def check_options(self, options: Mapping[str, str]) -> str:
        """The scope; other options are ignored (they are the failed labeler's when this is the fallback)."""
        check_no_secrets(options)
        return scope_option(options)

    def label(self, records: Sequence[FeatureRecord], ctx: LabelContext) -> list[Label]:
        scope = self.check_options(ctx.options)
        return [self.label_one(record, scope=scope, scorers=ctx.scorers, token_counts=ctx.token_counts, n_tokens=ctx.n_tokens) for record in records]


# -- the llm labeler --------------------------------------------------------------------
EXPLAIN_SYSTEM = (
    "You are an interpretability researcher. You read short text snippets in which one token "
    "is marked like <<this>>, and say in a few words what the marked tokens have in common."
)
EXPLAIN_USER = "Snippets:\n{snippets}\n\nWhat do the marked tokens have in common? Answer with one short phrase."
DETECT_SYSTEM = "You decide whether a text snippet fits a description. Answer only Yes or No."
#: Detection questions by scope: about the marked token, or the whole snippet.
DETECT_USER = {
    "token": "Description: {explanation}\nSnippet: {snippet}\n\nDoes the token marked <<like this>> fit the description? Answer Yes or No.",
    "window": "Description: {explanation}\nSnippet: {snippet}\n\nDoes the snippet contain something that fits the description? Answer Yes or No.",
}
#: The fuzzing question: are the marked tokens (possibly several) the ones described?
FUZZ_USER = "Description: {explanation}\nSnippet: {snippet}\n\nDo all the tokens marked <<like this>> fit the description? Answer Yes or No."

#: ``--labeler-option`` keys of the ``llm`` labeler (besides the backend's, see :data:`saetool.models.chat.CHAT_OPTIONS`).
LLM_OPTIONS = {
    "n_examples": "top examples shown to the model (default 8)",
    "n_score": "held-out and non-activating windows scored, each (default 10)",
    "max_new_tokens": "length limit of the explanation (default 32)",
    "before": "tokens shown before the activating token (default 12)",
    "after": "tokens shown after it (default 4)",
    "scope": "what the Yes/No questions ask about: the marked token (token, default) or the whole window",
}


def snippet(example: Example, *, before: int, after: int, mark: bool) -> str:
    """The window's text around its activating token, the token marked ``<<...>>`` if ``mark``."""
    pos = example.position
    if not 0 <= pos < len(example.tokens):
        return "".join(example.tokens).strip()
    left = "".join(example.tokens[max(0, pos - before) : pos])
    token = example.tokens[pos]
    right = "".join(example.tokens[pos + 1 : pos + 1 + after])
    if mark:
        token = mark_token(token)
    return " ".join((left + token + right).split())


def mark_token(token: str) -> str:
    """``token`` marked for a chat model: ``" cat"`` -> ``" <<cat>>"`` (the leading space
    outside); a token of whitespace only is named after it, ``" <<[space]>>"`` (or
    ``[newline]``, ``[tab]``), since an empty ``<<>>`` would show the model nothing to judge."""
    stripped = token.lstrip()
    if not stripped:
        return token + f"<<[{'newline' if chr(10) in token else 'tab' if chr(9) in token else 'space'}]>>"
    return token[: len(token) - len(stripped)] + f"<<{stripped}>>"


def marked_window(example: Example, marks: Sequence[int]) -> str:
    """The whole window with each token at ``marks`` marked ``<<...>>`` (for fuzzing)."""
    chosen = set(marks)
    parts = []
    for i, token in enumerate(example.tokens):
        if i in chosen:
            token = mark_token(token)
        parts.append(token)
    return " ".join("".join(parts).split())


class ChatJudge:
    """The judge of an ``llm`` label: the chat model answers Yes/No questions about windows."""

    def __init__(self, lm: Any, explanation: str, settings: Mapping[str, Any]) -> None:
        self.lm, self.explanation, self.settings = lm, explanation, settings

    def _ask(self, questions: Sequence[str]) -> list[float]:
        batch = [[{"role": "system", "content": DETECT_SYSTEM}, {"role": "user", "content": q}] for q in questions]
        return [float(p) for p in self.lm.yes_probabilities(batch)]

    def detect(self, windows: Sequence[Example]) -> list[float]:
        s = self.settings
        return self._ask([DETECT_USER[s["scope"]].format(explanation=self.explanation, snippet=snippet(w, before=s["before"], after=s["after"], mark=s["scope"] == "token")) for w in windows])

    def fuzz(self, windows: Sequence[Example], marks: Sequence[Sequence[int]]) -> list[float]:
        return self._ask([FUZZ_USER.format(explanation=self.explanation, snippet=marked_window(w, m)) for w, m in zip(windows, marks)])


_PREFIX = re.compile(
    r"^(?:answer|explanation|description|label"
    r"|(?:the )?(?:feature|model) (?:detects|fires on|responds to)"
    r"|(?:all )?(?:the |these )?(?:marked |common )?(?:tokens?|words?)(?: that are marked)?(?: all)?"
    r" (?:have (?:in common|a common (?:trait|theme|feature)(?: of being)?)|share|are all|are|is|refer to|represent)"
    r"|they (?:all )?(?:are|refer to|represent)(?: all)?)\s*(?::|-|that|of being)?\s*",
    re.IGNORECASE,
)


def clean_explanation(text: str, *, limit: int = 160) -> str:
    """The first line of a reply, without "Answer:"-style prefixes, quotes, bullets or markers."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    line = re.sub(r"^[\s\-*#>\d.)]+", "", line).strip()
    for _ in range(2):
        line = _PREFIX.sub("", line).strip()
    line = line.replace("<<", "").replace(">>", "").strip().rstrip(".").strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0].rstrip(",;: ") + "..."
    return line


def _int_option(options: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = options.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SaetoolError(f"--labeler-option {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SaetoolError(f"--labeler-option {name}={raw} must be at least {minimum}")
    return value


class LLMLabeler(Labeler):
    """Ask a chat model to explain the top examples; score the explanation by detection."""

    name = "llm"
    description = (
        "A chat model explains the top examples (embedded SmolLM2-135M-Instruct, or an OpenAI-compatible "
        "endpoint: url=, model=, key_env=); scored by asking it which held-out windows match"
    )
    target = "features"

    def __init__(self, lm: Any = None) -> None:
        self.lm = lm  # a ChatLM to use instead of chat_lm(options) (notebooks, tests)

    def check_options(self, options: Mapping[str, str]) -> dict[str, Any]:
        check_no_secrets(options)
        unknown = sorted(set(options) - set(LLM_OPTIONS) - set(CHAT_OPTIONS))
        if unknown:
            raise SaetoolError(
                f"the llm labeler has no option {', '.join(unknown)}",
                hint="use " + ", ".join(sorted(set(LLM_OPTIONS) | set(CHAT_OPTIONS))),
            )
        return {
            "n_examples": _int_option(options, "n_examples", 8, 1),
            "n_score": _int_option(options, "n_score", 10, 0),
            "max_new_tokens": _int_option(options, "max_new_tokens", 32, 1),
            "before": _int_option(options, "before", 12, 0),
            "after": _int_option(options, "after", 4, 0),
            "scope": scope_option(options),
        }

    def label(self, records: Sequence[FeatureRecord], ctx: LabelContext) -> list[Label]:
        settings = {**self.check_options(ctx.options), "scorers": ctx.scorers}
        lm = self.lm if self.lm is not None else chat_lm(ctx.options)
        labels = []
        with token_progress("llm labels", total=len(records), enabled=len(records) > 1 and stderr().is_terminal, unit="feat") as advance:
            for record in records:
                labels.append(self.label_one(record, lm, settings))
                advance(1)
        return labels

    def label_one(self, record: FeatureRecord, lm: Any, settings: Mapping[str, Any]) -> Label:
        before, after, scope = settings["before"], settings["after"], settings["scope"]
        examples = record.top_examples[: settings["n_examples"]]
        details: dict[str, Any] = {"model": lm.description, "n_examples": len(examples)}
        if not examples:
            return Label(text="(no activations)", labeler=self.name, score=None, details=details)
        snippets = "\n".join(f"{i}. {snippet(e, before=before, after=after, mark=True)}" for i, e in enumerate(examples, 1))
        messages = [{"role": "system", "content": EXPLAIN_SYSTEM}, {"role": "user", "content": EXPLAIN_USER.format(snippets=snippets)}]
        reply = lm.complete(messages, max_new_tokens=settings["max_new_tokens"])
        explanation = clean_explanation(reply)
        if not explanation:
            fallback = TokensLabeler().label_one(record, scope=scope, scorers=settings.get("scorers"))
            fallback.details["fallback_from"] = {"labeler": self.name, "reason": "the model gave an empty explanation", **details}
            return fallback
        label = Label(text=explanation, labeler=self.name, score=None, details=details)
        return apply_scorers(record, label, ChatJudge(lm, explanation, settings), settings.get("scorers"), limit=settings["n_score"], extra={"scope": scope})
