"""Return values without copies.

A function's return value is pickled with protocol 5: buffers of at least
`OUT_OF_BAND` bytes (numpy arrays, pandas blocks, Arrow and polars buffers)
leave the pickle and go to files of their own, which the store adopts as
objects by rename (never copied). A hit maps those objects back into memory
instead of reading them: a private copy-on-write mapping (`ACCESS_COPY`),
so the value shares the page cache's pages (a 400 MB array costs no copy
and no second 400 MB) yet stays writeable like the value a plain call
returns; a write touches a private copy of that page, never the store.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import struct
from typing import Any

from casher import _randomness, _transfer

#: Smaller buffers stay inside the pickle: a file per tiny buffer costs more
#: than the copy it saves.
OUT_OF_BAND = 1 << 16


def dumps(value: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """The pickle of `value` and its large buffers, in the pickle's order."""
    buffers: list[pickle.PickleBuffer] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND:
            return True  # in-band
        buffers.append(buffer)
        return False

    out = io.BytesIO()
    try:
        _transfer.Pickler(out, protocol=5, buffer_callback=keep).dump(value)
    except Exception:
        # A class that exists here only by value (it came with an argument
        # from the caller's `__main__`) goes back by value: cloudpickle
        # finds the caller's own class again by its tracking id.
        out, buffers[:] = io.BytesIO(), []
        _transfer.cloud_pickler(out, protocol=5, buffer_callback=keep).dump(value)
    return out.getvalue(), buffers


def dump_to_files(value: Any, stem: str) -> tuple[bytes, list[str]]:
    """Pickles `value`; each large buffer is written to `STEM.bufN`."""
    payload, buffers = dumps(value)
    paths = []
    for i, buffer in enumerate(buffers):
        path = f"{stem}.buf{i}"
        with open(path, "wb") as f:
            f.write(buffer.raw())
        paths.append(path)
    return payload, paths


def loads(value: Any) -> Any:
    """A stored value: pickle bytes, or (pickle, [paths of its buffers])."""
    if isinstance(value, tuple):
        payload, paths = value
        return pickle.loads(payload, buffers=[_map(p) for p in paths])
    return pickle.loads(value)


def discard(paths: list[str]) -> None:
    """Removes buffer files the store did not adopt (mappings stay valid)."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _map(path: str) -> Any:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return bytearray()
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)


_EXTRAS = b"casher-extras-v2\n"


def pack_value(value: bytes, defaults: bytes | None, rng: dict | None = None, mark: bytes | None = None) -> bytes:
    """The stored blob: the pickled value, preceded (when there are any) by
    what the call changed in the caller's process besides its result: the
    function's defaults, pickled, and the states of the global random
    generators it drew from; and the mark of the frames in its output, if
    it has any (`casher._events`). A pickle never starts with `_EXTRAS`."""
    if defaults is None and not rng and mark is None:
        return value
    extras = pickle.dumps({"defaults": defaults, "rng": rng or {}, "mark": mark}, protocol=5)
    return _EXTRAS + struct.pack("<Q", len(extras)) + extras + value


def unpack_value(stored: Any) -> tuple[Any, dict]:
    """Splits what a lookup returned (the blob, or the blob and the paths of
    its out-of-band buffers) into the value to load and the extras."""
    blob, buffers = stored if isinstance(stored, tuple) else (stored, None)
    extras: dict = {}
    if blob.startswith(_EXTRAS):
        at = len(_EXTRAS)
        (size,) = struct.unpack_from("<Q", blob, at)
        at += 8
        blob, extras = blob[at + size :], pickle.loads(blob[at : at + size])
    return (blob if buffers is None else (blob, buffers)), extras


def apply_extras(func: Any, extras: dict) -> None:
    """Leaves the caller's process as the call left it: the function's
    defaults, the random generators it drew from."""
    apply_defaults(func, extras.get("defaults"))
    _randomness.apply(extras.get("rng") or {})


def apply_defaults(func: Any, defaults: bytes | None) -> None:
    """Leaves the function's defaults as the call left them."""
    if defaults is not None:
        func.__defaults__, func.__kwdefaults__ = pickle.loads(defaults)


def rebuild_exception(cls: type, args: tuple, state: dict) -> BaseException:
    """An exception of `cls` with these args and attributes, made without
    running its `__init__` (which may take other arguments)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def _state_that_pickles(exc: BaseException) -> dict:
    state = {}
    for name, value in dict(getattr(exc, "__dict__", {})).items():
        try:  # an attribute that cannot travel (a lock) is left out
            pickle.dumps(value, protocol=5)
        except Exception:
            continue
        state[name] = value
    return state


def _by_parts(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return rebuild_exception, (type(obj), obj.args, _state_that_pickles(obj))
    return NotImplemented


class _PartsPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        return _by_parts(obj)


def _parts_dumps(value: Any) -> bytes:
    out = io.BytesIO()
    _PartsPickler(out, protocol=5).dump(value)
    return out.getvalue()


def _parts_cloudpickle(value: Any) -> bytes:
    """The same, with classes local to the function sent by value."""
    out = io.BytesIO()
    _transfer.cloud_pickler_class(_by_parts)(out, protocol=5).dump(value)
    return out.getvalue()


def exception_blob(exc: BaseException) -> bytes | None:
    """An exception (or a warning) pickled so that the caller gets it back
    as it is: its own pickle when that loads back equal; else (an
    `__init__` that takes other arguments than it keeps in `args`, or
    rewrites them; one inside an exception group) every exception in it as
    its class, args and the attributes that pickle, rebuilt without running
    `__init__`, by value when its class is local to the function. None when
    nothing pickles."""
    try:
        blob = pickle.dumps(exc, protocol=5)
        back = pickle.loads(blob)
        if type(back) is type(exc) and back.args == exc.args:
            return blob
    except Exception:
        pass
    for dumps in (_parts_dumps, _parts_cloudpickle):
        try:
            return dumps(exc)
        except Exception:
            continue
    return None


def exception_chain(exc: BaseException | None, depth: int = 0) -> dict | None:
    """`exc` with what it was raised from (`__cause__`, `__context__`), a
    few levels deep, for `rebuild_chain`."""
    if exc is None or depth > 4:
        return None
    same = exc.__context__ is not None and exc.__context__ is exc.__cause__
    return {
        "exception": exception_blob(exc),
        "cause": exception_chain(exc.__cause__, depth + 1),
        "context": None if same else exception_chain(exc.__context__, depth + 1),
        "context_is_cause": same,
        "suppress": bool(exc.__suppress_context__),
    }


def rebuild_chain(chain: dict | None) -> BaseException | None:
    """The exception `exception_chain` sent, with its cause and context."""
    if not chain or chain.get("exception") is None:
        return None
    try:
        exc = pickle.loads(chain["exception"])
    except Exception:
        return None
    if not isinstance(exc, BaseException):
        return None
    exc.__cause__ = rebuild_chain(chain.get("cause"))
    exc.__context__ = exc.__cause__ if chain.get("context_is_cause") else rebuild_chain(chain.get("context"))
    exc.__suppress_context__ = chain.get("suppress", False)
    return exc

