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
    learned.add("f", (0, sorted(seen)))

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
        _prefault.send(fd, 5 << 20, pages)
        assert _prefault.receive(fd) == (5 << 20, pages)
    finally:
        os.close(fd)


def test_learned_pages_become_runs_and_stop_at_the_cap():
    learned = _prefault.Learned()
    learned.add("f", (1 << 20, [5, 6, 7, 9]))
    assert learned.runs == [(5, 3), (9, 1)]
    assert learned.growth == 1 << 20
    assert not learned.wants("f") and "f" in learned.functions
    learned.add("g", (1 << 40, list(range(100, 100 + _prefault._MAX_PAGES))))
    assert sum(n for _, n in learned.runs) == _prefault._MAX_PAGES
    assert learned.growth == _prefault._MAX_GROWTH


glibc = pytest.mark.skipif(
    not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc's malloc settings"
)


def faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@glibc
@pytest.mark.parametrize("free_at_top", [0, 16 << 20], ids=["fresh-heap", "free-memory-at-the-top"])
def test_a_childs_heap_growth_is_measured_and_grown_ahead_it_serves_large_arrays_without_faults(free_at_top: int):
    size = 24 << 20

    def server() -> tuple[int, int, int, int]:
        # A server whose heap may already have free memory at its top.
        if free_at_top:
            assert ctypes.CDLL(None).mallopt(-1, 64 << 20) == 1  # no trim
            assert ctypes.CDLL(None).mallopt(-3, 32 << 20) == 1
            block = bytearray(free_at_top)
            del block

        def call() -> int:
            _prefault.warm_allocator()
            block = bytearray(size)  # from the heap now, not a mapping of its own
            del block
            return _prefault.growth()

        growth = in_child(call)

        def waiting_child() -> tuple[int, int, int]:
            _prefault.warm_allocator()
            _prefault.grow(growth, lambda: False)
            before = faults()
            block = bytearray(size)
            after = faults()
            ones = bytearray(b"\1" * 4096)
            del block
            return after - before, sum(ones), _prefault.growth()

        return (growth, *in_child(waiting_child))

    growth, taken, total, grown = in_child(server)
    # Less where the heap had free memory already (this test process's own
    # heap may have some).
    assert 0 < growth <= size - free_at_top + (1 << 20)
    # bytearray(size) writes every page (zeroing it): 6,144 faults where
    # nothing was grown ahead.
    assert taken < 200, taken
    assert total == 4096
    assert grown >= growth


@glibc
def test_without_the_warm_settings_a_large_array_faults_page_by_page():
    """The control of the test above: what `grow` saves."""

    def child() -> int:
        # glibc's initial threshold (this test process may have raised it).
        assert ctypes.CDLL(None).mallopt(-3, 128 << 10) == 1
        before = faults()
        block = bytearray(24 << 20)
        after = faults()
        del block
        return after - before

    assert in_child(child) > 5000


def test_a_request_arriving_stops_the_growth():
    calls = []

    def asked() -> bool:
        calls.append(1)
        return True

    def child() -> int:
        _prefault.warm_allocator()
        before = faults()
        _prefault.grow(16 << 20, asked)
        return faults() - before

    assert in_child(child) < 200


@glibc
def test_thresholds_the_user_chose_are_kept(monkeypatch: pytest.MonkeyPatch):
    """`MALLOC_MMAP_THRESHOLD_` (or the same glibc tunable) is the program's
    choice: a large array keeps a mapping of its own, as in a plain run, so
    a second one faults again; with the warm settings it reuses the heap."""

    def child(chosen: bool) -> int:
        if chosen:  # what the variable did when this process started
            assert ctypes.CDLL(None).mallopt(-3, 1 << 20) == 1
        _prefault._LIBC.clear()
        _prefault.warm_allocator()
        block = bytearray(24 << 20)
        del block
        before = faults()
        block = bytearray(24 << 20)
        after = faults()
        del block
        return after - before

    assert in_child(lambda: child(False)) < 200
    for name, value in (("MALLOC_MMAP_THRESHOLD_", str(1 << 20)), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert in_child(lambda: child(True)) > 5000, name
