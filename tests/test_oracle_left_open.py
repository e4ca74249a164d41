"""Descriptors a module's import left open, used by its calls.

A call served by the fork server runs in a child that shares the server's
open file descriptions: what one call's read moves, the next call would
start from, and what a call writes through a log the import opened is no
open the tracer sees. Each call must start from the import's offset (as in
a fresh interpreter), and a call that writes or sends through such a
descriptor must do it again on every run, as a plain run does (it is not
served from the cache). Differential against plain runs, with the server
and with a fresh interpreter per miss.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oracle_cached import Oracle

MODES = {"server": {}, "fresh": {"CASHER_FORK_SERVER": "0"}}

ROWS = "".join(f"row{i:06d}\n" for i in range(20_000))


@pytest.fixture(params=list(MODES))
def oracle(request: pytest.FixtureRequest, tmp_path: Path) -> Oracle:
    return Oracle(tmp_path / "o", env=MODES[request.param])


@pytest.mark.parametrize("reader", ["text", "raw"])
def test_each_call_reads_a_file_the_import_opened_from_the_imports_offset(oracle: Oracle, reader: str) -> None:
    """Calls that read on past the import's buffer: an earlier call in the
    same process must not move where a later one starts. A process that
    calls f(1) then f(2) caches f(2); a later process's f(2) must print
    what a fresh plain process prints."""
    read = "DATA.read(30_000)[-10:].strip()" if reader == "text" else "os.read(FD, 30_000)[-10:].strip().decode()"
    oracle.write("data.txt", ROWS)
    oracle.write(
        "work.py",
        f"""
        import os
        from casher import cached

        DATA = open("data.txt")
        HEADER = DATA.readline()
        FD = os.open("data.txt", os.O_RDONLY)
        os.read(FD, 25)

        @cached
        def f(x):
            return x, {read}
        """,
    )
    oracle.write(
        "driver.py",
        """
        import sys
        import _oracle
        import work
        for x in sys.argv[1:]:
            print(work.f(int(x)))
        _oracle.done(work.f)
        """,
    )
    if reader == "text":
        # A file object is the caller's own: the call runs there, and two
        # calls in one process read on, as plain calls do.
        for _ in range(2):
            oracle.check(oracle.run("driver.py", "1", "2"))
        return
    # A descriptor number (docs/limitations.md): each call reads from the
    # import's offset; the plain process's second call would go on reading.
    warm = oracle._once(["driver.py", "1", "2"], oracle.root, oracle._environ(False, {}), None)
    assert warm.code == 0, warm.stderr
    first, second = (line.split(",", 1)[1] for line in warm.stdout.splitlines())
    assert first == second, warm.stdout
    step = oracle.run("driver.py", "2")
    oracle.check(step)
    if step.info is not None:
        assert step.misses("f") == 0, "expected a hit:\n" + oracle.report()


# How the import opens the file, and the call's body that writes through it.
WRITERS = {
    "file object, appending": ('LOG = open("log.txt", "a")', ['LOG.write(f"f {x}\\n")', "LOG.flush()"]),
    "file object, not flushed": ('LOG = open("log.txt", "a")', ['LOG.write(f"f {x}\\n")']),
    "descriptor number": (
        'FD = os.open("log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)',
        ['os.write(FD, f"f {x}\\n".encode())'],
    ),
    "a copy of the descriptor": (
        'FD = os.open("log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)',
        ["copy = os.dup(FD)", 'os.write(copy, f"f {x}\\n".encode())', "os.close(copy)"],
    ),
    "a counter rewritten in place": (
        'COUNTER = open("counter.bin", "r+b")',
        [
            'n = int.from_bytes(os.pread(COUNTER.fileno(), 4, 0), "little") + 1',
            'os.pwrite(COUNTER.fileno(), n.to_bytes(4, "little"), 0)',
        ],
    ),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_call_writing_through_a_file_the_import_opened_writes_on_every_run(oracle: Oracle, writer: str) -> None:
    """Every run of a plain driver writes through the module's file: so
    must every cached run. A function of the same module that does not
    touch the file still hits: what the import wrote (its log grows every
    run) is the import's, not the call's, in a fresh interpreter too."""
    opened, write = WRITERS[writer]
    oracle.write("counter.bin", b"\x00\x00\x00\x00")
    body = "".join(f"    {line}\n" for line in write)
    oracle.write(
        "work.py",
        f"import os\nfrom casher import cached\n\n{opened}\n\n\n@cached\ndef f(x):\n{body}    return x * 2\n\n\n"
        "@cached\ndef g(x):\n    return x * 3\n",
    )
    oracle.write(
        "driver.py",
        """
        import _oracle
        import work
        print(work.f(1), work.g(1))
        _oracle.done(work.f, work.g)
        """,
    )
    for i in range(3):
        step = oracle.run()
        oracle.check(step)
        if i and step.info is not None:
            assert step.misses("g") == 0, "expected a hit:\n" + oracle.report()


@pytest.mark.parametrize("move", ["readline", "seek", "iterate", "close", "none"])
def test_a_module_level_file_the_caller_read_on_in_is_read_from_there(oracle: Oracle, move: str) -> None:
    """The caller reads on in (or closes) the module's file object before
    the call: the call reads from where the caller's file stands, as a
    plain call does, on a miss and on a later run."""
    step = {
        "readline": "work.DATA.readline()",
        "seek": "work.DATA.seek(4)",
        "iterate": "next(iter(work.DATA))",
        "close": "work.DATA.close()",
        "none": "pass",
    }[move]
    oracle.write("data.txt", "a\nb\nc\n" + ROWS)
    oracle.write(
        "work.py",
        """
        from casher import cached

        DATA = open("data.txt")

        @cached
        def f(n):
            try:
                return DATA.read(n)
            except ValueError as exc:
                return str(exc)
        """,
    )
    oracle.write(
        "driver.py",
        f"""
        import _oracle
        import work
        {step}
        print(repr(work.f(12)))
        _oracle.done(work.f)
        """,
    )
    for _ in range(2):
        oracle.check(oracle.run())


def test_a_module_whose_import_cannot_run_twice_still_gives_plain_results(oracle: Oracle) -> None:
    """The import opens its data file and deletes it: the traced process's
    own import fails. The call runs in the caller, uncached, with a
    warning, and returns what a plain call returns (not the import's
    error)."""
    oracle.write("data.txt", "a\nb\n")
    oracle.write(
        "work.py",
        """
        import os
        from casher import cached

        DATA = open("data.txt")
        TEXT = DATA.read()
        os.unlink("data.txt")

        @cached
        def f(n):
            return TEXT[:n]
        """,
    )
    oracle.write(
        "driver.py",
        """
        import _oracle
        import work
        print(repr(work.f(3)))
        _oracle.done(work.f)
        """,
    )
    step = oracle.run()
    oracle.check(step)
    assert any("importing its module again" in line for line in step.cached.casher_lines), oracle.report()


def test_a_file_the_import_rewrites_keeps_what_the_caller_wrote_since(oracle: Oracle) -> None:
    """The import opens a report with mode "w" and writes its header; the
    caller writes to it before and after calls of a function that does not
    touch it. The traced import opens it again without truncating it (its
    header lands on the caller's identical header), and the function hits
    on the second run."""
    oracle.write(
        "work.py",
        """
        from casher import cached

        REPORT = open("report.txt", "w")
        REPORT.write("header\\n")
        REPORT.flush()

        @cached
        def f(x):
            return x * 2
        """,
    )
    oracle.write(
        "driver.py",
        """
        import _oracle
        import work
        work.REPORT.write("before\\n")
        work.REPORT.flush()
        print(work.f(1))
        work.REPORT.write("after\\n")
        _oracle.done(work.f)
        """,
    )
    for i in range(2):
        step = oracle.run()
        oracle.check(step)
        if i and step.info is not None:
            assert step.misses("f") == 0, "expected a hit:\n" + oracle.report()


# What a call does through a file object of its module that is this
# process's own: the caller sees it at once, as after a plain call.
OWN_CHANNELS = {
    "a pipe the import made, read by the caller": (
        """
        import os
        from casher import cached

        _R, _W = os.pipe()
        READER = os.fdopen(_R, "rb", buffering=0)
        WRITER = os.fdopen(_W, "w")

        @cached
        def send(message):
            WRITER.write(message)
            WRITER.flush()
            return len(message)
        """,
        """
        import select
        import _oracle
        import work
        print(work.send("hello"))
        ready, _, _ = select.select([work.READER], [], [], 2)
        print("caller reads:", work.READER.read(5) if ready else "nothing")
        _oracle.done(work.send)
        """,
    ),
    "a line read from a data file, call after call": (
        """
        from casher import cached

        DATA = open("data.txt")

        @cached
        def line():
            return DATA.readline()
        """,
        """
        import _oracle
        import work
        print(repr(work.line()), repr(work.line()), repr(work.DATA.readline()), work.DATA.tell())
        _oracle.done(work.line)
        """,
    ),
    "a file opened for reading and writing": (
        """
        from casher import cached

        DATA = open("data.txt", "r+")

        @cached
        def line():
            return DATA.readline()
        """,
        """
        import _oracle
        import work
        print(repr(work.line()), repr(work.line()))
        work.DATA.write("X")
        work.DATA.close()
        print(open("data.txt").read())
        _oracle.done(work.line)
        """,
    ),
    "a temporary file the caller reads back": (
        """
        import tempfile
        from casher import cached

        SCRATCH = tempfile.TemporaryFile("w+")

        @cached
        def note(x):
            SCRATCH.write(f"{x}\\n")
            return x
        """,
        """
        import _oracle
        import work
        print(work.note(1), work.note(2))
        work.SCRATCH.seek(0)
        print(repr(work.SCRATCH.read()))
        _oracle.done(work.note)
        """,
    ),
    "an open file as a default argument": (
        """
        from casher import cached

        @cached
        def line(source=open("data.txt")):
            return source.readline()
        """,
        """
        import _oracle
        import work
        print(repr(work.line()), repr(work.line()))
        _oracle.done(work.line)
        """,
    ),
    "a lock taken on the module's log": (
        """
        import fcntl
        from casher import cached

        LOG = open("log.txt", "a")

        @cached
        def lock(x):
            fcntl.flock(LOG, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return x
        """,
        """
        import fcntl
        import _oracle
        import work
        print(work.lock(1))
        other = open("log.txt")
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("another description can lock it: the call's lock is gone")
        except BlockingIOError:
            print("the call's lock is held")
        _oracle.done(work.lock)
        """,
    ),
}


@pytest.mark.parametrize("channel", list(OWN_CHANNELS))
def test_what_a_call_does_through_the_processs_own_file_reaches_the_caller(oracle: Oracle, channel: str) -> None:
    module, driver = OWN_CHANNELS[channel]
    oracle.write("log.txt", "")
    oracle.write("data.txt", "line1\nline2\nline3\n")
    oracle.write("work.py", module)
    oracle.write("driver.py", driver)
    for _ in range(2):
        oracle.check(oracle.run())
