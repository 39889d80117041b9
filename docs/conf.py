"""Sphinx configuration for saetool's documentation site.

The pages are Markdown, read by MyST. Build the site (no network needed) with
warnings as errors, as ``tests/test_docs.py`` does::

    python -m sphinx -W --keep-going -b html docs build/docs

(``pip install -e '.[docs]'`` installs Sphinx and MyST; the ``test`` extra has
them too). ``docs/cli.md`` is generated: refresh it with
``python -m saetool.cli.reference -o docs/cli.md``.
"""

from __future__ import annotations

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
