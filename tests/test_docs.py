"""The documentation: the site builds offline with warnings as errors, the CLI
reference is current, the commands the docs show are real, and the conventions
``docs/index.md`` promises (``--json``, ``NO_COLOR``, ``-q``/``-v``, exit codes) hold.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, assert_clean_error, run_cli

DOCS = REPO / "docs"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
#: Pages the index must always link (the optional ones are in docs/conf.py).
REQUIRED_PAGES = ("tutorial", "cli", "plugins", "artifacts", "benchmarks", "errors", "scaling", "steering")
ANSI = "\x1b["


def build_site(src: Path, out: Path) -> subprocess.CompletedProcess:
    """``python -m sphinx -W --keep-going``: every warning fails the build."""
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None:
        pytest.fail("Sphinx and myst-parser are needed to build the docs: pip install -e '.[test]'")
    env = {k: v for k, v in os.environ.items() if k != "SAETOOL_LOAD_PLUGINS"}
    env.update(OFFLINE)
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
         "-d", str(out / ".doctrees"), str(src), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )


def _fail_build(proc: subprocess.CompletedProcess) -> str:
    return (
        "the documentation site has warnings (they are errors):\n"
        + proc.stderr[-6000:]
        + "\nA new page in docs/ must be added to the toctree in docs/index.md; "
        "docs/cli.md is refreshed with `python -m saetool.cli.reference -o docs/cli.md`."
    )


def _links(html: str) -> set[str]:
    return set(re.findall(r'href="([\w-]+)\.html"', html))


# ----------------------------------------------------------------------------
# the site
# ----------------------------------------------------------------------------
@pytest.mark.slow  # a whole Sphinx build
def test_site_builds_with_warnings_as_errors_and_the_index_links_every_page(tmp_path):
    proc = build_site(DOCS, tmp_path / "html")
    assert proc.returncode == 0, _fail_build(proc)
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    for page in REQUIRED_PAGES:
        assert page in _links(index), page
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    for page in sorted({p.stem for p in DOCS.glob("*.md")} - {"index"}):
        assert page in _links(index), f"docs/{page}.md is not linked from the index"


# ----------------------------------------------------------------------------
# the CLI reference
# ----------------------------------------------------------------------------
def test_cli_reference_is_current():
    from saetool.cli.reference import REFRESH_COMMAND, render

    expected = render()
    path = DOCS / "cli.md"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != expected:
        diff = "".join(list(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/cli.md", "generated"))[:80])
        pytest.fail(f"docs/cli.md is out of date with the CLI; refresh it from the repository root with:\n\n    {REFRESH_COMMAND}\n\n{diff}")


def test_cli_reference_lists_every_builtin_command_and_option():
    from saetool.cli.reference import context, render, root_command, walk

    text = render()
    root = root_command()
    paths = []
    for path, cmd, ctx, _depth in walk(root, context(root, "saetool")):
        paths.append(path)
        assert re.search(rf"^#+ {re.escape(path)}$", text, re.M), path
        for param in cmd.get_params(ctx):
            if param.name != "help" and not param.hidden:
                for opt in param.opts:
                    if opt.startswith("-"):
                        assert f"{opt}" in text, (path, opt)
    for name in ("extract", "inspect", "models", "models install", "plugins", "plugins new", "doctor"):
        assert f"saetool {name}" in paths
    assert "`smollm2-135m`" in text  # defaults are shown
    assert "Example:" in text


def test_cli_reference_leaves_out_plugin_commands(tmp_path):
    """A plugin's command is live in `saetool --help` but not in the generated reference."""
    from test_doctor import install_entry_point_plugin

    site = install_entry_point_plugin(
        tmp_path / "site", "saetool-leaky", "leaky", "saetool_leaky_plugin",
        '''
        from saetool.hookspecs import hookimpl

        def leaky_hello():
            """Say hello from a plugin."""

        @hookimpl
        def register_commands(register):
            register(leaky_hello, name="leaky-hello")
        ''',
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "SAETOOL_LOAD_PLUGINS": None, **OFFLINE}
    assert "leaky-hello" in run_cli("--help", env=env).stdout
    full_env = {k: v for k, v in os.environ.items() if k != "SAETOOL_LOAD_PLUGINS"}
    full_env.update(OFFLINE, PYTHONPATH=env["PYTHONPATH"])
    out = subprocess.run([sys.executable, "-m", "saetool.cli.reference"], capture_output=True, text=True, env=full_env, timeout=120)
    assert out.returncode == 0, out.stderr
    from saetool.cli.reference import render

    assert "leaky" not in out.stdout
    assert out.stdout == render()  # the same page as without the plugin installed


def test_cli_reference_check_flag(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text("# CLI reference\n\nold\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SAETOOL_LOAD_PLUGINS"}
    out = subprocess.run([sys.executable, "-m", "saetool.cli.reference", "--check", str(stale)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert "out of date" in out.stderr and "python -m saetool.cli.reference -o docs/cli.md" in out.stderr
    written = tmp_path / "fresh.md"
    subprocess.run([sys.executable, "-m", "saetool.cli.reference", "-o", str(written)], check=True, env=env, timeout=120)
    out = subprocess.run([sys.executable, "-m", "saetool.cli.reference", "--check", str(written)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr


# ----------------------------------------------------------------------------
# commands shown in the docs are real
# ----------------------------------------------------------------------------
def saetool_invocations(markdown: str) -> list[list[str]]:
    """Every ``saetool ...`` command line in the bash/console code blocks of ``markdown``."""
    found = []
    for lang, body in re.findall(r"^```(bash|console|shell|sh)\n(.*?)^```", markdown, re.S | re.M):
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            segment: list[str] = []
            for token in [*lexer, "&&"]:
                if token in ("&&", "||", "|", ";", "&"):
                    while segment and re.match(r"^[A-Z_][A-Z0-9_]*=", segment[0]):  # VAR=value prefixes
                        segment.pop(0)
                    if segment and Path(segment[0]).name == "saetool":
                        found.append(segment[1:])
                    segment = []
                else:
                    segment.append(token)
    return found


def check_invocation(args: list[str]) -> None:
    """Parse ``saetool ARGS`` as the CLI would (options, types, arguments) without running it."""
    from saetool.cli.reference import context, root_command

    root = root_command()
    root_options = {opt for p in root.params for opt in (*p.opts, *p.secondary_opts)}
    rest = list(args)
    while rest and rest[0].startswith("-"):
        assert rest[0] in root_options, f"unknown global option {rest[0]!r}"
        rest.pop(0)
    cmd, ctx, path = root, context(root, "saetool"), "saetool"
    while hasattr(cmd, "list_commands") and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"no command {path} {rest[0]}"
        name = rest.pop(0)
        path = f"{path} {name}"
        cmd, ctx = sub, context(sub, name, ctx)
    cmd.make_context(path, rest)  # raises a UsageError for an unknown option or a bad value


@pytest.mark.parametrize("page", ["docs/tutorial.md", "docs/index.md", "README.md", "docs/formats.md"])
def test_commands_in_the_docs_are_real(page):
    invocations = saetool_invocations((REPO / page).read_text(encoding="utf-8"))
    assert invocations, page
    for args in invocations:
        try:
            check_invocation(args)
        except Exception as exc:
            pytest.fail(f"{page}: `saetool {shlex.join(args)}` does not parse: {exc}")


def test_the_invocation_checker_catches_mistakes():
    assert saetool_invocations("```console\n$ FOO=1 saetool -q extract -n 8 | saetool inspect  # note\nout\n```\n") == [
        ["-q", "extract", "-n", "8"], ["inspect"]]
    for bad in (["extract", "--no-such-option"], ["extract", "-n", "many"], ["frobnicate"], ["--loud", "models"], ["models", "install", "--bogus"]):
        with pytest.raises(Exception):
            check_invocation(bad)


def test_tutorial_marks_the_stages_still_to_come():
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    for heading in ("Install", "Check the installation", "The embedded models", "Extract activations", "Inspect an artifact", "Plugins"):
        assert re.search(rf"^## \d+\. {heading}", text, re.M), heading
    from saetool.plugins import PluginHost

    commands = set(PluginHost(load_entry_points=False).collect("commands"))
    stages = {"Train a sparse autoencoder": "train", "Interpret features": "interpret", "Steer the model": "steer", "Feature pathways": "pathways"}
    for stage, command in stages.items():
        coming = re.search(rf"^## \d+\. {stage} \(coming\)", text, re.M)
        written = re.search(rf"^## \d+\. {stage}$", text, re.M)
        if command in commands:  # the stage exists: its section must be written, with a real command
            assert written and not coming, f"tutorial section {stage!r} still says coming, but `saetool {command}` exists"
            assert f"saetool {command}" in text
        else:
            assert coming, f"tutorial section {stage!r} must be marked (coming) until `saetool {command}` exists"


# ----------------------------------------------------------------------------
# the conventions docs/index.md promises
# ----------------------------------------------------------------------------
def test_exit_codes_are_documented():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"^\| {code} \|", index, re.M), code
    readme = (REPO / "README.md").read_text(encoding="utf-8").split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"\b{code}\b", readme), code


def test_listing_and_inspecting_commands_print_json(tmp_path):
    from test_artifacts import write_sample

    env = {"SAETOOL_LOAD_PLUGINS": "", **OFFLINE}
    sample = write_sample(tmp_path / "a.h5")
    for args, check in (
        (("models", "--json"), lambda d: {"smollm2-135m", "gemma3-270m"} <= {m["name"] for m in d}),
        (("plugins", "--json"), lambda d: any(r["name"] == "saetool.builtins.commands" for r in d)),
        (("inspect", str(sample), "--json"), lambda d: d["kind"] == "activations"),
    ):
        proc = run_cli(*args, env=env)
        assert proc.returncode == 0, proc.stderr
        assert check(json.loads(proc.stdout)), args
    # and `doctor --json` (tests/test_doctor.py reads its report in detail)
    from saetool.cli.reference import root_command

    root = root_command()
    for name in ("models", "plugins", "inspect", "doctor"):
        assert "--json" in {o for p in root.commands[name].params for o in p.opts}, name


def test_no_color_means_no_ansi_escapes_on_stderr(tmp_path):
    missing = str(tmp_path / "missing.h5")
    for args in (("plugins",), ("inspect", missing)):
        # TERM is set because rich writes no colour to a "dumb" terminal whatever FORCE_COLOR says
        plain = run_cli(*args, env={"SAETOOL_LOAD_PLUGINS": "", "TERM": "xterm-256color", "NO_COLOR": "1", "FORCE_COLOR": "1"})
        assert plain.stderr and ANSI not in plain.stderr, args
        coloured = run_cli(*args, env={"SAETOOL_LOAD_PLUGINS": "", "TERM": "xterm-256color", "NO_COLOR": None, "FORCE_COLOR": "1"})
        assert ANSI in coloured.stderr, args
        assert re.sub(r"\x1b\[[0-9;]*m", "", coloured.stderr).split() == plain.stderr.split(), args
    assert_clean_error(plain, "does not exist")


def test_quiet_and_verbose_are_global_options(tmp_path):
    env = {"SAETOOL_LOAD_PLUGINS": ""}
    quiet = run_cli("-q", "plugins", "new", "quiet-one", "--dir", str(tmp_path), env=env)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    assert (tmp_path / "saetool-quiet-one" / "pyproject.toml").is_file()
    normal = run_cli("plugins", "new", "normal-one", "--dir", str(tmp_path), env=env)
    assert "created" in normal.stderr and "wrote" not in normal.stderr
    verbose = run_cli("-v", "plugins", "new", "verbose-one", "--dir", str(tmp_path), env=env)
    assert "created" in verbose.stderr and "wrote" in verbose.stderr and "plugin.py" in verbose.stderr


@pytest.mark.slow
def test_quiet_extract_prints_no_progress_or_log_lines(tiny_gpt2_dir, tmp_path):
    out = tmp_path / "acts.h5"
    proc = run_cli("-q", "extract", "--model", str(tiny_gpt2_dir), "--layers", "1", "-n", "64", "--context-size", "16",
                   "-o", str(out), env={"SAETOOL_LOAD_PLUGINS": "", **OFFLINE})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_tokens"] == 64  # the manifest still goes to stdout
    assert "wrote" not in proc.stderr and "tok/s" not in proc.stderr and "extract" not in proc.stderr, proc.stderr
