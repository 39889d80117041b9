"""The package's imports: no cycle between modules, nothing imported from a higher layer.

The layers are listed here, lowest first, and explained in docs/architecture.md.
A module may import its own package and any package of a *lower* layer;
packages that share a layer are independent of each other. Every import
counts: module level, inside functions and under ``TYPE_CHECKING``
(an annotation is a dependency too). Built-ins are loaded by name at run time
(``saetool.plugins``), which is not an import statement and is not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "saetool"

#: Lowest first. Names are saetool's top-level modules and packages ("" is saetool/__init__.py).
LAYERS: list[tuple[str, set[str]]] = [
    ("errors and version", {"", "errors"}),
    ("terminal and paths", {"console", "paths", "output_options"}),
    ("services", {"devices", "locking", "progress", "hub", "distributed", "hookspecs", "fielddocs"}),
    ("plugin host", {"plugins"}),
    ("artifacts, corpora, models", {"artifacts", "corpus", "models"}),
    ("SAEs", {"sae"}),
    ("extract and steer", {"extract", "steer"}),
    ("analysis", {"analysis"}),
    ("evaluate", {"evaluate"}),
    ("train", {"train"}),
    ("interpret", {"interpret"}),
    ("bench", {"bench"}),
    ("track", {"track"}),
    ("commands", {"cli"}),
    ("built-ins", {"builtins"}),
    ("entry point", {"__main__"}),
]

RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (every ``import`` / ``from`` statement in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in edges.items():
        for dst in targets:
            a, b = unit(src), unit(dst)
            if a != b and RANK[b] >= RANK[a]:
                bad.append(f"{src} ({LAYERS[RANK[a]][0]}) imports {dst} ({LAYERS[RANK[b]][0]})")
    return sorted(bad)


DEFERRED_MARKER = "# Deferred imports:"


def deferred_problem(source: str) -> str | None:
    """Why ``source`` breaks the rule for imports inside functions, or None.

    Imports live at module level; a module that defers some (start-up time of
    ``saetool --help``, an expensive optional library) says why in one comment
    starting with :data:`DEFERRED_MARKER`, and a module without deferred imports
    carries no such comment."""
    tree = ast.parse(source)
    deferred = [
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
        if isinstance(inner, (ast.Import, ast.ImportFrom))
    ]
    comments = [line for line in source.splitlines() if line.lstrip().startswith(DEFERRED_MARKER)]
    if deferred and not comments:
        return f"imports inside functions (line {min(deferred)}) without a '{DEFERRED_MARKER} <why>' comment: move them to the top or say why"
    if len(comments) > 1:
        return f"{len(comments)} '{DEFERRED_MARKER}' comments: one per module"
    if comments and not deferred:
        return f"a '{DEFERRED_MARKER}' comment but no import inside a function: remove the comment"
    return None


def test_deferred_imports_say_why():
    problems = {name: why for name, path in modules().items() if (why := deferred_problem(path.read_text()))}
    assert not problems, "\n".join(f"{name}: {why}" for name, why in sorted(problems.items()))


def test_every_module_has_a_layer():
    missing = sorted({unit(m) for m in modules()} - set(RANK))
    assert not missing, f"put these in a layer of LAYERS (and docs/architecture.md): {missing}"


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_import_from_a_higher_or_sibling_layer():
    assert upward(graph()) == []


# -- the checks themselves catch what they claim to ---------------------------------------
def test_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("src", "dst", "allowed"),
    [
        ("saetool.sae.io", "saetool.train.config", False),  # down to up
        ("saetool.extract.api", "saetool.steer.api", False),  # siblings in one layer
        ("saetool.train.trainer", "saetool.evaluate.api", True),
        ("saetool.extract.api", "saetool.extract.core", True),  # within a package
    ],
)
def test_layer_rule(src, dst, allowed):
    assert (upward({src: {dst}}) == []) is allowed


def test_imports_are_read_from_every_kind_of_statement(tmp_path):
    pkg = tmp_path / "saetool" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    mod = pkg / "m.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import other\n"
        "if TYPE_CHECKING:\n    from saetool.errors import SaetoolError\n"
        "def f():\n    import saetool.console\n    from saetool import paths\n"
    )
    known = {"saetool.sub.other", "saetool.errors", "saetool.console", "saetool.paths", "saetool.sub.m"}
    assert imports("saetool.sub.m", mod, known) == known - {"saetool.sub.m"}


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("import os\n\ndef f():\n    return os.sep\n", True),
        ("def f():\n    import torch\n", False),
        ("# Deferred imports: torch is slow to load.\ndef f():\n    import torch\n", True),
        ("# Deferred imports: none any more.\nimport os\n", False),
        ("# Deferred imports: a.\n# Deferred imports: b.\ndef f():\n    import torch\n", False),
        ("class C:\n    async def f(self):\n        from torch import nn\n", False),
    ],
)
def test_deferred_rule(source, ok):
    assert (deferred_problem(source) is None) is ok
