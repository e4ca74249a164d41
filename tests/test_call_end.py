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
