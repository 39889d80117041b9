"""Writing a new plugin package: ``saetool plugins new NAME [--dir DIR]``."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from saetool import __version__
from saetool.cli.templates.plugin_package import FILES
from saetool.errors import PluginError
from saetool.plugins import PluginHost

#: A plugin name: lowercase letters and digits, words joined by single '-' or '_'.
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


@dataclass
class PluginNames:
    """Every name a plugin package needs, derived from the plugin's name."""

    name: str  # entry point and corpus source: my-corpus
    dist: str  # distribution and folder: saetool-my-corpus
    package: str  # import package: saetool_my_corpus
    class_stem: str  # MyCorpus


@dataclass
class Scaffolded:
    names: PluginNames
    path: Path
    files: list[str] = field(default_factory=list)


def plugin_names(name: str) -> PluginNames:
    """Check ``name`` and derive the package's names; a one-line error if it cannot be one."""
    raw = name
    name = name.strip()
    rule = "use lowercase letters and digits, words joined by '-' or '_', starting with a letter (e.g. my-corpus)"
    if not NAME_RE.match(name):
        raise PluginError(f"invalid plugin name {raw!r}", hint=rule)
    if name == "saetool" or name.startswith(("saetool-", "saetool_")):
        raise PluginError(f"invalid plugin name {raw!r}", hint="leave out the saetool- prefix; the package is called saetool-NAME")
    words = re.split(r"[-_]", name)
    return PluginNames(
        name=name,
        dist="saetool-" + name.replace("_", "-"),
        package="saetool_" + name.replace("-", "_"),
        class_stem="".join(w[:1].upper() + w[1:] for w in words),
    )


def _requirement() -> str:
    major_minor = ".".join(__version__.split(".")[:2])
    return f"saetool>={major_minor}"


def render_files(names: PluginNames) -> dict[str, str]:
    """Relative path -> text of every file in the new package."""
    values = {
        "__NAME__": names.name,
        "__DIST__": names.dist,
        "__PACKAGE__": names.package,
        "__CLASS__": names.class_stem,
        "__SAETOOL__": _requirement(),
    }

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    return {fill(path): fill(text) for path, text in FILES.items()}


def scaffold_plugin(name: str, parent: Path) -> Scaffolded:
    """Create ``parent/saetool-NAME/``; refuses to touch a folder that has anything in it."""
    names = plugin_names(name)
    _check_not_builtin(names.name)
    parent = Path(parent).expanduser()
    if parent.exists() and not parent.is_dir():
        raise PluginError(f"{str(parent)!r} is not a folder", hint="give --dir a folder to create the package in")
    target = parent / names.dist
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PluginError(
            f"{str(target)!r} already exists and is not empty",
            hint="choose another name or --dir, or move it away first",
        )
    files = render_files(names)
    parent.mkdir(parents=True, exist_ok=True)
    # Write into a hidden sibling and rename it into place, so a failure leaves nothing half-written.
    staging = Path(tempfile.mkdtemp(prefix=f".{names.dist}-", dir=parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; the package is an ordinary folder
        if target.is_dir():  # an empty folder: replace it
            target.rmdir()
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Scaffolded(names=names, path=target, files=sorted(files))


def _check_not_builtin(name: str) -> None:
    """A plugin must not take a name saetool's own corpus sources already use."""
    taken = PluginHost(load_entry_points=False).collect("corpus_sources")
    if name in taken:
        raise PluginError(
            f"saetool already has a corpus source named {name!r}",
            hint=f"choose another name (taken: {', '.join(sorted(taken))})",
        )
