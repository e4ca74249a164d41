"""Descriptors the module's import left open, in the calls of `@cached`.

A forked call shares its server's open file descriptions. An offset one
call moves (reading on in a data file the import opened) would be where
the next call starts, which a fresh import never sees; and what a call
writes through a log the import opened, or sends on its connection, is
not an open the tracer sees, so a hit would not do it again.

So, before its call, each call's child gets a description of its own for
each regular file the import opened for reading only, at the import's
offset (what a fresh import has: its content is already an input of the
import), and watches every other descriptor the import left open
(`casher._native.watch_descriptors`): a call that uses one runs, and is
not cached. A fresh interpreter per miss has its import's descriptors to
itself: nothing to reopen, the rest is watched the same way (its tracer
takes the import for the call's start, `IMPORTED_MARKER`, so it sees no
open in the call for them either).
"""

from __future__ import annotations

import fcntl
import os
import stat
from dataclasses import dataclass, field

# Devices that say nothing about what a call did, used or not.
_QUIET_DEVICES = frozenset(os.makedev(1, minor) for minor in (3, 5, 8, 9))  # null, zero, random, urandom


def open_now() -> set[int]:
    """The descriptors open in this process (`/proc` is never an input);
    not the listing's own, closed by now (and maybe the import's next)."""
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return set()
    return {fd for fd in listed if _is_open(fd)}


def _is_open(fd: int) -> bool:
    # `fstat`, not `fcntl`: a descriptor the process inherited is watched
    # for `fcntl` (`casher-tracer`'s filter), never for `fstat`.
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@dataclass
class LeftOpen:
    """What the import left open: regular files it reads, with their
    (device, inode), and every other descriptor worth watching."""

    reading: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(descriptor, device, inode, status flags)."""
    watched: list[int] = field(default_factory=list)

    def separate(self) -> str | None:
        """In a fork server's call, before the call: the files it reads get
        descriptions of their own, the rest is watched. Why the call cannot
        be cached, if the watch could not be set."""
        return self.watch([fd for fd, *identity in self.reading if not _own_description(fd, *identity)])

    def watch(self, also: list[int] | None = None) -> str | None:
        """Watches what is neither read only nor quiet (a fresh interpreter's
        call, whose import's descriptors are its own), and `also`. Why the
        call cannot be cached, if the watch could not be set."""
        watched = [*self.watched, *(also or [])]
        if not watched:
            return None
        from casher import _native

        try:
            _native.watch_descriptors(watched)
        except Exception as exc:  # noqa: BLE001 - the call still runs
            return f"the descriptors its module's import left open cannot be watched ({exc})"
        return None


OPENED_BY_IMPORT: set[int] = set()
"""Every descriptor number the import opened and left open: a module-level
int equal to one is this process's handle (the caller's number for the same
file differs, and means nothing here: `casher._child.apply_state`)."""


_SERVED: list[LeftOpen] = []
"""What a fork server's import left open (`after_server_import`)."""


def after_server_import(before: set[int]) -> None:
    """In a fork server, once it has imported: what its calls will find
    open (`before`: what was open before the import)."""
    _SERVED[:] = [left_open(before)]


def before_the_call(before: set[int] | None) -> str | None:
    """In a call's process, before the call: what the import left open is
    the call's own (a fork server's, `before` None) or watched. Why the call
    cannot be cached, if the watch could not be set. `before`: what was open
    before a fresh interpreter's import, whose descriptors are its own."""
    if before is not None:
        return left_open(before).watch()
    return _SERVED[0].separate() if _SERVED else None


def left_open(before: set[int]) -> LeftOpen:
    """Right after the import (in the server, or in a fresh interpreter's
    call): what it left open that was not open `before` it."""
    left = LeftOpen()
    opened = open_now() - before
    OPENED_BY_IMPORT.update(opened)
    for fd in sorted(opened):
        try:
            st = os.fstat(fd)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:  # closed since
            continue
        if flags & getattr(os, "O_PATH", 0) or stat.S_ISDIR(st.st_mode):
            continue  # nothing goes through it; what is listed through it is seen
        if stat.S_ISCHR(st.st_mode) and st.st_rdev in _QUIET_DEVICES:
            continue
        if stat.S_ISREG(st.st_mode) and flags & os.O_ACCMODE == os.O_RDONLY and st.st_nlink > 0:
            left.reading.append((fd, st.st_dev, st.st_ino, flags))
        else:
            left.watched.append(fd)
    return left


def _own_description(fd: int, dev: int, ino: int, flags: int) -> bool:
    """Gives `fd` a description of its own (with the import's status
    `flags`), at the offset it has now (the import's: every call does this
    before anything moves it). False if it cannot: it is watched instead."""
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (dev, ino):
            return False
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        inheritable = os.get_inheritable(fd)
        fresh = os.open(f"/proc/self/fd/{fd}", flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC))
    except OSError:
        return False
    try:
        os.lseek(fresh, offset, os.SEEK_SET)
        os.dup2(fresh, fd, inheritable=inheritable)
    except OSError:
        return False
    finally:
        os.close(fresh)
    return True
