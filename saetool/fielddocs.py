"""The docstring under each field of a dataclass (the string literal after the field).

Read from the module's syntax tree (:mod:`ast`, a few milliseconds, nothing
imported), so command-line help can come from the config classes themselves.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass: the string literal under each field (inherited ones too)."""
    docs = {}
    for base in reversed(cls.__mro__[1:]):
        if hasattr(base, "__dataclass_fields__"):
            docs.update(field_docs(base))
    node = _class_node(cls)
    for field_node, after in zip(node.body, node.body[1:]):
        if isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[field_node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _class_node(cls: type) -> ast.ClassDef:
    """The class's syntax tree: found by name in its module's file (fast), else by :func:`inspect.getsource`."""
    if "<locals>" not in cls.__qualname__:
        body: list[ast.stmt] = _module_tree(sys.modules[cls.__module__].__file__ or "").body
        for part in cls.__qualname__.split("."):
            found = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
            if found is None:
                break
            body = found.body
        else:
            return found  # type: ignore[return-value]
    node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(node, ast.ClassDef)
    return node


@functools.lru_cache(maxsize=None)
def _module_tree(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read())
