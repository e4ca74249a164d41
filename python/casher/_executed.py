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
  code ran. Code already specialized before the call (called often at
  import time) gets a fresh copy first, so its runs are seen too. The
  counter's position is checked once against a function run on purpose,
  else the profile hook is used;
- anything else: `sys.setprofile`.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import types
from typing import Callable, Iterator

from casher._roots import project_file

Executed = list[tuple[str, int, str]]  # (real path, first line, qualname)


def _walk(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _walk(const)


def _project_functions() -> list[types.FunctionType]:
    return [
        o
        for o in gc.get_objects()
        if type(o) is types.FunctionType and project_file(o.__code__.co_filename)
    ]


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
    def __init__(self) -> None:
        self.before: dict[int, tuple[types.CodeType, int]] = {}
        self.fresh: dict[int, types.CodeType] = {}  # replaced code id -> its fresh copy
        self.modules = 0

    def start(self) -> None:
        read = _Warmup.read
        for function in _project_functions():
            code = function.__code__
            if id(code) in self.fresh:
                function.__code__ = self.fresh[id(code)]
                continue
            if id(code) not in self.before:
                for c in _walk(code):
                    self.before.setdefault(id(c), (c, read(c)))
            if read(code) == 0:  # specialized: its runs would not move the counter
                copy = code.replace()
                self.fresh[id(code)] = copy
                function.__code__ = copy
        self.modules = len(sys.modules)

    def stop(self) -> Executed:
        read = _Warmup.read
        ran: dict[int, types.CodeType] = {}
        for key, (code, before) in self.before.items():
            if key in self.fresh:
                copy = self.fresh[key]
                if read(copy) != _Warmup.INITIAL:
                    ran[key] = code
                    # Nested code already specialized cannot tell: it may
                    # have run if its parent did.
                    for c in _walk(code):
                        if read(c) == 0:
                            ran[id(c)] = c
            elif read(code) != before:
                ran[key] = code
        if len(sys.modules) != self.modules:  # imported during the call
            for function in _project_functions():
                for c in _walk(function.__code__):
                    if id(c) not in self.before and read(c) != _Warmup.INITIAL:
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
        return sorted({_entry(c) for c in self.seen if project_file(c.co_filename)})


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
        return sorted({_entry(c) for c in self.seen if project_file(c.co_filename)})


def tracker() -> "_WarmupTracker | _Monitoring | _Profile":
    """The cheapest reliable way to see executed code on this interpreter."""
    if sys.implementation.name == "cpython":
        if sys.version_info >= (3, 12):
            return _Monitoring()
        if sys.version_info[:2] == (3, 11) and _Warmup.works():
            return _WarmupTracker()
    return _Profile()


def run(func: Callable[[], object]) -> tuple[object, Executed]:
    """Calls `func()`; its result and the project code it executed."""
    t = tracker()
    t.start()
    try:
        value = func()
    finally:
        executed = t.stop()
    return value, executed
