"""What the traced child observes about a call besides files (used in the
child only): environment variables it read, its logging levels, and
keeping its module's import-time output out of the recording."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator


class _RecordingEnviron(os._Environ):  # type: ignore[name-defined,misc]
    """os.environ that remembers which names were read. Every read path of
    a mapping (`[]`, `get`, `in`, `os.getenv`) goes through `__getitem__`;
    iterating (a copy, `items()`) reads every name."""

    _casher_read: set[str]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            self._casher_read.add(key)
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        names = list(super().__iter__())
        self._casher_read.update(names)
        return iter(names)


@contextlib.contextmanager
def env_reads() -> Iterator[set[str]]:
    """Records the names of environment variables read inside the block."""
    read: set[str] = set()
    environ = os.environ
    original = type(environ)
    environ.__class__ = _RecordingEnviron
    environ._casher_read = read  # type: ignore[attr-defined]
    try:
        yield read
    finally:
        environ.__class__ = original
        del environ._casher_read  # type: ignore[attr-defined]


def apply_levels(levels: dict[str, int], disable: int) -> None:
    """The caller's logging levels, so the same records are created here."""
    logging.disable(disable)
    for name, level in levels.items():
        (logging.getLogger(name) if name else logging.getLogger()).setLevel(level)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Output written inside the block (a module's import-time prints) goes
    nowhere: a plain call does not print it either, the caller imported the
    module long before."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(null, fd)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)
