"""docs/steering.md stays true: its commands parse, its phrase list is the detector's, its images exist."""

from __future__ import annotations

import re
import shlex

import pytest

from helpers import REPO

PAGE = REPO / "docs" / "steering.md"


def _commands(text: str) -> list[list[str]]:
    found = []
    for body in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        for line in body.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            seg: list[str] = []
            for tok in [*lexer, "|"]:
                if tok in ("|", "&&", ";"):
                    if seg and seg[0] == "saetool":
                        found.append(seg[1:])
                    seg = []
                else:
                    seg.append(tok)
    return found


def test_commands_in_the_steering_page_parse():
    import typer

    from saetool.cli.main import build_app

    root = typer.main.get_command(build_app())
    commands = _commands(PAGE.read_text(encoding="utf-8"))
    assert len(commands) >= 8
    for args in commands:
        cmd, ctx, rest, path = root, root.make_context("saetool", [], resilient_parsing=True), list(args), "saetool"
        while hasattr(cmd, "get_command") and rest and not rest[0].startswith("-"):
            sub = cmd.get_command(ctx, rest[0])
            assert sub is not None, f"no command {path} {rest[0]}"
            path = f"{path} {rest.pop(0)}"
            cmd, ctx = sub, sub.make_context(path, [], parent=ctx, resilient_parsing=True)
        try:
            cmd.make_context(path, rest)
        except Exception as exc:  # a UsageError for an unknown option or a bad value
            pytest.fail(f"`saetool {shlex.join(args)}` does not parse: {exc}")


def test_the_refusal_phrase_list_is_documented():
    from saetool.steer.metrics import INABILITY_PHRASES, OFFER_PHRASES, REFUSAL_PHRASES

    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    for phrase in REFUSAL_PHRASES + INABILITY_PHRASES + OFFER_PHRASES:
        assert f'"{phrase}"' in text, phrase


def test_images_exist_and_are_small():
    text = PAGE.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    for rel in images:
        path = PAGE.parent / rel
        assert path.is_file(), rel
        assert path.stat().st_size < 200_000, rel


def test_shipped_configs_are_documented():
    text = PAGE.read_text(encoding="utf-8")
    for cfg in (REPO / "examples" / "configs").glob("*.yaml"):
        assert f"`{cfg.name}`" in text, cfg.name
