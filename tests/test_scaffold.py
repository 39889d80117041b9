"""``saetool plugins new``: the package it writes installs, passes its own tests and is loaded.

The package is scaffolded by the real CLI, built and installed for real with
pip (``--target``, from a copy, like the csv plugin's test in test_corpus.py),
and its tests run in a subprocess with the installed copy on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, assert_clean_error, run_cli
from saetool.cli.scaffold import plugin_names
from saetool.errors import PluginError

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
NAME = "demo-corpus"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SAETOOL_LOAD_PLUGINS", "PYTHONPATH")}
    env.update(OFFLINE)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("scaffold")
    proc = run_cli("plugins", "new", NAME, "--dir", str(base / "src"), env={"SAETOOL_LOAD_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    package = base / "src" / "saetool-demo-corpus"
    assert proc.stdout == ""
    assert f"created {package}" in proc.stderr and f"pip install -e {package}" in proc.stderr
    build = base / "build-copy"  # build from a copy, so the package folder stays as scaffolded
    shutil.copytree(package, build)
    site = base / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(site), str(build)],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return {"package": package, "site": site}


@pytest.mark.slow  # pip-installs the scaffolded package (the `scaffolded` fixture)
def test_writes_a_complete_package(scaffolded):
    package = scaffolded["package"]
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "pyproject.toml", "saetool_demo_corpus/__init__.py",
                     "saetool_demo_corpus/plugin.py", "tests/test_plugin.py"]
    pyproject = (package / "pyproject.toml").read_text()
    assert 'name = "saetool-demo-corpus"' in pyproject
    assert '[project.entry-points.saetool]\ndemo-corpus = "saetool_demo_corpus.plugin"' in pyproject
    for path in package.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not any(key in text for key in ("__NAME__", "__DIST__", "__PACKAGE__", "__CLASS__", "__SAETOOL__")), path
    assert (scaffolded["site"] / "saetool_demo_corpus" / "plugin.py").is_file()


@pytest.mark.slow  # pip-installs the scaffolded package (the `scaffolded` fixture)
def test_its_own_tests_pass_with_the_installed_package(scaffolded):
    package, site = scaffolded["package"], scaffolded["site"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(package)],
        cwd=package, capture_output=True, text=True, timeout=300,
        env=_env(PYTHONPATH=os.pathsep.join([str(site), str(REPO)])),
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "5 passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]


@pytest.mark.slow  # pip-installs the scaffolded package (the `scaffolded` fixture)
def test_saetool_lists_the_installed_plugin(scaffolded):
    env = {"PYTHONPATH": os.pathsep.join([str(scaffolded["site"]), str(REPO)]), "SAETOOL_LOAD_PLUGINS": None, **OFFLINE}
    proc = run_cli("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows[NAME]["builtin"] is False and rows[NAME]["version"] == "0.1.0" and rows[NAME]["error"] is None
    assert rows[NAME]["registered"] == {"corpus_sources": [NAME]}


@pytest.mark.parametrize("bad", ["My-Corpus", "1corpus", "my corpus", "my--corpus", "my.corpus", "corpus-", "café", "saetool-x", "kjv"])
def test_invalid_names_are_refused(bad):
    with pytest.raises(PluginError) as info:
        from saetool.cli.scaffold import _check_not_builtin

        _check_not_builtin(plugin_names(bad).name)
    assert "\n" not in info.value.one_line()


def test_names_derived_from_the_plugin_name():
    names = plugin_names("my_corpus2")
    assert (names.name, names.dist, names.package, names.class_stem) == ("my_corpus2", "saetool-my-corpus2", "saetool_my_corpus2", "MyCorpus2")


def test_bad_input_through_the_cli_is_one_line_exit_2(tmp_path):
    proc = run_cli("plugins", "new", "Bad Name", "--dir", str(tmp_path), env={"SAETOOL_LOAD_PLUGINS": ""})
    assert_clean_error(proc, "invalid plugin name 'Bad Name'", "lowercase")
    assert list(tmp_path.iterdir()) == []

    taken = tmp_path / "saetool-notes"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine", encoding="utf-8")
    proc = run_cli("plugins", "new", "notes", "--dir", str(tmp_path), env={"SAETOOL_LOAD_PLUGINS": ""})
    assert_clean_error(proc, "already exists and is not empty")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and (taken / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saetool-notes"]  # no staging folder left behind

    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    proc = run_cli("plugins", "new", "notes", "--dir", str(a_file), env={"SAETOOL_LOAD_PLUGINS": ""})
    assert_clean_error(proc, "is not a folder")


def test_an_existing_empty_folder_is_filled(tmp_path):
    (tmp_path / "saetool-notes").mkdir()
    proc = run_cli("plugins", "new", "notes", "--dir", str(tmp_path), env={"SAETOOL_LOAD_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "saetool-notes" / "saetool_notes" / "plugin.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saetool-notes"]
