"""Copy-on-write faults taken ahead of a fork server's calls
(`casher._prefault`), on real forked processes: a call's child finds the
server pages it wrote, and a child forked later copies exactly those ahead,
with the same content."""

from __future__ import annotations

import ctypes
import os
import pickle

import pytest

from casher import _prefault

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/pagemap"), reason="needs /proc/self/pagemap")

PAGE = os.sysconf("SC_PAGE_SIZE")


def in_child(work) -> object:
    """`work()` in a forked child; its pickled result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            data = pickle.dumps(work())
            while data:
                data = data[os.write(write, data) :]
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return pickle.loads(b"".join(chunks))


def test_a_child_finds_the_pages_it_wrote_and_a_later_child_copies_them_ahead():
    # Server memory: a private writable mapping, populated here.
    buffer = bytearray(os.urandom(64 * PAGE))
    content = bytes(buffer)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    written = [(base // PAGE) + i for i in (10, 11, 40)]
    untouched = [(base // PAGE) + i for i in (20, 50)]
    learned = _prefault.Learned()
    learned.start()
    assert learned.usable

    def call() -> list[int]:
        for page in written:
            offset = page * PAGE - base
            buffer[offset] = buffer[offset] ^ 0xFF
        return _prefault.scan(learned.regions)

    seen = set(in_child(call))
    assert set(written) <= seen
    assert not set(untouched) & seen
    learned.add("f", sorted(seen))

    def waiting_child() -> tuple[list[int], bool]:
        _prefault.populate(learned.runs, lambda: False)
        return _prefault.scan(learned.regions), bytes(buffer) == content

    copied, same = in_child(waiting_child)
    assert set(written) <= set(copied), "populated ahead: no longer shared"
    assert not set(untouched) & set(copied)
    assert same, "copying a page ahead keeps its content"


def test_what_a_child_sends_the_server_receives():
    fd = os.memfd_create("test-pages")
    try:
        pages = [1, 2, 3, 1 << 40]
        _prefault.send(fd, pages)
        assert _prefault.receive(fd) == pages
    finally:
        os.close(fd)


def test_learned_pages_become_runs_and_stop_at_the_cap():
    learned = _prefault.Learned()
    learned.add("f", [5, 6, 7, 9])
    assert learned.runs == [(5, 3), (9, 1)]
    assert not learned.wants("f") and "f" in learned.functions
    learned.add("g", list(range(100, 100 + _prefault._MAX_PAGES)))
    assert sum(n for _, n in learned.runs) == _prefault._MAX_PAGES
