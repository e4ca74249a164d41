"""Running a `@cached` function in the calling process, for functions the
traced child cannot import (closures, lambdas, notebook cells).

What it sees: files opened and directories listed from Python (audit
hooks), output at the file-descriptor level and through `sys.stdout` /
`sys.stderr`. What it cannot see: files read by native code, and state the
function reaches besides its arguments and closure cells.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@dataclass
class Observed:
    reads: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    chunks: list[tuple[int, bytes]] = field(default_factory=list)


_active: list[Observed] = []
_hook_lock = threading.Lock()
_hook_installed = False


def _path(value: Any) -> str | None:
    if isinstance(value, int):
        return None
    try:
        return os.path.abspath(os.fsdecode(value))
    except TypeError:
        return None


def _audit(event: str, args: tuple) -> None:
    if not _active:
        return
    seen = _active[-1]
    if event == "open":
        path = _path(args[0])
        if path is None:
            return
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & _WRITE_FLAGS)
        (seen.written if writes else seen.reads).append(path)
    elif event in ("os.listdir", "os.scandir"):
        path = _path(args[0] if args else ".") or os.getcwd()
        seen.listed.append(path)
    elif event in ("os.remove", "os.rmdir"):
        path = _path(args[0])
        if path:
            seen.deleted.append(path)
    elif event == "os.rename":
        src, dst = _path(args[0]), _path(args[1])
        if src:
            seen.deleted.append(src)
        if dst:
            seen.written.append(dst)


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)  # cannot be removed: it is idle unless a call is observed
            _hook_installed = True


class _Tee:
    """Forwards to the stream it replaces and records what it wrote."""

    def __init__(self, target: Any, stream: int, seen: Observed) -> None:
        self._target, self._stream, self._seen = target, stream, seen

    def write(self, text: str) -> int:
        self._seen.chunks.append((self._stream, text.encode("utf-8", "replace")))
        return self._target.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _fd_backed(stream: Any, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except Exception:
        return False


def _pump(read_fd: int, forward_fd: int, stream: int, seen: Observed) -> None:
    while True:
        data = os.read(read_fd, 65536)
        if not data:
            break
        seen.chunks.append((stream, data))
        os.write(forward_fd, data)
    os.close(read_fd)


def run(func: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, Observed]:
    """Calls `func`, observing it. Exceptions propagate (nothing is kept)."""
    _install_hook()
    seen = Observed()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {1: os.dup(1), 2: os.dup(2)}
    pumps = []
    for fd in (1, 2):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        t = threading.Thread(target=_pump, args=(r, saved[fd], fd, seen), daemon=True)
        t.start()
        pumps.append(t)
    old_out, old_err = sys.stdout, sys.stderr
    # Python-level streams that do not write to fd 1/2 (pytest, notebooks)
    # are teed; those that do are seen by the fd capture.
    if not _fd_backed(old_out, 1):
        sys.stdout = _Tee(old_out, 1, seen)
    if not _fd_backed(old_err, 2):
        sys.stderr = _Tee(old_err, 2, seen)
    _active.append(seen)
    try:
        value = func(*args, **kwargs)
    finally:
        _active.pop()
        sys.stdout, sys.stderr = old_out, old_err
        old_out.flush()
        old_err.flush()
        for fd in (1, 2):
            os.dup2(saved[fd], fd)  # closes the pipe's write end: the pump ends
        for t in pumps:
            t.join(timeout=5)
        for fd in saved.values():
            os.close(fd)
    return value, seen
