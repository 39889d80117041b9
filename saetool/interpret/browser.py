"""The static HTML feature browser (placeholder until the browser lands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from saetool.interpret.records import FeatureRecord


def write_browser(records: Sequence[FeatureRecord], path: str | Path, *, title: str = "saetool features", meta: dict[str, Any] | None = None) -> Path:
    """Write one self-contained HTML file that browses ``records`` offline; returns its path."""
    raise NotImplementedError("the feature browser is not written yet")
