"""Functions that cannot be imported by name (closures, lambdas, notebook
cells, `python -c`, `exec()`, stdin): sent to the traced child by value
with cloudpickle, and identified in the key by what they are made of.

Their code has no file the analyzer could re-read at lookup time, so the
key covers the code object itself: bytecode, names and constants, nested
code recursively (`x * 2` and `x * 3` differ only in a constant), defaults,
closure values, and the globals it uses that cloudpickle sends along by
value (functions and classes defined next to it, recursively). Line
numbers are left out: inserting a line above does not change a function.
"""

from __future__ import annotations

import pickle
import types
from typing import Any

from casher import _hashing, _native


def _feed_code(h: Any, code: types.CodeType, seen: set[int]) -> None:
    h.update(b"code")
    for part in (code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode(), repr(code.co_freevars).encode()):
        _hashing._text(h, b"part", part.hex() if isinstance(part, bytes) else str(part))
    h.update(b"args" + bytes([code.co_argcount & 255, code.co_kwonlyargcount & 255, code.co_flags & 255]))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const, seen)
        else:
            _feed_value(h, const, "constant", seen)


def _feed_value(h: Any, value: Any, where: str, seen: set[int]) -> bool:
    """Feeds `value`; False when it cannot be identified."""
    from casher._peek import Wrapper
    from casher._state import ref

    if isinstance(value, types.FunctionType):
        found = ref(value)
        if found is not None:
            _hashing._text(h, b"ref", found)
            return True
        return _feed_function(h, value, seen)
    if isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType, Wrapper)):
        found = ref(value)
        if found is not None:
            _hashing._text(h, b"ref", found)
            return True
        if isinstance(value, type):
            return _feed_class(h, value, seen)
    try:
        h.update(b"value" + bytes.fromhex(_hashing.digest(value, where)))
        return True
    except Exception:
        pass
    try:
        import cloudpickle

        h.update(b"pickle" + cloudpickle.dumps(value, protocol=5))
        return True
    except Exception:
        _hashing._text(h, b"opaque", where)
        return False


def _feed_class(h: Any, cls: type, seen: set[int]) -> bool:
    if id(cls) in seen:
        _hashing._text(h, b"cycle", cls.__qualname__)
        return True
    seen.add(id(cls))
    _hashing._text(h, b"class", cls.__qualname__)
    ok = all(_feed_value(h, base, "base", seen) for base in cls.__bases__)
    for name, attr in sorted(vars(cls).items()):
        if name in ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"):
            continue
        _hashing._text(h, b"attr", name)
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        ok = _feed_value(h, attr, f"{cls.__qualname__}.{name}", seen) and ok
    return ok


def _globals_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _globals_used(const)
    return names


def _feed_function(h: Any, func: types.FunctionType, seen: set[int]) -> bool:
    if id(func) in seen:
        _hashing._text(h, b"cycle", func.__qualname__)
        return True
    seen.add(id(func))
    ok = True
    _feed_code(h, func.__code__, seen)
    for label, values in (("defaults", func.__defaults__ or ()), ("kwdefaults", sorted((func.__kwdefaults__ or {}).items()))):
        for value in values:
            ok = _feed_value(h, value, label, seen) and ok
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        _hashing._text(h, b"cell", name)
        try:
            contents = cell.cell_contents
        except ValueError:
            h.update(b"empty")
            continue
        ok = _feed_value(h, contents, name, seen) and ok
    g = func.__globals__
    for name in sorted(_globals_used(func.__code__)):
        if name in g:
            _hashing._text(h, b"global", name)
            ok = _feed_value(h, g[name], name, seen) and ok
    return ok


def own_files(func: types.FunctionType) -> list[str]:
    """The names under which `func` uses an open file object of this
    process directly (a global, a default, a closure cell): sent by value,
    it would be a copy, which the caller's file never follows."""
    from casher import _state

    used = {name: func.__globals__[name] for name in _globals_used(func.__code__) if name in func.__globals__}
    used.update((f"default {i}", v) for i, v in enumerate(func.__defaults__ or ()))
    used.update((f"default {k}", v) for k, v in (func.__kwdefaults__ or {}).items())
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            used[name] = cell.cell_contents
        except ValueError:
            continue
    return sorted(name for name, value in used.items() if _state.own_file(value))


def identity(func: types.FunctionType) -> str:
    """A function's identity by value (see the module docstring)."""
    return identity_and_gaps(func)[0]


def identity_and_gaps(func: types.FunctionType) -> tuple[str, bool]:
    """The identity, and whether every part of it could be identified."""
    h = _native.Hasher()
    ok = _feed_function(h, func, set())
    return h.hexdigest(), ok


def dumps(func: Any) -> bytes | None:
    """The function pickled by value, or None if it cannot be."""
    try:
        import cloudpickle
    except ImportError:
        return None
    try:
        return cloudpickle.dumps(func, protocol=5)
    except Exception:
        return None


def loads(blob: bytes) -> Any:
    return pickle.loads(blob)
