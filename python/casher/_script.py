"""The caller's script, loaded in the child without doing its work.

A function defined in the script being run (`python main.py`, `python -m
pkg.main`) is imported by the child from that file. A plain script often
does its work at the top level, without an `if __name__ == "__main__":`
guard: `print(f(21))`, writing files, `sys.exit(3)`. Importing it again
would do that work again in every call (twice the side effects, an exit
inside the call). So the child runs only the statements that define
things: imports, functions, classes, assignments that call nothing defined
in the script, and the `if`/`try` blocks around them (and a block that
defines a function, whole). A value that a statement left out would have
made and that the function uses is the caller's state: it is compared,
sent and keyed like any other (`casher._state`). A script that does not
load that way (a kept statement needs what a left-out one made) is loaded
whole, as before.
"""

from __future__ import annotations

import ast
import importlib.machinery
import types
from typing import Any

_WORK = (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Raise, ast.Assert, ast.Delete)


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    if not isinstance(test, ast.Compare) or len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, *test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    constants = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and constants == ["__main__"]


def _calls_own(node: ast.AST, own: set[str]) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in own for n in ast.walk(node))


def _defines(stmt: ast.stmt) -> bool:
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in ast.walk(stmt))


def _definitions(body: list[ast.stmt], own: set[str]) -> list[ast.stmt]:
    kept: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, _WORK) and _defines(stmt):
            keep = True  # a function defined in a `with` or a loop: kept whole
        elif isinstance(stmt, ast.Expr):
            keep = isinstance(stmt.value, ast.Constant)  # a docstring; a call is work
        elif isinstance(stmt, _WORK):
            keep = False
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            keep = not _calls_own(stmt, own)  # `result = f(21)` is work
        elif isinstance(stmt, ast.If):
            keep = not _is_main_guard(stmt)
            if keep:
                stmt.body = _definitions(stmt.body, own) or [ast.Pass()]
                stmt.orelse = _definitions(stmt.orelse, own)
        elif isinstance(stmt, ast.Try):
            stmt.body = _definitions(stmt.body, own) or [ast.Pass()]
            for handler in stmt.handlers:
                handler.body = _definitions(handler.body, own) or [ast.Pass()]
            stmt.orelse = _definitions(stmt.orelse, own)
            stmt.finalbody = _definitions(stmt.finalbody, own)
            keep = True
        else:  # imports, functions, classes, global declarations...
            keep = True
        if keep:
            kept.append(stmt)
    return kept


def definitions(source: bytes, path: str) -> types.CodeType:
    """The script's code without the statements that do its work."""
    tree = ast.parse(source, path)
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    tree.body = _definitions(tree.body, own)
    ast.fix_missing_locations(tree)
    return compile(tree, path, "exec", dont_inherit=True)


class Loader(importlib.machinery.SourceFileLoader):
    """Loads a script as `definitions` (never from a cached `.pyc`)."""

    def get_code(self, fullname: str) -> Any:
        from casher import _executed

        code = definitions(self.get_data(self.path), self.path)
        _executed.loaded(code)
        return code
