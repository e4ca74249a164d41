"""One computation per key at a time: when several processes miss on the
same call at once, one computes it and the others wait for its result
instead of all computing it.

The lock is an advisory `flock` on a small file per key in the store's
`locks/` directory, holding the holder's process id (so a waiter can say
whom it waits for). The kernel releases it when the holder exits, killed
or not, so a crashed holder never blocks anyone. A waiter gives up after
`CASHER_LOCK_TIMEOUT` seconds (default 600), says which process held the
lock, and computes the call itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger("casher")


def _timeout() -> float:
    try:
        return float(os.environ.get("CASHER_LOCK_TIMEOUT", "600"))
    except ValueError:
        return 600.0


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"process {text}" if text else "another process"


@contextlib.contextmanager
def hold(cache_dir: str, key: str, what: str) -> Iterator[bool]:
    """Holds the lock of `key` inside the block; yields whether it had to
    wait for another process (then the caller should look the key up
    again: the other process has probably recorded it)."""
    try:
        directory = Path(cache_dir) / "locks"
        directory.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(directory / f"{key[:48]}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # a cache problem never stops the call
        log.debug("no lock for %s (%s): computing without one", what, exc)
        yield False
        return
    try:
        waited = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            waited, locked = True, False
            holder = _holder(fd)
            log.info("%s: %s is computing the same call; waiting for its result", what, holder)
            deadline = time.monotonic() + _timeout()
            delay = 0.01
            while time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    holder = _holder(fd)
            if not locked:
                log.warning(
                    "%s: %s has been computing the same call for over %.0f s (CASHER_LOCK_TIMEOUT); computing it here too",
                    what,
                    holder,
                    _timeout(),
                )
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield waited
    finally:
        os.close(fd)  # releases the lock
