"""Which project code a call executed (used in the traced child only).

Static reachability cannot see registries, dispatch tables, argument
classes or subclasses found at run time; every project definition the call
actually executed becomes a code input of its result, so those are covered
because they ran.

The cost must stay out of the call (a profile hook slows a call-heavy
function by a third or more on CPython 3.11, whose eval loop takes the
tracing path for every instruction while a hook is set):

- CPython 3.12+: `sys.monitoring` PY_START, disabled per code object after
  its first event;
- CPython 3.11: no hook at all. Every code object carries a warm-up counter
  that its first instruction (RESUME) and every backward jump advance until
  the code is specialized; a counter that moved during the call means the
  code ran. The code objects are those of the project modules the child
  loaded (every function, class body and lambda is nested in its module's
  code), so nothing walks the heap. Code already specialized before the
  call (called often at import time) gets a fresh copy first, so its runs
  are seen too. The counter's position is checked once against a function
  run on purpose, else the profile hook is used;
- anything else: `sys.setprofile`.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys
import types
from typing import Callable, Iterator

from casher._callers import is_copy
from casher._roots import project_file

Executed = list[tuple[str, int, str]]  # (real path, first line, qualname)


def _project_code(code: types.CodeType) -> bool:
    """Project code, not the caller's frames reproduced above the call
    (`casher._callers`: they carry the caller's file names)."""
    return project_file(code.co_filename) is not None and not is_copy(code)


def _walk(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _walk(const)


_loaded: list[types.CodeType] = []


def capture_loads() -> None:
    """Keeps the code object of every project module loaded from here on:
    every function, class body and lambda it defines is nested in it, so
    the call's executed code can be found without walking the heap."""
    from importlib.machinery import SourceFileLoader

    original = SourceFileLoader.get_code

    def get_code(self: SourceFileLoader, fullname: str) -> types.CodeType | None:
        code = original(self, fullname)
        if code is not None and project_file(code.co_filename):
            _loaded.append(code)
        return code

    SourceFileLoader.get_code = get_code  # type: ignore[method-assign]


def loaded(code: types.CodeType) -> None:
    """A project module's code loaded by other means than a file loader
    (the caller's script, `casher._script`)."""
    if project_file(code.co_filename):
        _loaded.append(code)


_replacements: list[types.CodeType] = []
_replaced: set[int] = set()  # ids of code replaced by a fresh copy (kept alive in `_loaded`)


def _functions_using(keys: set[int], codes: dict[int, tuple[types.CodeType, int]]) -> list[types.FunctionType]:
    """The functions whose code is one of `keys`: looked for in project
    modules and their classes first; the heap is searched (a full
    collection's cost) only for code not found there or that closures may
    share."""
    from casher._peek import module_attr, own_dict

    found: list[types.FunctionType] = []
    seen: set[int] = set()
    # Read through the modules' dicts and by type: a lazily loaded module
    # (or a proxy among the globals) must not load because casher looked.
    for module in list(sys.modules.values()):
        if not project_file(module_attr(module, "__file__") or ""):
            continue
        for value in list((own_dict(module) or {}).values()):
            members = list(vars(value).values()) if issubclass(type(value), type) else [value]
            for member in members:
                if type(member) in (staticmethod, classmethod, types.MethodType):
                    member = member.__func__
                if type(member) is types.FunctionType and id(member.__code__) in keys:
                    found.append(member)
                    seen.add(id(member.__code__))
    rest = [codes[k][0] for k in keys if k not in seen or codes[k][0].co_freevars]
    if rest:
        found.extend(f for f in gc.get_referrers(*rest) if type(f) is types.FunctionType)
    return found


def _project_codes(extra: list[types.CodeType]) -> dict[int, types.CodeType]:
    """Project code that may run: what modules define (not their bodies,
    which ran at import), copies made here, and `extra`."""
    codes: dict[int, types.CodeType] = {}
    for root in _loaded:
        for const in root.co_consts:
            if isinstance(const, types.CodeType):
                codes.update((id(c), c) for c in _walk(const))
    for root in [*_replacements, *extra]:
        codes.update((id(c), c) for c in _walk(root))
    return {key: code for key, code in codes.items() if project_file(code.co_filename)}


def _entry(code: types.CodeType) -> tuple[str, int, str]:
    return (project_file(code.co_filename) or code.co_filename, code.co_firstlineno, code.co_qualname if hasattr(code, "co_qualname") else code.co_name)


class _Warmup:
    """CPython 3.11's per-code warm-up counter (`co_warmup`, a short after
    the object header, three pointers and `co_flags`)."""

    OFFSET = 3 * ctypes.sizeof(ctypes.c_void_p) + 3 * ctypes.sizeof(ctypes.c_void_p) + ctypes.sizeof(ctypes.c_int)
    INITIAL = -8

    @classmethod
    def read(cls, code: types.CodeType) -> int:
        return ctypes.c_short.from_address(id(code) + cls.OFFSET).value

    @classmethod
    @functools.cache
    def works(cls) -> bool:
        def probe() -> None:
            return None

        code = probe.__code__.replace()
        probe.__code__ = code
        if cls.read(code) != cls.INITIAL:
            return False
        probe()
        return cls.read(code) == cls.INITIAL + 1


class _WarmupTracker:
    def __init__(self, extra: list[types.CodeType]) -> None:
        self.extra = extra
        self.before: dict[int, tuple[types.CodeType, int]] = {}
        self.fresh: dict[int, types.CodeType] = {}  # specialized code id -> its fresh copy
        self.loaded = 0

    def start(self) -> None:
        read = _Warmup.read
        self.before = {key: (code, read(code)) for key, code in _project_codes(self.extra).items()}
        specialized = {key for key, (code, warmup) in self.before.items() if warmup == 0 and key not in _replaced}
        if specialized:
            # Called often already (at import time): their runs would not
            # move the counter. The functions using them get fresh copies.
            for function in _functions_using(specialized, self.before):
                code = function.__code__
                if id(code) not in self.fresh:
                    self.fresh[id(code)] = code.replace()
                    _replacements.append(self.fresh[id(code)])
                    _replaced.add(id(code))
                function.__code__ = self.fresh[id(code)]
        self.loaded = len(_loaded)

    def stop(self) -> Executed:
        read = _Warmup.read
        ran: dict[int, types.CodeType] = {}
        for key, (code, before) in self.before.items():
            if before == 0:
                copy = self.fresh.get(key)
                if copy is not None and read(copy) != _Warmup.INITIAL:
                    ran[key] = code
                    # Nested code already specialized cannot tell: it may
                    # have run if its parent did.
                    for c in _walk(code):
                        if read(c) == 0:
                            ran[id(c)] = c
            elif read(code) != before:
                ran[key] = code
        for root in _loaded[self.loaded :]:  # imported during the call
            for c in _walk(root):
                if c is not root and project_file(c.co_filename) and read(c) != _Warmup.INITIAL:
                    ran[id(c)] = c
        return sorted({_entry(c) for c in ran.values()})


class _Monitoring:
    """CPython 3.12+: one event per code object, then disabled."""

    def __init__(self) -> None:
        self.seen: set[types.CodeType] = set()
        self.tool = None

    def start(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        for tool in range(6):
            if monitoring.get_tool(tool) is None:
                self.tool = tool
                break
        else:
            raise RuntimeError("no free sys.monitoring tool id")
        monitoring.use_tool_id(self.tool, "casher")
        seen = self.seen

        def start(code: types.CodeType, offset: int) -> object:
            seen.add(code)
            return monitoring.DISABLE

        monitoring.register_callback(self.tool, monitoring.events.PY_START, start)
        monitoring.set_events(self.tool, monitoring.events.PY_START)

    def stop(self) -> Executed:
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        monitoring.set_events(self.tool, 0)
        monitoring.free_tool_id(self.tool)
        return sorted({_entry(c) for c in self.seen if _project_code(c)})


class _Profile:
    def __init__(self) -> None:
        self.seen: set[types.CodeType] = set()

    def start(self) -> None:
        seen = self.seen

        def profile(frame: types.FrameType, event: str, arg: object) -> None:
            if event == "call":
                seen.add(frame.f_code)

        sys.setprofile(profile)

    def stop(self) -> Executed:
        sys.setprofile(None)
        return sorted({_entry(c) for c in self.seen if _project_code(c)})


def tracker(extra: list[types.CodeType]) -> "_WarmupTracker | _Monitoring | _Profile":
    """The cheapest reliable way to see executed code on this interpreter.
    `extra`: code not loaded from a module file (a function sent by value)."""
    if sys.implementation.name == "cpython":
        if sys.version_info >= (3, 12):
            return _Monitoring()
        if sys.version_info[:2] == (3, 11) and _Warmup.works():
            return _WarmupTracker(extra)
    return _Profile()


def run(func: Callable[[], object], extra: list[types.CodeType]) -> tuple[object, Executed]:
    """Calls `func()`; its result and the project code it executed."""
    t = tracker(extra)
    t.start()
    try:
        value = func()
    finally:
        executed = t.stop()
    return value, executed
