"""How a call reaches its traced child and the result comes back: three
anonymous memory files (`memfd`) — the arguments (pickle protocol 5, large
buffers out-of-band, memory-mapped by the child), the call's description,
and the result — that the child opens through `/proc/<caller>/fd/<n>`.
Nothing goes through a file system's page cache, and `/proc` is outside
what the tracer records, so the transport never shows up as an input or an
output of the call. Where `memfd_create` is missing, small files in the
store's `calls/` directory (also outside what is recorded) do the same.
"""

from __future__ import annotations

import itertools
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

_counter = itertools.count()
NAMES = ("call", "meta", "result")

ENDED = b"casher: the call ended its process\n"
"""What the child writes where its result goes before the call starts:
still there, the call itself ended the process (`os._exit`, a signal, a
crash), which a plain call does to its caller's. (A pickle starts with a
protocol opcode, never with these marks.)"""

RETURNED = b"casher: the call returned\n"
"""What replaces `ENDED` once the call has returned or raised: still there,
the process ended in casher's own work after it (pickling the value)."""


def mark(target: int | str, data: bytes) -> None:
    """The child's side: `data` replaces what is at `target` (the result's
    memfd, or its path for a fresh interpreter)."""
    if isinstance(target, str):
        write_result(target, data)
        return
    os.ftruncate(target, 0)
    view, at = memoryview(data), 0
    while at < len(view):
        at += os.pwrite(target, view[at:], at)


def answer(data: bytes | None) -> dict[str, Any] | None:
    """The child's answer as the caller reads it: the result it wrote,
    `{"ok": False, "ended": True}` when the call ended the process, None
    when there is none (the child died before the call began, or after it
    returned: see `RETURNED`)."""
    if not data or data == RETURNED:
        return None
    if data == ENDED:
        return {"ok": False, "ended": True}
    try:
        result = pickle.loads(data)
    except Exception:
        return None
    return result if isinstance(result, dict) else None


class Channel:
    def __init__(self, cache_dir: str) -> None:
        self._fds: dict[str, int] = {}
        self._files: dict[str, Path] = {}
        try:
            for name in NAMES:
                self._fds[name] = os.memfd_create(f"casher-{name}", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            for fd in self._fds.values():
                os.close(fd)
            self._fds = {}
            calls = Path(cache_dir) / "calls"
            calls.mkdir(parents=True, exist_ok=True)
            stem = calls / f"{os.getpid()}-{next(_counter)}"
            self._files = {name: Path(f"{stem}.{name}") for name in NAMES}

    def path(self, name: str) -> str:
        if self._fds:
            return f"/proc/{os.getpid()}/fd/{self._fds[name]}"
        return str(self._files[name])

    def writer(self, name: str) -> BinaryIO:
        if self._fds:
            return os.fdopen(os.dup(self._fds[name]), "wb")
        return open(self._files[name], "wb")

    def result(self) -> bytes | None:
        """What the child wrote as its result; None if nothing."""
        if self._fds:
            fd = self._fds["result"]
            size = os.fstat(fd).st_size
            return os.pread(fd, size, 0) if size else None
        try:
            data = self._files["result"].read_bytes()
        except FileNotFoundError:
            return None
        return data or None

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        for path in self._files.values():
            path.unlink(missing_ok=True)
            Path(f"{path}.tmp").unlink(missing_ok=True)


def write_result(path: str, data: bytes) -> None:
    """The child's side: the result appears whole or not at all."""
    if path.startswith("/proc/"):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
