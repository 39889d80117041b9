"""Position labelers: which token of a text starts its negative-to-positive turn.

A position labeler is registered through the ``register_position_labelers``
hook and has a :meth:`PositionLabeler.locate` method (feature labelers, another
interface, have ``label``). Built-ins: ``transition-words`` (a word list matched on the
model tokenizer's tokens) and ``llm-transition`` (asks an LLM through
``saetool.models.chat``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from saetool.errors import SaetoolError

# Deferred imports: the llm-transition labeler's chat client, guarded so the other labelers load (`saetool plugins`
# lists them) even without it.

#: Words that open a turn for the better, matched case-insensitively as whole words.
TRANSITION_WORDS: tuple[str, ...] = (
    "but", "however", "yet", "although", "though", "nevertheless", "nonetheless", "still",
    "fortunately", "luckily", "thankfully", "hopefully", "then", "suddenly", "eventually",
    "finally", "thankfully", "instead", "despite", "anyway", "gradually", "slowly", "until",
)

_WORD_CHARS = re.compile(r"[A-Za-z0-9']")


class PositionLabeler:
    """Base class: ``locate`` returns, per text, the index into its token list of
    the labeled token, or ``None`` when the text has none."""

    name: str = ""
    description: str = ""
    target: str = "positions"  # routes it under the deprecated register_labelers hook

    def locate(self, texts: Sequence[str], token_lists: Sequence[Sequence[int]], tokenizer: Any, options: Mapping[str, str] | None = None) -> list[int | None]:
        raise NotImplementedError


def token_pieces(token_ids: Sequence[int], tokenizer: Any) -> list[str | None]:
    """The text each token adds (``None`` for special tokens).

    Decoded incrementally (the text of the first ``k + 1`` tokens minus that of
    the first ``k``) within each run of ordinary tokens, so tokenizers whose
    single-token decode drops the leading space (SentencePiece) still show it.
    """
    special = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}
    pieces: list[str | None] = []
    run: list[int] = []
    prev = ""
    for tid in token_ids:
        if int(tid) in special:
            pieces.append(None)
            run, prev = [], ""
            continue
        run.append(int(tid))
        cur = tokenizer.decode(run)
        pieces.append(cur[len(prev):] if cur.startswith(prev) else cur[len(prev):] or cur[-1:])
        prev = cur
    return pieces


def token_words(token_ids: Sequence[int], tokenizer: Any) -> list[tuple[int, str]]:
    """``(index of the word's first token, word)`` for every word the tokens spell.

    A word is a run of letters, digits and apostrophes; it belongs to the token
    where it starts, so a word split into several tokens is found at its first
    token. Special tokens end a word and are never part of one.
    """
    words: list[tuple[int, str]] = []
    current: list[str] = []
    start: int | None = None
    for i, piece in enumerate(token_pieces(token_ids, tokenizer)):
        for ch in piece if piece is not None else "\0":
            if piece is not None and _WORD_CHARS.match(ch):
                if start is None:
                    start, current = i, []
                current.append(ch)
            elif start is not None:
                words.append((start, "".join(current)))
                start, current = None, []
    if start is not None:
        words.append((start, "".join(current)))
    return words


def find_word(token_ids: Sequence[int], tokenizer: Any, words: set[str], *, occurrence: str = "first") -> int | None:
    """The token index where one of ``words`` (lower case) starts, or ``None``."""
    hits = [i for i, w in token_words(token_ids, tokenizer) if w.lower() in words]
    if not hits:
        return None
    return hits[0] if occurrence == "first" else hits[-1]


def _word_list(options: Mapping[str, str]) -> set[str]:
    raw = options.get("words")
    if raw is None:
        return set(TRANSITION_WORDS)
    words = {w.strip().lower() for w in str(raw).split(",") if w.strip()}
    if not words:
        raise SaetoolError("the labeler option words= is empty", hint="give e.g. words=but,however,yet")
    return words


def _occurrence(options: Mapping[str, str]) -> str:
    occ = str(options.get("occurrence", "first"))
    if occ not in ("first", "last"):
        raise SaetoolError(f"unknown labeler option occurrence={occ!r}", hint="use occurrence=first or occurrence=last")
    return occ


#: Looked for before the other transition words (seed 000 looks for "However" first).
DEFAULT_PREFER = ("however",)


def _prefer(options: Mapping[str, str]) -> list[str]:
    raw = options.get("prefer")
    if raw is None:
        return [] if "words" in options else list(DEFAULT_PREFER)
    return [w.strip().lower() for w in str(raw).split(",") if w.strip()]


class TransitionWords(PositionLabeler):
    """The first transition word on the model's tokens, preferred words first:
    ``prefer`` (default "however"; ``transitions --prompts`` uses the bridge's
    word, and reads generated texts from the bridge on) wins wherever it is, so a
    "but" inside the negative part does not."""

    name = "transition-words"
    description = "The first transition word (however first, then but, yet, fortunately, ...) matched on the model tokenizer's tokens"

    def locate(self, texts, token_lists, tokenizer, options=None):
        options = dict(options or {})
        unknown = set(options) - {"words", "occurrence", "prefer"}
        if unknown:
            raise SaetoolError(f"unknown option(s) for the transition-words labeler: {', '.join(sorted(unknown))}",
                               hint="it takes words=a,b,c, prefer=a,b and occurrence=first|last")
        words, occ, prefer = _word_list(options), _occurrence(options), _prefer(options)
        out = []
        for ids in token_lists:
            found = None
            for word in prefer:
                found = find_word(ids, tokenizer, {word}, occurrence=occ)
                if found is not None:
                    break
            out.append(found if found is not None else find_word(ids, tokenizer, words, occurrence=occ))
        return out


SYSTEM_PROMPT = (
    "You find where a text turns from negative to positive. Reply with the single word "
    "that starts the turn, exactly as it appears in the text, or NONE if there is no turn."
)


def build_messages(text: str) -> list[dict[str, str]]:
    """The chat messages sent to the LLM for one text."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Text:\n{text}\n\nWhich word starts the turn from negative to positive? Answer with that one word only."},
    ]


def parse_answer(answer: str) -> str | None:
    """The word the LLM named, lower case, or ``None`` (NONE or an empty reply).

    Small models answer in a sentence (``The word "However" starts ...``), so a
    quoted word wins, then any transition word in the reply, then its first word.
    """
    text = str(answer or "").strip()
    quoted = re.search(r"[\"“`]\s*([A-Za-z0-9']+)", text)
    if quoted:
        return quoted.group(1).lower()
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9']+", text)]
    if not words or words[0] == "none":
        return None
    for w in words:
        if w in TRANSITION_WORDS:
            return w
    return words[0]


class LLMTransition(PositionLabeler):
    """Asks an LLM which word starts the turn, then finds that word on the model's tokens."""

    name = "llm-transition"
    description = "Asks an LLM (saetool.models.chat) which word starts the negative-to-positive turn"

    def locate(self, texts, token_lists, tokenizer, options=None):
        options = dict(options or {})
        occ = _occurrence({"occurrence": options.pop("occurrence", "first")})
        try:
            from saetool.models.chat import chat_lm
        except ImportError as exc:
            raise SaetoolError(
                "the llm-transition labeler needs saetool.models.chat, which this saetool does not have",
                hint="use --labeler transition-words",
            ) from exc
        lm = chat_lm(options)
        out: list[int | None] = []
        for text, ids in zip(texts, token_lists):
            try:
                answer = lm.complete(build_messages(text), max_new_tokens=16)
            except SaetoolError:
                raise
            except Exception as exc:
                raise SaetoolError(f"the LLM labeler failed: {type(exc).__name__}: {exc}", hint="check the endpoint options, or use --labeler transition-words") from exc
            word = parse_answer(answer)
            out.append(None if word is None else find_word(ids, tokenizer, {word}, occurrence=occ))
        return out


BUILTIN_POSITION_LABELERS = (TransitionWords(), LLMTransition())
