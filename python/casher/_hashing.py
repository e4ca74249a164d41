"""Canonical argument hashing.

Equal values hash equal whatever their chunking, slicing, memory order or
construction; any change a program could observe (a value, a name, an
order, a dtype, a shape, an index, `None` vs `NaN`, an attribute) changes
the hash. Large buffers, Arrow data and object arrays are hashed by the
native module straight from memory (see `_hashing_data`).

The encoding is prefix-free: single-byte codes for the common scalars
(shared with the native object-array walker), `@` + a length-prefixed name
for everything else, lengths everywhere. What cannot be walked exactly but
pickles is hashed through its pickle (may miss needlessly across processes,
never hits wrongly); what does not pickle is an `UnsupportedArgument`.
"""

from __future__ import annotations

import collections
import copyreg
import dataclasses  # noqa: F401  (kept: dataclasses are walked as objects)
import datetime as _dt
import decimal
import enum
import fractions
import math
import pickle
import struct
import sys
import types
import uuid
from pathlib import PurePath
from typing import Any

from casher import _native


class UnsupportedArgument(TypeError):
    """An argument casher cannot hash."""


def _len(n: int) -> bytes:
    return struct.pack("<Q", n)


def _tag(h: Any, name: bytes) -> None:
    h.update(b"@" + bytes([len(name)]) + name)


def _text(h: Any, tag: bytes, s: str) -> None:
    data = s.encode("utf-8", "surrogatepass")
    h.update(b"@" + bytes([len(tag)]) + tag + _len(len(data)) + data)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def digest(value: Any, where: str) -> str:
    h = _native.Hasher()
    feed(h, value, where)
    return h.hexdigest()


def sub_digest(value: Any, where: str, stack: list | None = None) -> bytes:
    """The 32-byte digest of one value (elements of sets and object arrays)."""
    h = _native.Hasher()
    _feed(h, value, where, stack if stack is not None else [])
    return h.digest()


def feed(h: Any, value: Any, where: str) -> None:
    """Feeds the canonical encoding of `value` into `h`."""
    _feed(h, value, where, [])


def _feed(h: Any, value: Any, where: str, stack: list) -> None:
    t = type(value)
    if value is None:
        h.update(b"N")
    elif t is bool:
        h.update(b"B1" if value else b"B0")
    elif t is int:
        digits = str(value).encode()
        h.update(b"I" + _len(len(digits)) + digits)
    elif t is float:
        h.update(b"f" if math.isnan(value) else b"F" + struct.pack("<d", value))
    elif t is str:
        data = value.encode("utf-8", "surrogatepass")
        h.update(b"S" + _len(len(data)) + data)
    elif t is bytes:
        h.update(b"Y" + _len(len(value)) + value)
    elif t in _SIMPLE:
        _SIMPLE[t](h, value)
    elif id(value) in stack:  # a cycle: where it points back to, as pickle's memo would
        _tag(h, b"cycle")
        h.update(_len(stack.index(id(value))))
    else:
        stack.append(id(value))
        try:
            _container(h, value, t, where, stack)
        finally:
            stack.pop()


def _container(h: Any, value: Any, t: type, where: str, stack: list) -> None:
    if t is tuple or t is list:
        h.update((b"T" if t is tuple else b"L") + _len(len(value)))
        for i, item in enumerate(value):
            _feed(h, item, f"{where}[{i}]", stack)
    elif t in (dict, collections.OrderedDict, collections.Counter, collections.defaultdict):
        # Insertion order counts: a program iterating the dict can see it.
        _tag(h, t.__name__.encode())
        if t is collections.defaultdict:
            _feed(h, value.default_factory, f"{where}.default_factory", stack)
        h.update(_len(len(value)))
        for k, v in value.items():
            _feed(h, k, f"{where} key", stack)
            _feed(h, v, f"{where}[{k!r}]", stack)
    elif t in (set, frozenset):
        # Unordered: a set's iteration order follows the process's string
        # hash seed, so it cannot be part of a key that must hit again.
        items = sorted(sub_digest(item, f"{where} item", stack) for item in value)
        _tag(h, t.__name__.encode())
        h.update(_len(len(items)) + b"".join(items))
    elif t is collections.deque:
        _tag(h, b"deque")
        _feed(h, value.maxlen, f"{where}.maxlen", stack)
        _feed(h, list(value), where, stack)
    elif isinstance(value, enum.Enum):
        _text(h, b"enum", _qualname(t))
        _text(h, b"member", value.name)
    elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType, types.MethodType, types.CodeType)):
        _callable(h, value, where, stack)
    else:
        from casher import _hashing_data

        if not _hashing_data.feed(h, value, where, stack):
            _object(h, value, where, stack)


def _simple(tag: bytes, encode: Any) -> Any:
    def feed_simple(h: Any, value: Any) -> None:
        data = encode(value)
        _tag(h, tag)
        h.update(_len(len(data)) + data)

    return feed_simple


def _tz(value: Any) -> bytes:
    tz = value.tzinfo
    return b"" if tz is None else f"{type(tz).__module__}.{type(tz).__qualname__}:{tz!r}".encode()


def _datetime(value: Any) -> bytes:
    return f"{value.isoformat()}|fold={value.fold}|".encode() + _tz(value)


_SIMPLE = {
    bytearray: _simple(b"bytearray", bytes),
    complex: _simple(b"complex", lambda v: struct.pack("<dd", v.real, v.imag)),
    _dt.datetime: _simple(b"datetime", _datetime),
    _dt.date: _simple(b"date", lambda v: v.isoformat().encode()),
    _dt.time: _simple(b"time", _datetime),
    _dt.timedelta: _simple(b"timedelta", lambda v: struct.pack("<qqq", v.days, v.seconds, v.microseconds)),
    # str() of a Decimal keeps sign, coefficient and exponent: 1.10 != 1.1.
    decimal.Decimal: _simple(b"decimal", lambda v: str(v).encode()),
    fractions.Fraction: _simple(b"fraction", lambda v: f"{v.numerator}/{v.denominator}".encode()),
    uuid.UUID: _simple(b"uuid", lambda v: v.bytes),
    range: _simple(b"range", lambda v: struct.pack("<qqq", v.start, v.stop, v.step) if max(abs(v.start), abs(v.stop), abs(v.step)) < 2**62 else repr(v).encode()),
    memoryview: _simple(b"memoryview", lambda v: f"{v.format}|{v.shape}|".encode() + v.tobytes()),
}


def _path(h: Any, value: PurePath) -> None:
    _text(h, b"path", _qualname(type(value)))
    _text(h, b"str", str(value))


for _cls in (PurePath, *PurePath.__subclasses__(), *(c for s in PurePath.__subclasses__() for c in s.__subclasses__())):
    _SIMPLE[_cls] = _path


def _callable(h: Any, value: Any, where: str, stack: list) -> None:
    """Functions, classes and modules: by name, as pickle sends them; a
    Python function also by its code, defaults and closure, so editing a
    function passed as an argument changes the key."""
    if isinstance(value, types.ModuleType):
        from casher._peek import module_attr

        _text(h, b"module", module_attr(value, "__name__") or "?")
        return
    if isinstance(value, types.MethodType):
        _tag(h, b"method")
        _feed(h, value.__self__, f"{where}.__self__", stack)
        _feed(h, value.__func__, where, stack)
        return
    if isinstance(value, types.CodeType):
        _tag(h, b"code")
        h.update(_len(len(value.co_code)) + value.co_code)
        _feed(h, value.co_consts, f"{where}.co_consts", stack)
        _feed(h, (value.co_names, value.co_varnames, value.co_argcount, value.co_kwonlyargcount, value.co_flags), where, stack)
        return
    _text(h, b"callable", _qualname(value))
    owner = value.__self__ if isinstance(value, types.BuiltinMethodType) else None
    if owner is not None and not isinstance(owner, types.ModuleType):
        _feed(h, owner, f"{where}.__self__", stack)  # `[1].append` vs `[2].append`
    if isinstance(value, types.FunctionType):
        _feed(h, value.__code__, where, stack)
        _feed(h, value.__defaults__, f"{where}.__defaults__", stack)
        _feed(h, value.__kwdefaults__, f"{where}.__kwdefaults__", stack)
        cells = []
        for cell in value.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # an empty cell
                cells.append(_EMPTY)
        _feed(h, tuple(cells), f"{where}.__closure__", stack)


_EMPTY = "<empty cell>"


def _object(h: Any, value: Any, where: str, stack: list) -> None:
    """Any other object, through what pickle would save of it (its class and
    its reduce tuple: every attribute in `__dict__`/`__slots__`/
    `__getstate__`), each part walked canonically; when a part cannot be
    walked, the object's pickle; else an `UnsupportedArgument`."""
    t = type(value)
    try:
        reducer = copyreg.dispatch_table.get(t)
        reduced = reducer(value) if reducer else value.__reduce_ex__(4)
    except Exception as exc:
        raise _unsupported(where, t, exc) from None
    if isinstance(reduced, str):  # a named global (a singleton)
        _text(h, b"global", f"{t.__module__}.{reduced}")
        return
    inner = _native.Hasher()
    try:
        _tag(inner, b"reduce")
        _text(inner, b"class", _qualname(t))
        parts = list(reduced) + [None] * (6 - len(reduced))
        func, args, state, listitems, dictitems = parts[:5]
        _feed(inner, func, f"{where}.__reduce__", stack)
        _feed(inner, args, f"{where}.__reduce__ args", stack)
        _feed(inner, state, f"{where}.__getstate__()", stack)
        _feed(inner, list(listitems) if listitems is not None else None, f"{where} items", stack)
        _feed(inner, list(dictitems) if dictitems is not None else None, f"{where} items", stack)
        h.update(b"X" + inner.digest())
    except UnsupportedArgument as exc:
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception:
            raise exc from None
        _text(h, b"pickle", _qualname(t))
        h.update(_len(len(data)) + data)


def _unsupported(where: str, t: type, exc: BaseException | None = None) -> UnsupportedArgument:
    top = where.split("[")[0].split(".")[0].split(" ")[0]
    why = f" ({exc})" if exc else ""
    return UnsupportedArgument(
        f"casher cannot hash argument {where!r} of type {t.__module__}.{t.__qualname__}: "
        f"it is not a supported type and it does not pickle{why}. "
        f"To leave it out of the cache key, use @cached(ignore=[{top!r}])"
    )


def _module_loaded(name: str) -> bool:
    return name in sys.modules
