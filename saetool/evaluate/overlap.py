"""Whether corpus text an SAE is evaluated on is text it trained on.

An SAE artifact's provenance names the activations it trained on; their
provenance names the corpus and the stored-token range of the extract
(``--skip-tokens``, ``--num-tokens``). Evaluating on the same corpus over an
overlapping range measures the SAE on its training text, not held-out text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saetool.artifacts.store import read_header


def _training_files(sae_path: str | Path) -> list[str]:
    """The activations files the SAE artifact at ``sae_path`` trained on, as its provenance
    names them (empty for a folder, a pretrained name or a file that is not an artifact)."""
    try:
        parents = read_header(sae_path)["provenance"].get("parents") or []
    except Exception:  # noqa: BLE001 - nothing to say about an SAE without provenance
        return []
    return [str(p["path"]) for p in parents if isinstance(p, dict) and p.get("kind") == "activations" and p.get("path")]


def _same_corpus(a: str, b: str) -> bool:
    """Whether two corpus specs name one corpus (a local file or folder by its resolved path)."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def training_ranges(sae_path: str | Path) -> list[tuple[str, int, int]]:
    """``(corpus, first, stop)`` stored-token ranges of the extracts the SAE artifact at
    ``sae_path`` trained on (empty when the SAE, a parent or its settings are not at hand)."""
    out = []
    for path in _training_files(sae_path):
        try:
            extract: dict[str, Any] = read_header(path)["provenance"].get("extract") or {}
        except Exception:  # noqa: BLE001 - moved or deleted since: nothing to say
            continue
        if extract.get("corpus") and extract.get("num_tokens"):
            first = int(extract.get("skip_tokens") or 0)
            out.append((str(extract["corpus"]), first, first + int(extract["num_tokens"])))
    return out


def training_file_warning(sae_path: str | Path, activations: str | Path) -> str | None:
    """The warning when ``activations`` is a file the SAE trained on, else ``None``."""
    given = Path(activations).resolve()
    if any(Path(p).resolve() == given for p in _training_files(sae_path)):
        return (f"{Path(activations).name} is the activations file {Path(sae_path).name} trained on: the figures are on its training text, "
                "not held out (extract held-out text with extract --skip-tokens N, N the tokens of that extract)")
    return None


def overlap_warning(sae_path: str | Path, corpus: str, skip_tokens: int, num_tokens: int) -> str | None:
    """The warning when ``num_tokens`` of ``corpus`` after its first ``skip_tokens`` overlap
    the text the SAE trained on, else ``None``."""
    for name, first, stop in training_ranges(sae_path):
        if _same_corpus(name, corpus) and skip_tokens < stop and skip_tokens + num_tokens > first:
            return (f"{Path(sae_path).name} trained on stored tokens {first:,} to {stop:,} of {corpus}, and these windows start at "
                    f"token {skip_tokens:,}: the figures are on its training text, not held out (--skip-tokens {stop} evaluates text it did not see)")
    return None
