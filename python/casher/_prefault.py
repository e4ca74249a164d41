"""Copy-on-write faults taken ahead of a fork server's calls.

A call forked from the server writes to pages it shares with the server
(reference counts of the objects it uses, the allocator's free lists, the
arrays it fills), and each first write copies a page: a pandas groupby
took ~5,000 such faults, a third of its time, where a plain call in a warm
process takes none. The pages a function's call writes are much the same
from one call to the next, so the first call of each function served says
which of the server's pages it wrote (`scan`: `/proc/self/pagemap`, pages
no longer shared), and every later child, forked ahead of its request,
copies those pages while it waits (`populate`: `MADV_POPULATE_WRITE`),
off the next call's path.

Only the server's private writable mappings are touched; populating a
page copies it with the same content, so a call sees the same memory
either way. Any failure leaves the faults where they were.
"""

from __future__ import annotations

import array
import ctypes
import os
from collections.abc import Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MADV_POPULATE_WRITE = 23  # Linux 5.14
_MAX_PAGES = 16_384  # what one waiting child may copy ahead (64 MiB)
_EXCLUSIVE_PRESENT = (1 << 7) | (1 << 0)  # bits 63 and 56 of an entry, in its last byte
# Maps each value of an entry's last byte to 1 when both bits are set.
_FLAGS = bytes(1 if b & _EXCLUSIVE_PRESENT == _EXCLUSIVE_PRESENT else 0 for b in range(256))


def _regions() -> list[tuple[int, int]]:
    """This process's private writable mappings, as page ranges [first, end)."""
    regions = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=2)
            if len(parts) < 2 or parts[1][1] != "w" or parts[1][3] != "p":
                continue
            start, end = (int(x, 16) // _PAGE for x in parts[0].split("-"))
            regions.append((start, end))
    return regions


def scan(regions: list[tuple[int, int]]) -> list[int]:
    """In a call's child, after the call: the pages of `regions` (the
    server's) it no longer shares, that is, wrote."""
    pages: list[int] = []
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in regions:
            data = os.pread(fd, (end - start) * 8, start * 8)
            hits = data[7::8].translate(_FLAGS)
            at = hits.find(1)
            while at >= 0:
                pages.append(start + at)
                at = hits.find(1, at + 1)
    finally:
        os.close(fd)
    return pages


class Learned:
    """The server's pages its calls wrote, as runs to populate."""

    def __init__(self) -> None:
        self.functions: set[str] = set()
        self.regions: list[tuple[int, int]] = []
        self.pages: set[int] = set()
        self.runs: list[tuple[int, int]] = []
        self.usable = False

    def start(self) -> None:
        """In the server, once its import is done: the mappings calls share."""
        try:
            self.regions = _regions()
            self.usable = hasattr(os, "memfd_create") and os.path.exists("/proc/self/pagemap")
        except OSError:
            self.usable = False

    def wants(self, function: str) -> bool:
        return self.usable and function not in self.functions and len(self.pages) < _MAX_PAGES

    def add(self, function: str, data: list[int]) -> None:
        self.functions.add(function)
        pages = sorted(self.pages.union(data))[:_MAX_PAGES]
        self.pages = set(pages)
        runs: list[tuple[int, int]] = []
        for page in pages:
            if runs and runs[-1][0] + runs[-1][1] == page:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((page, 1))
        self.runs = runs


def populate(runs: list[tuple[int, int]], interrupted: Callable[[], bool]) -> None:
    """In a child waiting for its request: takes the faults of `runs` now,
    until the request arrives (`interrupted`)."""
    if not runs:
        return
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for i, (page, count) in enumerate(runs):
        if i % 64 == 0 and interrupted():
            return
        # A failure (an older kernel, a range the child no longer maps)
        # leaves those faults to the call.
        madvise(page * _PAGE, count * _PAGE, _MADV_POPULATE_WRITE)


def send(fd: int, pages: list[int]) -> None:
    """The scanned pages into the server's descriptor `fd` (a memfd)."""
    data = memoryview(array.array("Q", pages)).cast("B")
    while data:
        data = data[os.write(fd, data) :]


def receive(fd: int) -> list[int]:
    """What `send` wrote to `fd`."""
    chunks, at = [], 0
    while chunk := os.pread(fd, 1 << 20, at):
        chunks.append(chunk)
        at += len(chunk)
    pages = array.array("Q")
    pages.frombytes(b"".join(chunks)[: at - at % pages.itemsize])
    return pages.tolist()
