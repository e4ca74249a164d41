"""How a call served by the fork server ends: as a plain run's interpreter
would end for it (threads the call left running are waited for, what it
wrote to files still open is flushed), and nothing the server's own import
did becomes the call's. Each test runs the same script with casher and
without it on identical copies (tests/cached_oracle.py), twice: a miss,
then a hit."""

from __future__ import annotations

from pathlib import Path

from cached_oracle import Twin


def files(base: Path, *names: str) -> dict[str, str | None]:
    return {n: (base / n).read_text() if (base / n).exists() else None for n in names}


def test_a_thread_left_running_and_a_file_left_open_end_as_at_exit(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import threading
                import time

                from casher import cached

                KEEP = []

                @cached
                def f(n):
                    def later():
                        time.sleep(0.2)
                        print("thread done", n, flush=True)
                        with open(f"thread_{n}.txt", "w") as out:
                            out.write("from the thread")
                    threading.Thread(target=later).start()
                    handle = open(f"leaked_{n}.txt", "w")
                    handle.write(f"leaked {n}")
                    KEEP.append(handle)
                    print("returning", n)
                    return n
            """,
            "main.py": """
                import mod
                print("value", mod.f(3))
            """,
        },
    )
    for _ in range(2):
        plain = twin.run("plain", "main.py")
        cached = twin.run("cached", "main.py")
        assert plain.code == cached.code == 0, cached.err
        # The thread's line comes at the call's end, not at the caller's:
        # the same lines, in another order.
        assert sorted(cached.out.splitlines()) == sorted(plain.out.splitlines()), (plain.out, cached.out)
        names = ("thread_3.txt", "leaked_3.txt")
        assert files(twin.cached, *names) == files(twin.plain, *names) == {"thread_3.txt": "from the thread", "leaked_3.txt": "leaked 3"}
    assert ": hit " in cached.err, cached.err


def test_what_the_servers_import_made_is_not_the_calls(tmp_path: Path, cache_dir: Path) -> None:
    """A shared memory segment made at import time: the caller's own import
    made its own, so a call neither outputs nor restores the server's (a
    hit used to refuse to restore it outside the allowed roots and run the
    call uncached, saying so). The server's segment is left behind (its
    import's doing, see docs/limitations.md), so the second run misses."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                from multiprocessing import shared_memory

                from casher import cached

                SEGMENT = shared_memory.SharedMemory(create=True, size=4096)

                @cached
                def f(k):
                    return k * 2
            """,
            "main.py": """
                import mod
                print(mod.f(21))
                mod.SEGMENT.close()
                mod.SEGMENT.unlink()
            """,
        },
    )
    for _ in range(2):
        cached = twin.check("main.py")
        assert "uncached" not in cached.err and "refusing" not in cached.err, cached.err


def test_the_imports_exit_handlers_run_at_the_callers_exit_not_after_each_call(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import atexit
                import os

                from casher import cached

                with open("app.lock", "w") as f:
                    f.write("locked")
                atexit.register(lambda: os.path.exists("app.lock") and os.remove("app.lock"))

                @cached
                def f(n):
                    return n * 2
            """,
            "main.py": """
                import os
                import mod
                print(mod.f(1), os.path.exists("app.lock"))
            """,
        },
    )
    twin.check("main.py")
    twin.check("main.py")


def test_a_compressed_file_left_open_is_finished_and_a_thread_waiting_for_the_caller_does_not_hang(tmp_path: Path, cache_dir: Path) -> None:
    """A gzip stream kept open gets its trailer, as at exit. A thread
    waiting for what the caller does after the call cannot get it in the
    call's process: it is waited for a while, and the call is not cached."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import gzip
                import threading

                from casher import cached

                KEEP = []
                EVENT = threading.Event()

                @cached
                def packed(n):
                    stream = gzip.open(f"data_{n}.gz", "wt")
                    stream.write("x" * 1000)
                    KEEP.append(stream)
                    return n

                @cached
                def waits(n):
                    threading.Thread(target=EVENT.wait).start()
                    return n
            """,
            "main.py": """
                import gzip
                import mod
                print(mod.packed(1))
                print(mod.waits(2))
                mod.EVENT.set()
            """,
            "check.py": """
                import gzip
                print(len(gzip.open("data_1.gz", "rt").read()))
            """,
        },
    )
    cached = twin.check("main.py")
    assert "not cached: the call left threads running" in cached.err, cached.err
    twin.check("check.py")
    second = twin.check("main.py")
    assert "packed: hit" in second.err and "waits: miss" in second.err, second.err


def test_a_log_the_import_opens_does_not_make_every_run_miss(tmp_path: Path, cache_dir: Path) -> None:
    """`logging.basicConfig(filename=...)` at import: the caller logs every
    run, so the file grows; the server's import only appended to it (never
    read it), so its old content is no input of the call."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import logging

                from casher import cached

                logging.basicConfig(filename="app.log", level=logging.INFO, format="%(message)s")
                log = logging.getLogger("mod")

                @cached
                def f(n):
                    return n * 2
            """,
            "main.py": """
                import mod
                mod.log.info("starting")
                print(mod.f(1))
            """,
        },
    )
    twin.check("main.py")
    twin.check("main.py", hits=1)
    twin.check("main.py", hits=1)
    assert files(twin.cached, "app.log") == files(twin.plain, "app.log") == {"app.log": "starting\n" * 3}


def test_a_call_that_ends_its_process_ends_the_callers(tmp_path: Path, cache_dir: Path) -> None:
    """`os._exit`, a signal the call sends itself, a crash in native code: a
    plain call ends its caller's process so, with that status, skipping its
    clean-up and what follows; a cached call's miss does the same (nothing
    is cached), with a fork server and with a fresh interpreter per miss."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import ctypes
                import os
                import signal

                from casher import cached

                @cached
                def leave(how):
                    print("before", how, flush=True)
                    if how == "exit":
                        os._exit(7)
                    if how == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    if how == "crash":
                        ctypes.string_at(0)
                    return how
            """,
            "main.py": """
                import atexit
                import sys
                import mod

                atexit.register(print, "caller's exit handler")
                print("value", mod.leave(sys.argv[1]), flush=True)
                print("after the call")
            """,
        },
    )
    for how, code in (("exit", 7), ("kill", -9), ("crash", -11), ("stay", 0)):
        for env in ({}, {"CASHER_FORK_SERVER": "0"}):
            for _ in range(2):
                plain = twin.run("plain", "main.py", how, env=env)
                cached = twin.run("cached", "main.py", how, env=env)
                assert plain.code == code, plain.err
                assert (cached.code, cached.out) == (plain.code, plain.out), (how, env, plain, cached)
        if how != "stay":
            assert ": hit " not in cached.err, cached.err


def test_what_runs_at_a_calls_end_and_ends_the_process_ends_the_callers_at_its_end(tmp_path: Path, cache_dir: Path) -> None:
    """An exit handler the call registers, or a thread it leaves, that ends
    the process: a plain run goes on after the call and ends so at its own
    end. The served call returns its value (not cached: what ran at its end
    ran in the child, before the caller's later lines, so the lines are
    compared as sets) and the caller ends with that status at its exit."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import atexit
                import os
                import threading
                import time

                from casher import cached

                def bye(code):
                    print("bye", code, flush=True)
                    os._exit(code)

                @cached
                def f(how, x):
                    with open(f"result-{x}.txt", "w") as out:
                        out.write(str(x * 2))
                    if how == "atexit":
                        atexit.register(bye, 3)
                    if how == "thread":
                        threading.Thread(target=lambda: (time.sleep(0.3), bye(4))).start()
                    return x * 2
            """,
            "main.py": """
                import sys
                import time
                import mod

                for x in range(2):
                    print("value", mod.f(sys.argv[1], x), flush=True)
                time.sleep(1)
                print("after", flush=True)
            """,
        },
    )
    for how, code in (("atexit", 3), ("thread", 4)):
        plain = twin.run("plain", "main.py", how)
        cached = twin.run("cached", "main.py", how)
        assert plain.code == code, plain.err
        names = ("result-0.txt", "result-1.txt")
        assert files(twin.cached, *names) == files(twin.plain, *names)
        if how == "atexit":  # the thread's exit comes before "after" in a plain run
            assert cached.code == plain.code, (plain, cached)
            assert sorted(set(cached.out.splitlines())) == sorted(set(plain.out.splitlines())), (plain, cached)
        else:
            assert cached.code == plain.code, (plain, cached)
            assert "value 0" in cached.out and "value 2" in cached.out, cached
