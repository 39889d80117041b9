"""Chat language models for labelers: the embedded SmolLM2 or an OpenAI-compatible endpoint.

:func:`chat_lm` picks a backend from ``--labeler-option`` strings:

- no ``url``: a local causal LM (``model=``, default the embedded
  ``smollm2-135m``), prompted through its tokenizer's chat template with
  greedy decoding; :meth:`ChatLM.yes_probability` compares the next-token
  probabilities of "Yes" and "No".
- ``url=http://host:port/v1``: ``POST {url}/chat/completions`` with
  ``model=`` (stdlib ``urllib``, ``timeout=`` seconds, default 60). The API key
  is read from the environment variable named by ``key_env=`` (default
  ``SAETOOL_LABELER_API_KEY``) at each request; it is never kept on the
  object, and never put in a message, label, log or artifact. The endpoint
  answers Yes/No in text, so its ``yes_probability`` is 0 or 1.

An endpoint that cannot be reached, or answers with an HTTP error or
something that is not a chat completion, raises :class:`SaetoolError` naming
the URL (without credentials); ``interpret`` then uses the ``tokens`` label.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from saetool.errors import SaetoolError
from saetool.models import registry  # the module, so tests can stub registry.load_model

if TYPE_CHECKING:
    from saetool.models.base import HookedModel

# Deferred imports: torch only for a local chat model (an OpenAI-compatible endpoint needs none).

DEFAULT_LOCAL_MODEL = "smollm2-135m"
DEFAULT_KEY_ENV = "SAETOOL_LABELER_API_KEY"
DEFAULT_TIMEOUT_S = 60.0
#: Option keys :func:`chat_lm` reads.
CHAT_OPTIONS = ("url", "model", "key_env", "timeout", "device")
#: Option names that would put a secret on the command line (refused).
SECRET_OPTIONS = ("key", "api_key", "apikey", "api-key", "password")

Messages = Sequence[Mapping[str, str]]


class ChatLM:
    """A chat model a labeler can ask questions."""

    #: Short description for label details and logs (never holds a secret).
    description: str = ""

    def complete(self, messages: Messages, *, max_new_tokens: int = 64) -> str:
        """The model's reply to ``messages`` (``[{"role": ..., "content": ...}]``), greedy."""
        raise NotImplementedError

    def yes_probability(self, messages: Messages) -> float:
        """P(the reply starts with "Yes") against "No", in [0, 1]."""
        raise NotImplementedError

    def yes_probabilities(self, batch: Sequence[Messages]) -> list[float]:
        """:meth:`yes_probability` for several conversations (backends may batch)."""
        return [self.yes_probability(messages) for messages in batch]


# -- local model ------------------------------------------------------------------
class LocalChatLM(ChatLM):
    """A loaded :class:`~saetool.models.base.HookedModel` with a chat template."""

    def __init__(self, model: "HookedModel", *, batch_size: int = 8) -> None:
        tokenizer = model.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise SaetoolError(
                f"model {model.model_id!r} has no chat template, so it cannot be asked for labels",
                hint="use an instruction-tuned model (the default smollm2-135m) or an endpoint (url=...)",
            )
        self.model = model
        self.batch_size = batch_size
        self.description = f"local {model.model_id}"
        self._yes_ids = _first_token_ids(tokenizer, ("Yes", " Yes", "yes", " yes", "YES"))
        self._no_ids = _first_token_ids(tokenizer, ("No", " No", "no", " no", "NO"))
        if not self._yes_ids or not self._no_ids or set(self._yes_ids) & set(self._no_ids):
            raise SaetoolError(f"cannot tell Yes from No with the tokenizer of {model.model_id!r}")

    def _encode(self, batch: Sequence[Messages]) -> tuple[Any, Any]:
        """Left-padded input ids and attention mask for chat prompts (assistant turn opened)."""
        import torch

        tokenizer = self.model.tokenizer
        rows = []
        for messages in batch:
            text = tokenizer.apply_chat_template(list(map(dict, messages)), tokenize=False, add_generation_prompt=True)
            rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
        return ids, mask

    def complete(self, messages: Messages, *, max_new_tokens: int = 64) -> str:
        ids, mask = self._encode([messages])
        new = self.model.generate(ids, mask, max_new_tokens=max_new_tokens, do_sample=False)
        return self.model.tokenizer.decode(new[0].tolist(), skip_special_tokens=True).strip()

    def yes_probability(self, messages: Messages) -> float:
        return self.yes_probabilities([messages])[0]

    def yes_probabilities(self, batch: Sequence[Messages]) -> list[float]:
        import torch

        out: list[float] = []
        for start in range(0, len(batch), self.batch_size):
            ids, mask = self._encode(batch[start : start + self.batch_size])
            last = self.model.logits(ids, mask)[:, -1, :].float().log_softmax(-1)
            yes = torch.logsumexp(last[:, self._yes_ids], dim=-1)
            no = torch.logsumexp(last[:, self._no_ids], dim=-1)
            out.extend(torch.sigmoid(yes - no).tolist())
        return out


def _first_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    ids: list[int] = []
    for word in words:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if encoded and encoded[0] not in ids:
            ids.append(int(encoded[0]))
    return ids


_LOCAL_CACHE: dict[tuple[str, str], LocalChatLM] = {}


def local_chat_lm(name: str = DEFAULT_LOCAL_MODEL, *, device: str = "cpu") -> LocalChatLM:
    """The local model ``name`` as a :class:`LocalChatLM` (loaded once per process)."""
    key = (name, device)
    if key not in _LOCAL_CACHE:
        _LOCAL_CACHE[key] = LocalChatLM(registry.load_model(name, device=device))
    return _LOCAL_CACHE[key]


# -- OpenAI-compatible endpoint -------------------------------------------------------
class EndpointChatLM(ChatLM):
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    Holds the URL, the model name and the *name* of the environment variable
    with the key; the key itself is read when a request is made.
    """

    def __init__(self, url: str, *, model: str | None = None, key_env: str = DEFAULT_KEY_ENV, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SaetoolError(
                f"labeler endpoint url {safe_url(url)!r} is not an http(s) URL",
                hint="pass --labeler-option url=http://HOST:PORT/v1; the tokens label is used instead",
            )
        if parsed.username is not None or parsed.password is not None:
            raise SaetoolError(
                f"labeler endpoint url {safe_url(url)!r} carries credentials (user:password@), which would be logged",
                hint="put the key in an environment variable and pass key_env=NAME; the tokens label is used instead",
            )
        self.url = url.rstrip("/")
        self.model = model
        self.key_env = key_env
        self.timeout = timeout
        self.description = f"endpoint {safe_url(self.url)}" + (f" ({model})" if model else "")

    def __repr__(self) -> str:
        return f"EndpointChatLM({safe_url(self.url)!r}, model={self.model!r}, key_env={self.key_env!r})"

    def _key(self) -> str | None:
        return os.environ.get(self.key_env) or None

    def _secrets(self) -> list[str]:
        """The key, and any password or query values in the URL: never shown."""
        parts = urllib.parse.urlsplit(self.url)
        found = [self._key() or "", parts.password or "", parts.username or "", parts.query]
        found += [v for _, v in urllib.parse.parse_qsl(parts.query)]
        return sorted({f for f in found if len(f) >= 3}, key=len, reverse=True)

    def _fail(self, reason: str) -> SaetoolError:
        for secret in self._secrets():  # a server may echo what it was sent
            reason = reason.replace(secret, "***")
        reason = " ".join(reason.split())[:200]
        return SaetoolError(
            f"labeler endpoint {safe_url(self.url)} failed: {reason}",
            hint="the tokens label is used instead; check --labeler-option url=... and that the server is running",
        )

    def complete(self, messages: Messages, *, max_new_tokens: int = 64) -> str:
        body: dict[str, Any] = {"messages": [dict(m) for m in messages], "max_tokens": int(max_new_tokens), "temperature": 0}
        if self.model:
            body["model"] = self.model
        request = urllib.request.Request(
            self.url + "/chat/completions",
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        key = self._key()
        if key:
            request.add_unredirected_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            raise self._fail(f"HTTP {exc.code} {exc.reason}" + (f" ({detail})" if detail else "")) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise self._fail(f"no answer within {self.timeout:g} s") from None
            raise self._fail(f"unreachable ({reason})") from None
        except (socket.timeout, TimeoutError):
            raise self._fail(f"no answer within {self.timeout:g} s") from None
        except (OSError, ValueError) as exc:  # connection reset, bad status line, malformed URL, ...
            raise self._fail(f"unreachable ({type(exc).__name__}: {exc})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
            raise self._fail("the answer is not an OpenAI-style chat completion") from None
        return (content or "").strip() if isinstance(content, str) else ""

    def yes_probability(self, messages: Messages) -> float:
        return 1.0 if parse_yes_no(self.complete(messages, max_new_tokens=3)) else 0.0


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """A short message from an error body (OpenAI style ``{"error": {"message": ...}}``)."""
    try:
        body = exc.read(2000).decode("utf-8", "replace")
    except Exception:
        return ""
    try:
        data = json.loads(body)
        message = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) else data.get("error")
        return str(message or "")[:120]
    except (ValueError, AttributeError):
        return ""


def parse_yes_no(text: str) -> bool:
    """Whether a reply says yes (its first word, case and punctuation ignored)."""
    match = re.match(r"\W*(\w+)", text or "")
    return bool(match) and match.group(1).lower() in ("yes", "y", "true")


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment (which may carry credentials)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# -- choosing a backend ----------------------------------------------------------------
def chat_lm(options: Mapping[str, str]) -> ChatLM:
    """The chat model ``options`` ask for (``--labeler-option`` strings; other keys are ignored)."""
    check_no_secrets(options)
    url = (options.get("url") or "").strip()
    if url:
        timeout = parse_number(options, "timeout", DEFAULT_TIMEOUT_S, minimum=0.1)
        key_env = options.get("key_env") or DEFAULT_KEY_ENV
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
            raise SaetoolError(f"key_env={key_env!r} is not an environment variable name")
        if "key_env" in options and not os.environ.get(key_env):
            raise SaetoolError(
                f"environment variable {key_env} (named by key_env=) is not set",
                hint=f"export {key_env}=... before running; the tokens label is used instead",
            )
        return EndpointChatLM(url, model=options.get("model") or None, key_env=key_env, timeout=timeout)
    return local_chat_lm(options.get("model") or DEFAULT_LOCAL_MODEL, device=options.get("device") or "cpu")


def check_no_secrets(options: Mapping[str, str]) -> None:
    """Refuse an API key given as an option (it would end up in shell history and provenance)."""
    for name in options:
        if name.lower() in SECRET_OPTIONS:
            raise SaetoolError(
                f"--labeler-option {name}=... would put a secret on the command line",
                hint=f"put the key in an environment variable and pass key_env=NAME (default {DEFAULT_KEY_ENV})",
            )


def parse_number(options: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = options.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SaetoolError(f"--labeler-option {name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise SaetoolError(f"--labeler-option {name}={raw} must be at least {minimum:g}")
    return value
