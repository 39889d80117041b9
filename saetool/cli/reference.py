"""Generate the CLI reference (``docs/cli.md``) from the typer app itself.

Every command and subcommand, with its help text, usage line, arguments and
options (with defaults), exactly as ``saetool COMMAND --help`` describes them.
Only saetool's built-in commands are listed: third-party plugins are never
loaded here (as with ``SAETOOL_LOAD_PLUGINS=""``), so the page does not depend
on what happens to be installed.

Refresh the page after changing a command::

    python -m saetool.cli.reference -o docs/cli.md

(``python -m saetool.cli.reference > docs/cli.md`` writes the same.)
``--check`` exits 1 when the file is out of date; ``tests/test_docs.py`` does
the same check.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import typer

from saetool.cli.main import build_app
from saetool.plugins import PluginHost

#: The command that rewrites docs/cli.md (quoted in the page and in test failures).
REFRESH_COMMAND = "python -m saetool.cli.reference -o docs/cli.md"

_SUFFIX = re.compile(r"^(?P<help>.*?)\s*\[(?P<extra>[^\[\]]*)\]\s*$", re.S)


def root_command() -> Any:
    """The click command behind ``saetool``, with built-in commands only."""
    return typer.main.get_command(build_app(PluginHost(load_entry_points=False)))


def render() -> str:
    """The whole of ``docs/cli.md``, as Markdown (MyST)."""
    root = root_command()
    commands = list(walk(root, context(root, "saetool")))
    out = [
        "# CLI reference",
        "",
        f"% Generated from the CLI by `{REFRESH_COMMAND}`; do not edit by hand.",
        "",
        "Every built-in `saetool` command with its options and their defaults, generated",
        "from the command-line interface itself (`saetool COMMAND --help` prints the same).",
        "Commands that plugins add are not listed here: `saetool --help` shows every",
        "command installed, and `saetool plugins` which plugin added it.",
        "",
        "Global options (`--quiet`, `--verbose`, `--debug`) go before the command:",
        "`saetool -q extract ...`. Exit codes: 0 success, 1 internal error or a failed",
        "check, 2 bad input or usage, 130 interrupted.",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for path, cmd, _ctx, _depth in commands[1:]:
        out.append(f"| [`{path}`](#{_anchor(path)}) | {_cell(_first_paragraph(cmd))} |")
    out.append("")
    for path, cmd, ctx, depth in commands:
        out.extend(_section(path, cmd, ctx, depth))
    return "\n".join(out).rstrip("\n") + "\n"


def context(cmd: Any, name: str, parent: Any = None) -> Any:
    """A click context for ``cmd`` (typer's vendored click or click itself), parsing nothing."""
    return cmd.context_class(cmd, info_name=name, parent=parent)


def walk(cmd: Any, ctx: Any, depth: int = 0) -> Iterator[tuple[str, Any, Any, int]]:
    """``(command path, command, context, depth)`` for ``cmd`` and every visible subcommand."""
    yield ctx.command_path, cmd, ctx, depth
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            yield from walk(sub, context(sub, name, ctx), depth + 1)


def _section(path: str, cmd: Any, ctx: Any, depth: int) -> list[str]:
    level = "#" * (2 + max(depth - 1, 0))  # `saetool` and its commands: ##; subcommands: ###
    lines = [f"{level} {path}", ""]
    if getattr(cmd, "deprecated", False):
        lines += ["**Deprecated.**", ""]
    help_text = _help_markdown(cmd.help or "")
    if help_text:
        lines += [help_text, ""]
    lines += ["```text", " ".join(cmd.get_usage(ctx).split()), "```", ""]
    arguments, options = [], []
    for param in cmd.get_params(ctx):
        if param.name == "help" or getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        name, text = record
        text, default, required = _split_extras(text or "")
        row = (name, default, required, text)
        (arguments if getattr(param, "param_type_name", "") == "argument" else options).append(row)
    for title, rows in (("argument", arguments), ("option", options)):
        if not rows:
            continue
        lines += [f"| {title} | default | description |", "|---|---|---|"]
        for name, default, required, text in rows:
            shown = "required" if required else (f"`{_code(default)}`" if default else "")
            lines.append(f"| `{_code(name)}` | {shown} | {_cell(text)} |")
        lines.append("")
    sub = [n for n in (cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else [])]
    if sub and depth > 0:
        links = ", ".join(f"[`{path} {n}`](#{_anchor(f'{path} {n}')})" for n in sub)
        lines += [f"Subcommands: {links}.", ""]
    return lines


def _help_markdown(text: str) -> str:
    """A docstring as Markdown: click's ``\\b``/``\\f`` markers handled, indented examples fenced."""
    text = inspect.cleandoc(text).partition("\f")[0]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out = []
    for para in paragraphs:
        lines = [line for line in para.splitlines() if line.strip() != "\b"]
        if lines and all(line.startswith("    ") or not line.strip() for line in lines):
            code = "\n".join(line[4:] for line in lines)
            out.append(f"```bash\n{code}\n```")
        else:
            out.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(out)


def _first_paragraph(cmd: Any) -> str:
    text = inspect.cleandoc(cmd.help or "").partition("\f")[0]
    return " ".join(text.split("\n\n", 1)[0].split())


def _split_extras(text: str) -> tuple[str, str, bool]:
    """``"help  [default: x; required]"`` -> ``("help", "x", True)``."""
    default, required = "", False
    match = _SUFFIX.match(text)
    if match and any(k in match["extra"] for k in ("default:", "required", "env var:")):
        text = match["help"]
        for item in match["extra"].split("; "):
            if item.startswith("default: "):
                default = item[len("default: ") :]
            elif item.strip() == "required":
                required = True
    return " ".join(text.split()), default, required


def _anchor(heading: str) -> str:
    """The anchor MyST gives a heading (``myst_heading_anchors``)."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _code(text: str) -> str:
    """Text for a code span inside a table cell."""
    return text.replace("|", "\\|").replace("`", "'")


def _cell(text: str) -> str:
    """Markdown text for a table cell: one line, pipes and raw-HTML brackets escaped."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(
        part.replace("|", "\\|") if part.startswith("`") and part.endswith("`") and len(part) > 1 else part.replace("|", "\\|").replace("<", "\\<")
        for part in parts
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m saetool.cli.reference",
        description="Write saetool's CLI reference (Markdown) from the typer app.",
    )
    parser.add_argument("-o", "--output", type=Path, help="write here (e.g. docs/cli.md) instead of stdout")
    parser.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from what would be generated")
    args = parser.parse_args(argv)
    text = render()
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.check} is out of date with the CLI; refresh it with: {REFRESH_COMMAND}\n")
            return 1
        return 0
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
