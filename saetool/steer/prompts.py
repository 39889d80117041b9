"""Prompt files, chat formatting and left-padded batches for steering.

A prompt file is one of:

- ``.txt``: one prompt per line; blank lines and lines starting with ``#`` are skipped;
- ``.jsonl``: one JSON object per line with ``prompt`` (or ``text``) and an
  optional ``split``; a bare JSON string also works;
- ``.json``: a list of such objects or strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from saetool.errors import SaetoolError
from saetool.paths import special_file_kind

if TYPE_CHECKING:
    import torch

# Deferred imports: torch only to encode; reading and formatting prompts (`sweep --dry-run`) needs no torch.


@dataclass(frozen=True)
class Prompt:
    text: str
    split: str | None = None


def read_text_file(path: str | Path, *, what: str) -> tuple[Path, str]:
    """``(path, its text)`` for a .txt/.jsonl/.json input; one-line errors for a
    missing file, a folder, or bytes that are not UTF-8 (``what`` names the file)."""
    p = Path(path)
    if not p.exists():
        raise SaetoolError(f"{what} {p} does not exist", hint="check the path")
    if p.is_dir():
        raise SaetoolError(f"{what} {p} is a directory", hint="give a .txt, .jsonl or .json file")
    special = special_file_kind(p)
    if special is not None:
        raise SaetoolError(f"{what} {p} is a {special}, not a regular file", hint="give a .txt, .jsonl or .json file")
    try:
        return p, p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SaetoolError(f"{what} {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_prompts(path: str | Path, *, split: str | None = None, max_prompts: int | None = None, what: str = "prompt file") -> list[Prompt]:
    """The prompts in ``path`` (optionally one ``split`` of them, at most ``max_prompts``)."""
    p, raw = read_text_file(path, what=what)
    if p.suffix == ".jsonl":
        prompts = [_record(json_line(line, p, n), p, n) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    elif p.suffix == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SaetoolError(f"{what} {p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, list):
            raise SaetoolError(f"{what} {p} must hold a JSON list of prompts")
        prompts = [_record(item, p, n) for n, item in enumerate(data, 1)]
    else:
        prompts = [Prompt(line.strip()) for line in raw.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    prompts = [q for q in prompts if q.text.strip()]
    if not prompts:
        raise SaetoolError(f"{what} {p} has no prompts", hint="put one prompt per line (.txt) or one JSON object per line (.jsonl)")
    if split is not None:
        chosen = [q for q in prompts if q.split == split]
        if not chosen:
            have = sorted({q.split for q in prompts if q.split}) or ["none"]
            raise SaetoolError(f"{what} {p} has no prompts in split {split!r}", hint="its splits: " + ", ".join(have))
        prompts = chosen
    if max_prompts is not None:
        if max_prompts < 1:
            raise SaetoolError(f"the prompt cap must be at least 1 (got {max_prompts})")
        prompts = prompts[:max_prompts]
    return prompts


def json_line(line: str, path: Path, n: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise SaetoolError(f"{path} line {n} is not valid JSON ({exc.msg})") from None


def _record(item, path: Path, n: int) -> Prompt:
    if isinstance(item, str):
        return Prompt(item.strip())
    if isinstance(item, dict):
        text = item.get("prompt", item.get("text"))
        if isinstance(text, str):
            split = item.get("split")
            return Prompt(text.strip(), str(split) if split is not None else None)
    raise SaetoolError(f"{path} entry {n} has no 'prompt' string", hint='use {"prompt": "...", "split": "..."} or a plain string')


def read_words(spec: str | Path, *, what: str = "word list") -> list[str]:
    """Words from a file (one per line or comma-separated) or an inline ``a,b,c`` list."""
    p = Path(str(spec))
    if p.exists() and not p.is_dir():
        _, text = read_text_file(p, what=what)
        words = [w.strip() for line in text.splitlines() if not line.lstrip().startswith("#") for w in line.split(",")]
    elif "," in str(spec) or (str(spec).strip() and "/" not in str(spec) and not str(spec).endswith(".txt")):
        words = [w.strip() for w in str(spec).split(",")]
    else:
        raise SaetoolError(f"{what} {spec} does not exist", hint="give a file with one word per line, or an inline list like happy,joy,hopeful")
    words = [w for w in words if w]
    if not words:
        raise SaetoolError(f"{what} {spec} is empty")
    return words


# -- formatting and batching ------------------------------------------------------------
def format_prompts(tokenizer, prompts: Sequence[str], *, chat: bool = True, system: str | None = None) -> list[str]:
    """Prompts as the model sees them: through the chat template (with the
    assistant turn opened) when ``chat``, else verbatim."""
    if not chat:
        return list(prompts)
    if not getattr(tokenizer, "chat_template", None):
        raise SaetoolError("this model's tokenizer has no chat template", hint="pass --no-chat (or chat: false in a sweep config)")
    out = []
    for text in prompts:
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": text}]
        out.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return out


def encode(tokenizer, texts: Sequence[str], *, chat: bool) -> list[list[int]]:
    """Token ids per text (the chat template already holds its special tokens)."""
    enc = tokenizer(list(texts), add_special_tokens=not chat)
    return [list(ids) for ids in enc["input_ids"]]


def pad_id_of(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    return 0


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(input_ids, attention_mask)`` with every row right-aligned (left padding)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def batches(order: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(order), size):
        yield list(order[start : start + size])
