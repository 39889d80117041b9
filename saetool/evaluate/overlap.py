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


def training_ranges(sae_path: str | Path) -> list[tuple[str, int, int]]:
    """``(corpus, first, stop)`` stored-token ranges of the extracts the SAE artifact at
    ``sae_path`` trained on (empty when the SAE, a parent or its settings are not at hand)."""
    try:
        parents = read_header(sae_path)["provenance"].get("parents") or []
    except Exception:  # noqa: BLE001 - a folder, a pretrained name, a file that is not an artifact: nothing to say
        return []
    out = []
    for parent in parents:
        if not isinstance(parent, dict) or parent.get("kind") != "activations":
            continue
        try:
            extract: dict[str, Any] = read_header(parent["path"])["provenance"].get("extract") or {}
        except Exception:  # noqa: BLE001 - moved or deleted since: nothing to say
            continue
        if extract.get("corpus") and extract.get("num_tokens"):
            first = int(extract.get("skip_tokens") or 0)
            out.append((str(extract["corpus"]), first, first + int(extract["num_tokens"])))
    return out


def overlap_warning(sae_path: str | Path, corpus: str, skip_tokens: int, num_tokens: int) -> str | None:
    """The warning when ``num_tokens`` of ``corpus`` after its first ``skip_tokens`` overlap
    the text the SAE trained on, else ``None``."""
    for name, first, stop in training_ranges(sae_path):
        if name == corpus and skip_tokens < stop and skip_tokens + num_tokens > first:
            return (f"{Path(sae_path).name} trained on stored tokens {first:,} to {stop:,} of {corpus}, and these windows start at "
                    f"token {skip_tokens:,}: the figures are on its training text, not held out (--skip-tokens {stop} evaluates text it did not see)")
    return None
