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

Which values a function reaches is found by walking names its code uses
(`co_names`, nested code included) through its globals, into project
functions and classes it reaches, one attribute level into project
modules it uses. Code that reaches globals dynamically (`globals()`,
`vars()`, `eval`) takes every global of its module.
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import pickle
import sys
import types
from dataclasses import dataclass
from typing import Any, Iterable

from casher import _hashing, _native
from casher._peek import Wrapper, is_a as _is, module_attr, original, own_dict, wrapped_of
from casher._roots import project_file

_DYNAMIC = {"globals", "vars", "eval", "exec", "locals"}
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


def _names(code: types.CodeType) -> set[str]:
    """The names code may look up: its global and attribute names, and
    string constants that are identifiers or dotted module names."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
        elif isinstance(const, str) and const.replace(".", "_").isidentifier():
            names.add(const)  # `getattr(helpers, "scaled")`, `import_module("pkg.ops")`
    return names


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
        return f"opaque:{name}"
    for dumps in _picklers():
        try:
            data = dumps(value)
        except Exception:
            continue
        h = _native.Hasher()
        h.update(data)
        return "pickle:" + h.hexdigest()
    return f"{UNKNOWN}{name}"


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


_HELD_WALK_LIMIT = 20_000
"""Elements of containers and attributes of project instances looked at per
call, looking for project functions whose globals count too..."""

_HELD_PER_CONTAINER = 2_000
"""... and per container (a large list of numbers must not use up what a
registry next to it needs)."""


class _Walker:
    def __init__(self) -> None:
        self.items: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.seen: set[int] = set()
        self.budget = _HELD_WALK_LIMIT

    def function(self, func: types.FunctionType) -> None:
        if id(func) in self.seen:
            return
        self.seen.add(id(func))
        module = func.__module__ or ""
        qualname = func.__qualname__
        if "<" not in qualname and module in sys.modules:
            path = tuple(qualname.split("."))
            if func.__defaults__:
                self.items[(module, path + ("__defaults__",))] = func.__defaults__
            if func.__kwdefaults__:
                self.items[(module, path + ("__kwdefaults__",))] = func.__kwdefaults__
        # A default may hold a function (`fn=helpers.scaled`).
        for defaults in (func.__defaults__, func.__kwdefaults__):
            if defaults:
                self.follow(defaults)
        names = _names(func.__code__)
        g = func.__globals__
        if names & _DYNAMIC:
            names |= {n for n in g if not n.startswith("__")}
        for name in sorted(names):
            if name in g:
                self.value(module, (name,), g[name], names)
            elif name in sys.modules:  # a module reached by name (`import_module("ops")`)
                self.module(sys.modules[name], names)
        for cell in func.__closure__ or ():
            try:
                inner = cell.cell_contents
            except ValueError:
                continue
            self.follow(inner)

    def follow(self, value: Any) -> None:
        """Walks into project code a value leads to."""
        value = original(value)
        if _is(value, types.FunctionType) and _project(value):
            self.function(value)
            wrapped = getattr(value, "__wrapped__", None)
            if wrapped is not None:
                self.follow(wrapped)
        elif _is(value, types.MethodType):
            self.follow(value.__func__)
            self.follow(value.__self__)  # an object holding what the method calls
        elif _is(value, functools.partial):
            self.follow(value.func)
            self.held([*value.args, *value.keywords.values()], id(value))
        elif _is(value, type) and id(value) not in self.seen:
            self.seen.add(id(value))
            for base in value.__mro__[1:-1]:  # inherited attributes count too
                if _project_class(base):
                    self.follow(base)
            if type(value) is not type and _project_class(type(value)):
                self.follow(type(value))  # its metaclass's attributes
            if project_file(_file_of(value.__module__)):
                path = tuple(value.__qualname__.split("."))
                # Recorded only where the child finds it by that name: a
                # class made at run time (`type(...)`) is followed, not kept.
                named = _by_path(sys.modules.get(value.__module__), path) is value
                for name, attr in list(vars(value).items()):
                    if isinstance(attr, (staticmethod, classmethod)):
                        attr = attr.__func__
                    if isinstance(attr, property):
                        if named:  # a patched property is a change
                            self.items[(value.__module__, path + (name,))] = attr
                        for f in (attr.fget, attr.fset):
                            if f is not None:
                                self.follow(f)
                    elif isinstance(attr, types.FunctionType):
                        if named:  # a monkeypatched method is a change
                            self.items[(value.__module__, path + (name,))] = attr
                        self.follow(attr)
                    elif not name.startswith("__"):
                        if named:
                            self.items[(value.__module__, path + (name,))] = attr
                        self.follow(attr)  # a class-level registry
        elif _is(value, dict):
            self.held(itertools.chain.from_iterable(value.items()), id(value))
        elif _is(value, (list, tuple, set, frozenset, collections.deque)):
            self.held(value, id(value))
        elif not _is(value, type):
            wrapped = wrapped_of(value)
            if wrapped is not None:
                self.follow(wrapped)
            elif _project_class(type(value)) or _is(value, types.SimpleNamespace):
                attrs = own_dict(value)
                if attrs is not None:
                    self.held(attrs.values(), id(value))
                if _project_class(type(value)):
                    self.follow(type(value))  # its class's attributes and methods

    def held(self, values: Any, owner: int) -> None:
        """Follows what a container (a registry dict, a list of handlers)
        or a project instance holds: a function reached only through it
        uses module state too (bounded: past the budget, what is held is
        covered only by the container's fingerprint)."""
        if owner in self.seen or self.budget <= 0:
            return
        self.seen.add(owner)
        try:  # a snapshot: another thread may be changing the container
            head = list(itertools.islice(values, _HELD_PER_CONTAINER))
        except RuntimeError:
            return
        for value in head:
            self.budget -= 1
            if self.budget <= 0:
                return
            if not _is(value, (str, bytes, int, float, complex, bool, type(None))):
                self.follow(value)

    def module(self, value: types.ModuleType, names: set[str]) -> None:
        """The attributes of a project module the code names."""
        attrs = own_dict(value) or {}
        if project_file(attrs.get("__file__") or ""):
            home = attrs.get("__name__")
            for name in sorted(names):
                if name in attrs and not name.startswith("__") and (home, (name,)) not in self.items:
                    self.value(home, (name,), attrs[name], names)
        elif value is sys and "argv" in names:
            self.items[("sys", ("argv",))] = sys.argv

    def value(self, module: str, path: tuple[str, ...], value: Any, names: set[str]) -> None:
        self.items[(module, path)] = value
        if _is(value, types.ModuleType):
            self.module(value, names)
            return
        self.follow(value)
        if not _is(value, (type, types.FunctionType)) and _project_class(type(value)):
            self.follow(type(value))  # an instance: its class's methods and attributes


def _by_path(module: Any, path: tuple[str, ...]) -> Any:
    """What `module.a.b` holds, read through dicts (nothing runs)."""
    found = module
    for part in path:
        attrs = vars(found) if _is(found, type) else own_dict(found)
        found = (attrs or {}).get(part, _MISSING)
        if found is _MISSING:
            return _MISSING
    return found


def in_a_file(module: str) -> bool:
    """Whether a fresh interpreter can import `module` (not `python -c`'s
    or a notebook's `__main__`)."""
    return _real_file(_file_of(module) or "<none>")


def reached(func: Any, also: Iterable[Any] = ()) -> list[Item]:
    """The module-level values `func` reaches, with their fingerprints.
    `also`: more values the call reaches (its arguments: a function passed
    in reads module state too; the callables in library settings)."""
    walker = _Walker()
    walker.follow(func)
    for value in also:
        if not _is(value, (str, bytes, int, float, complex, bool, type(None))):
            walker.follow(value)
    items = []
    for (module, path), value in sorted(walker.items.items(), key=lambda kv: kv[0]):
        if path == (getattr(func, "__name__", None),) and original(value) is func:
            continue
        items.append(Item(module, path, value, fingerprint(value)))
    return items


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
