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

The call's fresh memory faults too: the server never ran it, so glibc's
malloc is as a fresh process has it, serving each large array with an
`mmap` of its own (zero-filled page by page, unmapped when freed) where a
warm process has raised its thresholds and reuses its heap. A groupby's
child took ~3,300 such faults against ~1,300 in a warm process. Each
child gets a warm process's settings (`warm_allocator`: glibc's largest
dynamic thresholds), the first call of each function says how far it grew
the heap, and a waiting child grows its heap that far ahead (`grow`), then
frees it: the call's allocations find those pages present. None of this
changes what a call computes, only where its memory comes from.
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
# glibc's `mallopt` parameters, and the largest values its dynamic
# adjustment reaches on a 64-bit system (after a warm process freed a
# large array): blocks below 32 MiB come from the heap, which keeps up to
# 64 MiB of free memory at its top.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD
_MAX_GROWTH = _TRIM_THRESHOLD  # what one waiting child may grow its heap by ahead
_CHUNK = 256  # pages populated between two checks for the request


class _Libc:
    """glibc's allocator entry points (`lib`), or None elsewhere (musl).
    Under another malloc preloaded (jemalloc), the thresholds set are
    glibc's, which it no longer uses, and its heap does not grow through
    `brk`: a call's `growth` is 0, so nothing is grown ahead either."""

    def __init__(self) -> None:
        self.warm = False
        self.heap_start = 0
        try:
            glibc = hasattr(os, "confstr") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
        except (OSError, ValueError):
            glibc = False
        self.lib = ctypes.CDLL(None, use_errno=True) if glibc else None
        if self.lib is not None:
            for name, restype, argtypes in (
                ("mallopt", ctypes.c_int, [ctypes.c_int, ctypes.c_int]),
                ("malloc", ctypes.c_void_p, [ctypes.c_size_t]),
                ("free", None, [ctypes.c_void_p]),
                ("sbrk", ctypes.c_void_p, [ctypes.c_ssize_t]),
                ("madvise", ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]),
            ):
                function = getattr(self.lib, name)
                function.restype, function.argtypes = restype, argtypes


_LIBC: list[_Libc] = []


def _libc() -> _Libc:
    if not _LIBC:
        _LIBC.append(_Libc())
    return _LIBC[0]


def warm_allocator() -> None:
    """In a call's child, before its call: glibc's malloc as a warm process
    has it (see the module's doc), and where its heap ends now (`growth`
    measures from there). Once per process; does nothing but on glibc."""
    libc = _libc()
    if libc.lib is None or libc.warm:
        return
    libc.warm = True
    if _chosen_by_the_user():
        return
    if libc.lib.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and libc.lib.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD):
        libc.heap_start = libc.lib.sbrk(0) or 0


# What a process chooses of glibc's thresholds itself (each of them also
# turns glibc's dynamic adjustment off): then its calls keep its choice.
_CHOSEN = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold", "glibc.malloc.top_pad", "glibc.malloc.mmap_max")


def _chosen_by_the_user() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in _CHOSEN) or any(name in tunables for name in _TUNABLES)


def growth() -> int:
    """In a call's child, after its call: how far the heap grew (bytes)
    since `warm_allocator` (0 when unknown)."""
    libc = _libc()
    if libc.lib is None or not libc.heap_start:
        return 0
    return max((libc.lib.sbrk(0) or 0) - libc.heap_start, 0)


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
    """The server's pages its calls wrote, as runs to populate, and how far
    their heap grew."""

    def __init__(self) -> None:
        self.functions: set[str] = set()
        self.regions: list[tuple[int, int]] = []
        self.pages: set[int] = set()
        self.runs: list[tuple[int, int]] = []
        self.growth = 0
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

    def add(self, function: str, report: tuple[int, list[int]]) -> None:
        """What a call's child `send`s: its heap's growth, the pages it wrote."""
        growth, data = report
        self.functions.add(function)
        self.growth = min(max(self.growth, growth), _MAX_GROWTH)
        pages = sorted(self.pages.union(data))[:_MAX_PAGES]
        self.pages = set(pages)
        runs: list[tuple[int, int]] = []
        for page in pages:
            if runs and runs[-1][0] + runs[-1][1] == page:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((page, 1))
        self.runs = runs


def populate(runs: list[tuple[int, int]], interrupted: Callable[[], bool]) -> bool:
    """In a child waiting for its request: takes the faults of `runs` now,
    until the request arrives (`interrupted`). False if it did."""
    if not runs:
        return True
    madvise = _libc().lib.madvise if _libc().lib is not None else None
    if madvise is None:
        return True
    for i, (page, count) in enumerate(runs):
        if i % 64 == 0 and interrupted():
            return False
        # A failure (an older kernel, a range the child no longer maps)
        # leaves those faults to the call.
        madvise(page * _PAGE, count * _PAGE, _MADV_POPULATE_WRITE)
    return True


def grow(size: int, interrupted: Callable[[], bool]) -> None:
    """In a child waiting for its request, after `warm_allocator`: the heap
    grown to `size` bytes past where it ended then (as far as the learned
    call took it), its pages present, then freed back to the heap's top
    (below the trim threshold: kept), until the request arrives.

    Blocks are taken until the heap ends there: the first may come from
    free memory the heap already had (at its top, or a hole in it), and
    each later one, the earlier ones still held, from its top."""
    libc = _libc()
    if libc.lib is None or not libc.heap_start or size <= 0:
        return
    target = libc.heap_start + min(size, _MAX_GROWTH)
    blocks: list[int] = []
    try:
        while len(blocks) < 8:
            missing = target - (libc.lib.sbrk(0) or target)
            if missing <= 0:
                return
            # Below the mmap threshold: above it, malloc maps a block of its own.
            length = min(missing + (64 << 10), _MMAP_THRESHOLD - (1 << 20))
            block = libc.lib.malloc(length)
            if not block:
                return
            blocks.append(block)
            if not _populate(libc, block, length, interrupted):
                return
    finally:
        for block in reversed(blocks):
            libc.lib.free(block)


def _populate(libc: _Libc, block: int, length: int, interrupted: Callable[[], bool]) -> bool:
    """The whole pages of a block `malloc` returned. False if a request
    arrived meanwhile."""
    end = (block + length) // _PAGE
    for page in range(-(-block // _PAGE), end, _CHUNK):
        if interrupted():
            return False
        libc.lib.madvise(page * _PAGE, min(_CHUNK, end - page) * _PAGE, _MADV_POPULATE_WRITE)
    return True


def send(fd: int, growth: int, pages: list[int]) -> None:
    """A call's report (see `Learned.add`) into the server's descriptor
    `fd` (a memfd)."""
    data = memoryview(array.array("Q", [growth, *pages])).cast("B")
    while data:
        data = data[os.write(fd, data) :]


def receive(fd: int) -> tuple[int, list[int]]:
    """What `send` wrote to `fd`."""
    chunks, at = [], 0
    while chunk := os.pread(fd, 1 << 20, at):
        chunks.append(chunk)
        at += len(chunk)
    values = array.array("Q")
    values.frombytes(b"".join(chunks)[: at - at % values.itemsize])
    if not values:
        raise OSError("the call's child sent no report")
    return values[0], values[1:].tolist()
