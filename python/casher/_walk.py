"""Which module-level values a call reaches (`casher._state` compares them).

The names its code uses (`co_names` and identifier-like string constants,
nested code included) through its globals, into project functions and
classes it reaches (their bases and metaclass too), one attribute level
into project modules it uses, into what containers, project instances,
partials, bound methods and defaults hold. The call's arguments and the
library settings' callables are walked the same way. Code that reaches
globals dynamically (`globals()`, `vars()`, `eval`) takes every global of
its module. Bounded: past the budget, what is held is covered only by its
container's fingerprint.
"""

from __future__ import annotations

import collections
import functools
import itertools
import sys
import types
from typing import Any, Iterable

from casher._peek import is_a as _is, own_dict, original, wrapped_of
from casher._roots import project_file
from casher._state import _MISSING, Item, _file_of, _project, _project_class, fingerprint

_DYNAMIC = {"globals", "vars", "eval", "exec", "locals"}

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


