"""The caller's state: module-level values a function reaches.

The traced child imports the function's module afresh, so a global the
caller changed at run time (a monkeypatched helper, a value set under
`if __name__ == "__main__":`, a mutated default) would not be there. Each
reached value gets a fingerprint: its canonical hash, or, for functions and
classes, where they are defined. The fingerprints go into the key (a
different value is a different result), and into the child, which compares
them with its own fresh import: equal values stay as imported (shared
objects stay shared), a different one is replaced by the caller's value.
A value that differs and cannot be sent makes the call run in-process.

Which values a call reaches is `casher._walk`'s.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import types
from dataclasses import dataclass
from typing import Any

from casher import _hashing, _native
from casher._peek import Wrapper, is_a as _is, module_attr, original, own_dict
from casher._roots import project_file

# Values that can be neither hashed nor pickled but whose state does not
# decide a result: the same in the caller and a fresh import if their type
# is. Any other such value cannot be compared, so it never counts as equal
# (a generator's position, a connection's session...).
_OPAQUE_TYPES = (
    "_thread.lock",
    "_thread.RLock",
    "threading.Event",
    "threading.Condition",
    "threading.Semaphore",
    "threading.BoundedSemaphore",
    "_io.TextIOWrapper",
    "_io.BufferedWriter",
    "_io.BufferedReader",
    "_io.BufferedRandom",
    "_io.BufferedRWPair",
    "_io.FileIO",
    "builtins.method",
    "builtins.builtin_function_or_method",
)


@dataclass
class Item:
    """One reached value: `module.path` (path: attribute names from the
    module, `__defaults__` and `__kwdefaults__` for a function's defaults)."""

    module: str
    path: tuple[str, ...]
    value: Any
    fingerprint: str


@functools.lru_cache(maxsize=4096)
def _real_file(filename: str) -> bool:
    return not filename.startswith("<") and os.path.isfile(filename)


def ref(value: Any) -> str | None:
    """Where a function, class or module is defined, if it can be found
    again by that name in a fresh interpreter."""
    if _is(value, types.ModuleType):
        return f"module:{module_attr(value, '__name__')}"
    target = original(value)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    home: Any = sys.modules.get(module)
    home_file = module_attr(home, "__file__")
    if not home_file or not _real_file(home_file):  # `python -c`, stdin, a notebook
        return None
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType) and not _real_file(code.co_filename):
        return None  # made by exec() or compile(): no file to load it from
    found = home
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if original(found) is not target:
        return None
    return f"ref:{module}:{qualname}"


def fingerprint(value: Any) -> str:
    """The same in the caller and the child for equal values."""
    if _is(value, (types.ModuleType, types.FunctionType, type, types.BuiltinFunctionType, Wrapper)):
        found = ref(value)
        if found is not None:
            return found
        if _is(value, types.FunctionType):
            from casher import _byvalue

            return "code:" + _byvalue.identity(value)
    try:
        return "hash:" + _hashing.digest(value, "global")
    except TypeError:
        pass
    except Exception:
        pass
    t = type(value)
    name = f"{t.__module__}.{t.__qualname__}"
    if name in _OPAQUE_TYPES or _is(value, types.ModuleType):
        return f"opaque:{name}{_position(value)}"
    for dumps in _picklers():
        try:
            data = dumps(value)
        except Exception:
            continue
        h = _native.Hasher()
        h.update(data)
        return "pickle:" + h.hexdigest()
    return f"{UNKNOWN}{name}"


# The file objects among them: each is this process's own (`_position`).
_FILES = frozenset(name for name in _OPAQUE_TYPES if name.startswith("_io."))


def _position(value: Any) -> str:
    """What a module-level file object adds to its fingerprint. Nothing for
    the standard streams, which are the call's own in the child.

    Any other open file object is this very process's, and a fresh
    import's is another: a call that reads a line from it must leave the
    caller's file on the next line (the next call reads that one), what it
    writes to a pipe the import made must reach the caller, which reads
    it, and a lock it takes must be the caller's. Its fingerprint names
    this process (`stays_here`): the call runs in the caller, uncached. A
    closed one differs from a fresh import's open one, and cannot be sent
    (its call runs in the caller too, as the child finds)."""
    t = type(value)
    if f"{t.__module__}.{t.__qualname__}" not in _FILES:
        return ""
    if any(value is s for s in (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__)):
        return ""
    try:
        closed = value.closed
    except Exception:  # a file that cannot say: not equal either
        closed = False
    return "@closed" if closed else f"{_OWN}{os.getpid()}"


_OWN = "@own-file-of-"


def stays_here(item: Item) -> bool:
    """A value of this process's own (an open module-level file object,
    see `_position`): a call that reaches it runs here."""
    return _OWN in item.fingerprint


def own_file(value: Any) -> bool:
    """`value` is an open file object of this process (see `_position`)."""
    return _OWN in _position(value)


def _picklers() -> list:
    """pickle, then cloudpickle (lambdas, local classes: a registry of
    lambdas stays comparable)."""
    found = [lambda v: pickle.dumps(v, protocol=5)]
    try:
        import cloudpickle

        found.append(lambda v: cloudpickle.dumps(v, protocol=5))
    except ImportError:
        pass
    return found


UNKNOWN = "unknown:"
"""Prefix of a fingerprint that equals nothing, not even itself."""


def _file_of(module_name: str) -> str:
    return module_attr(sys.modules.get(module_name), "__file__") or ""


def _project_class(cls: type) -> bool:
    return project_file(_file_of(cls.__module__)) is not None


def _project(value: Any) -> bool:
    code = getattr(value, "__code__", None)
    return isinstance(code, types.CodeType) and project_file(code.co_filename) is not None


def in_a_file(module: str) -> bool:
    """Whether a fresh interpreter can import `module` (not `python -c`'s
    or a notebook's `__main__`)."""
    return _real_file(_file_of(module) or "<none>")


_MISSING = object()


def _descriptor(owner: Any, name: str) -> Any:
    """A class's own staticmethod or classmethod named `name`, else None:
    the walker records its function (`getattr` would give a bound method,
    another value)."""
    if _is(owner, type):
        raw = vars(owner).get(name)
        if _is(raw, (staticmethod, classmethod)):
            return raw
    return None


def lookup(module: Any, path: tuple[str, ...]) -> Any:
    target = module
    for part in path:
        owner = original(target)
        raw = _descriptor(owner, part)
        target = raw.__func__ if raw is not None else getattr(owner, part, _MISSING)
        if target is _MISSING:
            return _MISSING
    return target


def assign(module: Any, path: tuple[str, ...], value: Any) -> None:
    target = module
    for part in path[:-1]:
        target = original(getattr(target, part))
    raw = _descriptor(target, path[-1])
    if raw is not None and _is(value, types.FunctionType):
        value = type(raw)(value)  # still a class or static method
    setattr(target, path[-1], value)


def is_missing(value: Any) -> bool:
    return value is _MISSING


# Objects looked at when finding the code a call's reached values hold.
_CODE_WALK_LIMIT = 100_000


def code_in(values: list[Any]) -> list[tuple[str, int, str]]:
    """Project classes and functions held in reached values (a registry
    dict of classes, a list of handlers, an instance's attributes), as
    `(file, line, qualname)` like executed code: a call that reads a
    registered class's attribute runs none of its code, so its definition
    joins the inputs this way (by statement where the static analysis
    reached it, else its whole file). Containers are walked breadth-first
    up to a bound; past it, what was not seen is only covered by the
    values' fingerprints."""
    found: dict[tuple[str, int, str], None] = {}
    seen: set[int] = set()
    queue = list(values)
    while queue and len(seen) < _CODE_WALK_LIMIT:
        value = queue.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        value = original(value)
        if _is(value, (str, bytes, int, float, complex, bool, type(None))):
            continue
        if _is(value, dict):
            queue.extend(value.keys())
            queue.extend(value.values())
        elif _is(value, (list, tuple, set, frozenset)):
            queue.extend(value)
        elif _is(value, types.FunctionType):
            real = project_file(value.__code__.co_filename)
            if real:
                found[(real, value.__code__.co_firstlineno, value.__qualname__)] = None
        elif _is(value, (types.MethodType, functools.partial)):
            queue.append(getattr(value, "__func__", None) or getattr(value, "func", None))
        elif _is(value, type):
            where = _class_line(value)
            if where is not None:
                found[(where[0], where[1], value.__qualname__)] = None
        elif not _is(value, types.ModuleType):
            queue.append(type(value))
            attrs = own_dict(value)
            if attrs is not None:
                queue.extend(attrs.values())
    return list(found)


def _class_line(cls: type) -> tuple[str, int] | None:
    """A line inside project class `cls`'s statement, and its file."""
    home = project_file(_file_of(cls.__module__))
    if not home:
        return None
    for attr in vars(cls).values():
        attr = getattr(attr, "__func__", attr)
        code = getattr(attr, "__code__", None)
        if isinstance(code, types.CodeType) and project_file(code.co_filename) == home:
            return home, code.co_firstlineno
    try:
        import inspect

        return home, inspect.findsource(cls)[1] + 1
    except (OSError, TypeError, IndexError):
        return home, 0  # no line: the whole file counts
