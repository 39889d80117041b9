"""Sphinx configuration for saetool's documentation site.

The pages are Markdown, read by MyST. Build the site (no network needed) with
warnings as errors, as ``tests/test_docs.py`` does::

    python -m sphinx -W --keep-going -b html docs build/docs

(``pip install -e '.[docs]'`` installs Sphinx and MyST; the ``test`` extra has
them too). ``docs/cli.md`` is generated: refresh it with
``python -m saetool.cli.reference -o docs/cli.md``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

project = "saetool"
author = "the saetool authors"
copyright = "the saetool authors; Apache-2.0"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("saetool")
    except Exception:  # building from a checkout that is not installed
        return ""


release = version = _version()

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "build", "Thumbs.db", ".DS_Store"]

# Headings up to ### get anchors, so pages can link `cli.md#saetool-extract`.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Code blocks without a language are shown as they are.
highlight_language = "none"

html_theme = "alabaster"
html_title = f"saetool {version}".strip()
html_theme_options = {"description": "Sparse-autoencoder interpretability research from the command line"}
html_static_path: list[str] = []
html_show_sourcelink = False

#: Pages that other work is still writing. ``index.md`` names them, and each is
#: left out of the index (its toctree entry and its line in the page list)
#: until its file exists, so the site builds with or without them.
OPTIONAL_PAGES = ("errors", "scaling", "steering")


def missing_optional_pages(srcdir: Path = HERE) -> list[str]:
    return [page for page in OPTIONAL_PAGES if not (Path(srcdir) / f"{page}.md").exists()]


def drop_missing_pages(text: str, missing: list[str]) -> str:
    """``text`` (the index) without the toctree entries and links of ``missing`` pages."""
    kept = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if any(stripped == page or f"]({page}.md" in line for page in missing):
            continue
        kept.append(line)
    return "".join(kept)


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if docname == root_doc:
        source[0] = drop_missing_pages(source[0], missing_optional_pages(Path(app.srcdir)))


def setup(app):
    app.connect("source-read", _on_source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
