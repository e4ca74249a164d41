"""The caller's frames, reproduced above the call in the child.

A plain call runs under its caller's frames, and code looks at them:
`warnings.warn(..., stacklevel=2)` blames the caller's line and matches the
caller's module against the filters (Python shows a DeprecationWarning only
when it is blamed on `__main__`), `logging` with `stacklevel=2` names the
caller's file, line and function, `inspect.stack()` lists them. In the
child, the frames above the call would be casher's. So the caller sends its
innermost frames (file, line, module name, function name) and the child
calls the function through one small function per frame, compiled so that
its call sits on that file's line, named like that function, with globals
naming that module.
"""

from __future__ import annotations

import builtins
import functools
import os
import sys
import types
from typing import Any, Callable

Frame = tuple[str, int, str, str, str]  # (file, line, module, function, qualname)

_DEPTH = 8
"""Frames sent: deeper `stacklevel`s blame the top of the child's stack."""

_CASHER = os.path.dirname(os.path.abspath(__file__)) + os.sep

INNER = "__casher_inner__"
"""The global those functions call: it marks them as not project code the
call executed (they carry the caller's file names)."""


def stack() -> list[Frame]:
    """In the caller: its frames from the one that called the cached
    function outwards (casher's own skipped)."""
    frames: list[Frame] = []
    frame: Any = sys._getframe(1)
    while frame is not None and len(frames) < _DEPTH:
        code = frame.f_code
        if not code.co_filename.startswith(_CASHER):
            name = frame.f_globals.get("__name__")
            qualname = getattr(code, "co_qualname", code.co_name)
            frames.append((code.co_filename, frame.f_lineno or 1, name if isinstance(name, str) else "<string>", code.co_name, qualname))
        frame = frame.f_back
    return frames


@functools.cache
def _template() -> types.CodeType:
    module = compile("def _(): return __casher_inner__(*__casher_args__, **__casher_kwargs__)\n", "<casher>", "exec", dont_inherit=True)
    return next(c for c in module.co_consts if isinstance(c, types.CodeType))


def _code(file: str, line: int, function: str, qualname: str) -> types.CodeType:
    # Its one line is `co_firstlineno` (line numbers are offsets from it).
    return _template().replace(co_filename=file, co_firstlineno=max(line, 1), co_name=function, co_qualname=qualname)


def is_copy(code: types.CodeType) -> bool:
    """Whether `code` is one of the caller's frames copied here."""
    return INNER in code.co_names


def call_from(frames: list[Frame], func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """In the child: `func(*args, **kwargs)` called right from the caller's
    frames (innermost first)."""
    call, call_args, call_kwargs = func, args, kwargs
    for file, line, module, function, qualname in frames:
        try:
            code = _code(file, int(line), function, qualname)
        except Exception:  # a frame that cannot be made: the stack ends here
            break
        scope = {"__name__": module, "__builtins__": builtins, "__casher_inner__": call, "__casher_args__": call_args, "__casher_kwargs__": call_kwargs}
        call, call_args, call_kwargs = types.FunctionType(code, scope), (), {}
    return call(*call_args, **call_kwargs)
