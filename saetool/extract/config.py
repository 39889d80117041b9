"""What ``saetool extract`` runs with (:class:`ExtractConfig`) and what it records.

Importing this module imports nothing heavy (the CLI reads it to build options).
"""

from __future__ import annotations

import codecs
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from saetool.errors import ConfigError

KIND = "activations"

#: Settings that must match for ``--resume`` to continue a partial file.
RESUME_KEYS = (
    "model", "backend", "corpus", "hooks", "context_size", "batch_size", "dtype", "storage_dtype",
    "prepend_bos", "exclude_special", "text_column", "encoding", "per_line", "skip_tokens",
)


@dataclass
class ExtractConfig:
    """What to extract. ``hooks`` wins over ``layers`` + ``site``; with neither,
    the middle layer's residual stream is used."""

    model: str = "smollm2-135m"
    """Embedded model name, local HF folder, or hub id (online)."""
    backend: str = "transformers"
    """Model backend: transformers or transformer-lens (or a plugin's)."""
    corpus: str = "bbc-news"
    """Corpus: bbc-news[:CATEGORY], kjv, a file/folder path, hub:NAME, or a plugin's source."""
    hooks: list[str] | None = None
    """Comma-separated hook names, e.g. blocks.15.hook_resid_post."""
    layers: str | None = None
    """Layers for `site`: 15, 3,5, 2-4 or all (default: the middle layer)."""
    site: str = "hook_resid_post"
    """Hook site used with `layers`: hook_resid_pre|mid|post, hook_mlp_out, attn.hook_z."""
    num_tokens: int = 8192
    """Activation rows to store."""
    skip_tokens: int = 0
    """Start after the corpus's first N stored tokens (BOS and special tokens not counted), rounded up to the end of their window: leave out the windows an extract with `num_tokens` N and the same settings stores rows of, so the two hold different text (a held-out set)."""
    context_size: int = 128
    """Tokens per window (including BOS)."""
    batch_size: int = 8
    """Windows per forward pass."""
    dtype: str = "float32"
    """Model (compute) dtype: float32, float16, bfloat16."""
    storage_dtype: str | None = None
    """Dtype the activations are stored in: float32, float16, bfloat16 (default: `dtype`); bfloat16 halves the disk of float32."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or mps (under torchrun, cuda means each rank's own GPU)."""
    prepend_bos: bool = True
    """Start every window with the BOS token."""
    exclude_special: bool = True
    """Leave BOS and other special tokens out of what is stored (their norms are huge)."""
    text_column: str = "text"
    """Column holding the text in .jsonl/.parquet corpora."""
    encoding: str | None = None
    """Text encoding of local .txt files (default UTF-8)."""
    device_map: str | None = None
    """Spread a model too large for one device over all of them: auto (needs accelerate); `device` is then ignored."""
    per_line: bool = False
    """One window per line (a prompt file: blank and # comment lines skipped), padded to `context_size` instead of packed; each line is stored whole, and `num_tokens` stops before a line that does not fit."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings stored with the run (no built-in reads them)."""

    def validate(self) -> None:
        if self.num_tokens <= 0:
            raise ConfigError(f"`num_tokens` must be positive (got {self.num_tokens})")
        if self.skip_tokens < 0:
            raise ConfigError(f"`skip_tokens` must be 0 or more (got {self.skip_tokens})")
        if self.context_size < 2:
            raise ConfigError(f"`context_size` must be at least 2 (got {self.context_size})")
        if self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be at least 1 (got {self.batch_size})")
        if self.per_line and not self.exclude_special:
            raise ConfigError("`per_line` pads each line with a special token, so it needs `exclude_special`", hint="drop --include-special")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"unknown `dtype` {self.dtype!r}", hint="choose float32, float16 or bfloat16")
        if self.storage_dtype is not None and self.storage_dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"unknown `storage_dtype` {self.storage_dtype!r}", hint="choose float32, float16 or bfloat16")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"unknown `encoding` {self.encoding!r}", hint="name a Python codec such as utf-8, latin-1 or cp1252") from None


def default_output(config: ExtractConfig) -> Path:
    slug = Path(config.model).name.replace("/", "-") or "model"
    return Path(f"activations-{slug}.h5")


def extract_settings(config: ExtractConfig, hooks: list[str]) -> dict[str, Any]:
    """The settings recorded in the file (``device_map`` and ``skip_tokens`` only when used)."""
    settings = {**asdict(config), "hooks": hooks}
    settings.pop("extra", None)
    settings["storage_dtype"] = config.storage_dtype or config.dtype
    if settings.get("device_map") is None:
        settings.pop("device_map", None)
    if not settings.get("skip_tokens"):  # files from before the setting compare equal on --resume
        settings.pop("skip_tokens", None)
    return settings
