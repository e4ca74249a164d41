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
    _transfer.Pickler(out, protocol=5, buffer_callback=keep).dump(value)
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


def pack_value(value: bytes, defaults: bytes | None, rng: dict | None = None) -> bytes:
    """The stored blob: the pickled value, preceded (when there are any) by
    what the call changed in the caller's process besides its result: the
    function's defaults, pickled, and the states of the global random
    generators it drew from (a pickle never starts with `_EXTRAS`)."""
    if defaults is None and not rng:
        return value
    extras = pickle.dumps({"defaults": defaults, "rng": rng or {}}, protocol=5)
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
