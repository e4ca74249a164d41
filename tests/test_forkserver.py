"""The traced fork server of `@cached` misses: one server per module imports
it once, each miss is a forked child that runs one call. Each test runs a
real script in a fresh interpreter (real pandas, the real tracer) and
compares with a plain call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def run(root: Path, cache_dir: Path, script: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, CASHER_DIR=str(cache_dir), CASHER_LOG="debug", **env)
    full.pop("CASHER_CHECK_REACH", None)
    proc = subprocess.run([sys.executable, script], check=False, cwd=root, env=full, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


SERVER_PID = "import casher._server as s; pids = lambda: sorted(v.native.pid for v in s._servers.values())"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    return root


def test_results_equal_plain_calls_and_one_server_serves_them(root: Path, cache_dir: Path) -> None:
    write(
        root / "steps.py",
        """
        import pandas as pd
        from casher import cached

        @cached
        def summarize(n: int) -> pd.DataFrame:
            print(f"summarizing {n}")
            df = pd.DataFrame({"k": [i % 3 for i in range(n)], "v": range(n)})
            return df.groupby("k").sum()

        @cached
        def tiny(x):
            return x + 1
        """,
    )
    write(
        root / "main.py",
        f"""
        import casher
        import steps
        {SERVER_PID}
        assert casher.warm(steps.tiny) and len(pids()) == 1, "warm starts the server before any miss"
        warmed = pids()
        for n in (10, 20, 30):
            got = steps.summarize(n)
            assert got.equals(steps.summarize.__casher_original__(n)), n
        assert [steps.tiny(i) for i in range(5)] == [1, 2, 3, 4, 5]
        assert steps.summarize.cache_info().misses == 3
        assert pids() == warmed, "the warmed server served every miss"
        print("servers", pids())
        """,
    )
    proc = run(root, cache_dir, "main.py")
    servers = [line for line in proc.stdout.splitlines() if line.startswith("servers")]
    assert len(eval(servers[0].split(" ", 1)[1])) == 1, proc.stderr
    assert proc.stdout.count("summarizing") == 6, "each miss prints live, plus the plain calls"
    assert "fresh interpreter" not in proc.stderr


def test_a_call_mutating_module_state_does_not_affect_the_next(root: Path, cache_dir: Path) -> None:
    write(
        root / "state.py",
        """
        import functools
        from casher import cached

        SEEN = []

        @functools.lru_cache(maxsize=None)
        def slow(x):
            SEEN.append(x)
            return x

        @cached
        def f(x):
            SEEN.append(x)
            slow(x)
            return len(SEEN), slow.cache_info().currsize
        """,
    )
    write(
        root / "main.py",
        """
        import state
        print([state.f(i) for i in range(4)])
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert proc.stdout.strip() == str([(2, 1)] * 4), proc.stderr


def test_caller_state_learned_equal_is_not_sent_but_a_later_change_is(root: Path, cache_dir: Path) -> None:
    # After the first call, the caller knows the server's fresh value of
    # TABLE equals its own and sends neither it nor a request to compare it;
    # once the caller changes TABLE, the new value must reach the child.
    write(
        root / "tables.py",
        """
        import pandas as pd
        from casher import cached

        TABLE = pd.DataFrame({"v": range(1000)})
        LIMIT = 3

        @cached
        def total(x):
            return int(TABLE.v.sum()) + x * LIMIT
        """,
    )
    write(
        root / "main.py",
        f"""
        import pandas as pd
        import tables
        {SERVER_PID}
        got = [tables.total(1), tables.total(2)]
        import casher._server as s
        (server,) = s._servers.values()
        assert ("tables", ("TABLE",)) in server.fresh, server.fresh
        tables.TABLE = pd.DataFrame({{"v": range(10)}})
        got.append(tables.total(3))
        tables.LIMIT = 100
        got.append(tables.total(4))
        tables.TABLE = pd.DataFrame({{"v": range(1000)}})
        got.append(tables.total(5))
        print(got, len(pids()))
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert proc.stdout.strip() == str([499503, 499506, 54, 445, 500000]) + " 1", proc.stderr


@pytest.mark.parametrize("later", ["server", "fresh"])
def test_an_import_time_input_changed_after_recording_is_a_miss_later(root: Path, cache_dir: Path, later: str) -> None:
    # The server's import-time inputs are converted once and reused by the
    # records of its later calls: those records must still hold them, so a
    # process started after the change (with a server or without) misses.
    write(root / "data.txt", "10\n")
    write(
        root / "imported.py",
        """
        from pathlib import Path
        from casher import cached

        BASE = int(Path("data.txt").read_text())

        @cached
        def f(x):
            return x + BASE
        """,
    )
    write(
        root / "main.py",
        """
        import sys
        import imported
        print([imported.f(int(x)) for x in sys.argv[1:]])
        """,
    )

    def main(*xs: int, **env: str) -> str:
        full = dict(os.environ, CASHER_DIR=str(cache_dir), CASHER_LOG="debug", **env)
        proc = subprocess.run([sys.executable, "main.py", *map(str, xs)], cwd=root, env=full, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    # Calls 2 and 3 are recorded with the conversions made for call 1.
    assert main(1, 2, 3) == "[11, 12, 13]"
    assert main(1, 2, 3) == "[11, 12, 13]"  # hits
    write(root / "data.txt", "20\n")
    env = {"CASHER_FORK_SERVER": "0"} if later == "fresh" else {}
    assert main(3, 2, 1, **env) == "[23, 22, 21]"


def test_an_import_time_input_changed_while_a_call_runs_is_never_a_hit_later(root: Path, cache_dir: Path) -> None:
    # The end of a call skips re-checking the server's inputs while its
    # inotify watch saw nothing: a change made outside the call while it
    # runs must still keep its result from ever being a hit for the new
    # content (the call ran with the content the server imported). The
    # call waits for a signal (not a file: that would be an input itself).
    write(root / "data.txt", "10\n")
    write(
        root / "imported.py",
        """
        import os, signal
        from pathlib import Path
        from casher import cached

        BASE = int(Path("data.txt").read_text())

        @cached
        def f(x, wait):
            if wait:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
                Path("started").write_text(str(os.getpid()))
                signal.sigwait({signal.SIGUSR1})
            return x + BASE
        """,
    )
    write(
        root / "main.py",
        """
        import os, signal, sys, threading
        from pathlib import Path
        import imported

        def meddle():
            while not Path("started").exists() or not Path("started").read_text():
                pass
            Path("data.txt").write_text("20\\n")
            os.kill(int(Path("started").read_text()), signal.SIGUSR1)

        got = [imported.f(1, False)] if sys.argv[1] == "meddle" else []  # the server's conversions are made
        threading.Thread(target=meddle, daemon=True).start()
        got.append(imported.f(2, True))
        print(got)
        """,
    )

    def main(arg: str) -> str:
        full = dict(os.environ, CASHER_DIR=str(cache_dir), CASHER_LOG="debug")
        proc = subprocess.run([sys.executable, "main.py", arg], cwd=root, env=full, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert main("meddle") == "[11, 12]"  # the second call ran with BASE = 10
    assert (root / "data.txt").read_text() == "20\n"
    (root / "started").unlink()
    # A new process must compute 2 + 20 (a hit would say 12).
    got = main("again")
    assert got == "[22]", got


def test_server_is_rebuilt_after_a_module_edit(root: Path, cache_dir: Path) -> None:
    write(root / "helper.py", "SCALE = 2\n")
    write(
        root / "edited.py",
        """
        import helper
        from casher import cached

        @cached
        def f(x):
            return x * helper.SCALE
        """,
    )
    write(
        root / "main.py",
        f"""
        import pathlib, time
        import edited
        {SERVER_PID}
        first = edited.f(1), edited.f(2)
        before = pids()
        pathlib.Path("helper.py").write_text("SCALE = 10\\n")
        second = edited.f(3), edited.f(1)
        # The caller still holds the SCALE it imported: a plain call here
        # uses it, and so does the cached one (the caller's state is sent).
        plain = edited.f.__casher_original__(3), edited.f.__casher_original__(1)
        print(first, second, second == plain, before != pids())
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert proc.stdout.strip() == "(2, 4) (6, 2) True True", proc.stderr
    assert "replacing the traced server" in proc.stderr


def test_no_server_survives_its_caller(root: Path, cache_dir: Path) -> None:
    write(
        root / "mod.py",
        """
        from casher import cached

        @cached
        def f(x):
            return x
        """,
    )
    write(
        root / "main.py",
        f"""
        import sys, time
        import mod
        {SERVER_PID}
        mod.f(len(sys.argv))  # a miss in each run
        print(pids()[0], flush=True)
        if sys.argv[1:] == ["wait"]:
            time.sleep(60)
        """,
    )
    proc = run(root, cache_dir, "main.py")
    pid = int(proc.stdout.split()[0])
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the server outlived a caller that exited"

    env = dict(os.environ, CASHER_DIR=str(cache_dir))
    caller = subprocess.Popen([sys.executable, "main.py", "wait"], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    pid = int(caller.stdout.readline())
    assert alive(pid)
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the server outlived a caller killed with SIGKILL"


@pytest.mark.parametrize("unsafe", ["thread", "polars"])
def test_fork_unsafe_imports_fall_back_to_a_fresh_interpreter(root: Path, cache_dir: Path, unsafe: str) -> None:
    if unsafe == "polars":
        pytest.importorskip("polars")
        prelude = "import polars as pl\nTHREADS = None\n"
    else:
        prelude = "import threading, time\nTHREADS = threading.Thread(target=time.sleep, args=(600,), daemon=True)\nTHREADS.start()\n"
    write(
        root / "unsafe.py",
        prelude
        + textwrap.dedent(
            """
            from casher import cached

            @cached
            def f(x):
                print("ran", x)
                return x * 3
            """
        ),
    )
    write(
        root / "main.py",
        f"""
        import unsafe
        {SERVER_PID}
        print([unsafe.f(i) for i in range(3)], pids())
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert proc.stdout.strip().splitlines()[-1] == "[0, 3, 6] []", proc.stderr
    assert proc.stdout.count("ran") == 3
    assert proc.stderr.count("misses run in a fresh interpreter each") == 1, proc.stderr


def test_numpy_and_pandas_imports_are_fork_safe(root: Path, cache_dir: Path) -> None:
    write(
        root / "np_mod.py",
        """
        import numpy as np
        import pandas as pd
        from casher import cached

        @cached
        def f(n):
            a = np.arange(n * 1000, dtype=float).reshape(n, 1000)
            return float((a @ a.T).sum()), int(pd.Series(range(n)).sum())
        """,
    )
    write(
        root / "main.py",
        f"""
        import np_mod
        {SERVER_PID}
        got = [np_mod.f(n) for n in (3, 4)]
        assert got == [np_mod.f.__casher_original__(n) for n in (3, 4)], got
        print(len(pids()))
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert proc.stdout.strip() == "1", proc.stderr


def test_two_processes_missing_the_same_key_compute_once(root: Path, cache_dir: Path) -> None:
    write(
        root / "slow.py",
        """
        import os, time
        from casher import cached

        @cached
        def f(x):
            # Inside the store's directory: never an input or output.
            with open(os.path.join(os.environ["CASHER_DIR"], "computed"), "a") as log:
                log.write("x")
            time.sleep(1.5)
            print("result", x)
            return x * 2
        """,
    )
    write(root / "main.py", "import slow\nprint(slow.f(21))\n")
    env = dict(os.environ, CASHER_DIR=str(cache_dir))
    env.pop("CASHER_CHECK_REACH", None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "main.py"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [o[0] for o in outs] == ["result 21\n42\n"] * 2, outs
    assert (cache_dir / "computed").read_text() == "x", "both processes computed the key"


def test_a_forked_caller_starts_its_own_server(root: Path, cache_dir: Path) -> None:
    write(
        root / "mp.py",
        """
        from casher import cached

        @cached
        def f(x):
            return x * 5
        """,
    )
    write(
        root / "main.py",
        f"""
        import multiprocessing, os
        import mp
        {SERVER_PID}

        def child(x):
            return mp.f(x), pids()

        if __name__ == "__main__":
            first = mp.f(1), pids()
            with multiprocessing.get_context("fork").Pool(1) as pool:
                got, theirs = pool.apply(child, (2,))
            print(first[0], got, mp.f(3), theirs != first[1] and len(theirs) == 1, pids() == first[1])
        """,
    )
    proc = run(root, cache_dir, "main.py", timeout=60)
    assert proc.stdout.split() == ["5", "10", "15", "True", "True"], proc.stderr


def test_fork_workers_record_after_the_parent_used_the_thread_pool(root: Path, cache_dir: Path) -> None:
    """The parent records a miss and hashes a large argument and a large
    input file (all on casher's thread pool); workers forked from it then
    hash, record and hit on their own, with results equal to plain calls.
    A forked process has none of its parent's pool threads: work sent to
    them would wait forever."""
    write(
        root / "big.py",
        """
        from casher import cached

        @cached
        def total(data: bytes, k: int) -> int:
            with open("big.bin", "rb") as f:
                content = f.read()
            return (sum(data[::4099]) + sum(content[::8191])) * k + len(data)
        """,
    )
    write(
        root / "main.py",
        """
        import multiprocessing
        import big

        DATA = bytes(range(251)) * (8 << 12)  # 8 MB: hashed on the pool

        def work(k):
            return big.total(DATA, k), big.total(DATA, 1)

        if __name__ == "__main__":
            with open("big.bin", "wb") as f:
                f.write(bytes(range(7, 256)) * (6 << 12))  # 6 MB: hashed on the pool
            first = big.total(DATA, 1)
            with multiprocessing.get_context("fork").Pool(2) as pool:
                got = pool.map(work, range(2, 6))
            plain = [(big.total.__casher_original__(DATA, k), first) for k in range(2, 6)]
            assert first == big.total.__casher_original__(DATA, 1)
            print(got == plain, big.total(DATA, 3) == plain[1][0], big.total.cache_info().misses)
        """,
    )
    proc = run(root, cache_dir, "main.py", timeout=120)
    assert proc.stdout.split() == ["True", "True", "1"], proc.stderr
    assert proc.stderr.count("total: miss ") == 5, "the parent and each worker recorded a miss"
    assert proc.stderr.count("total: hit ") == 5, proc.stderr


def test_import_time_fork_handlers_and_random_seed_answer_like_a_plain_call(root: Path, cache_dir: Path) -> None:
    """A served call is forked; a plain call is not. Fork handlers the module
    registers would run only in the served call (so such a module falls back
    to a fresh interpreter), and `random` reseeds itself in a forked child
    (so the server hands the child the state the import left)."""
    write(
        root / "seeded.py",
        """
        import os
        import random
        from casher import cached

        random.seed(1234)
        STATE = []
        if os.environ.get("HOOK"):
            os.register_at_fork(after_in_child=lambda: STATE.append("forked"))

        @cached
        def draw(x):
            return x, random.random(), list(STATE)
        """,
    )
    write(root / "main.py", "import seeded\nprint([seeded.draw(i) for i in range(3)])\n")
    plain = subprocess.run(
        [sys.executable, "-c", "import random; random.seed(1234); print([(i, random.random(), []) for i in range(3)])"],
        capture_output=True, text=True, check=True,
    )
    expected = eval(plain.stdout.strip())  # noqa: S307 - our own output
    for hook in ("", "1"):
        proc = run(root, cache_dir / hook, "main.py", HOOK=hook)
        draws = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own output
        # As in the plain call: the first draw is the seeded import's, and
        # each call leaves the generator advanced for the next.
        assert draws == expected, proc.stderr
        assert all(d[2] == [] for d in draws), proc.stderr
        if hook:
            assert "registered fork handlers" in proc.stderr, proc.stderr


def test_entries_coming_and_going_in_an_ancestor_directory_keep_the_server(root: Path, cache_dir: Path) -> None:
    """The server only `stat`ed the directories above the project (`/tmp`
    gets new entries all the time): a file created or removed there does
    not replace it; one changed in what it read does."""
    write(root / "lib.py", "from casher import cached\nFACTOR = 2\n\n@cached\ndef f(x):\n    return x * FACTOR\n")
    write(
        root / "main.py",
        f"""
        import os, pathlib, sys
        import lib
        {SERVER_PID}
        first = lib.f(1), pids()
        for i in range(3):
            pathlib.Path("..", f"noise-{{i}}.txt").write_text("x")
        os.remove(os.path.join("..", "noise-0.txt"))
        second = lib.f(2), pids()
        pathlib.Path("lib.py").write_text(pathlib.Path("lib.py").read_text().replace("FACTOR = 2", "FACTOR = 3"))
        third = lib.f(3), pids()
        print((first, second, third))
        """,
    )
    proc = run(root, cache_dir, "main.py")
    first, second, third = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own output
    assert (first[0], second[0], third[0]) == (2, 4, 6), proc.stderr
    assert first[1] == second[1], "entries coming and going above the project replaced the server:\n" + proc.stderr
    assert third[1] != second[1], "an edit of the module kept the old server:\n" + proc.stderr


def test_calls_placed_beside_the_tracer_see_the_cpus_of_plain_calls(root: Path, cache_dir: Path) -> None:
    """The server moves itself off the tracer's CPU and each call back
    beside it (`casher._placement`): calls in a row (each forked ahead,
    while the last ran) must still be told the caller's CPUs, and a call
    that chooses its own CPUs must get them, as plain calls in fresh
    processes do."""
    write(
        root / "cpus.py",
        """
        import os
        from casher import cached

        @cached
        def shown(x):
            return sorted(os.sched_getaffinity(0)), os.cpu_count(), x

        @cached
        def narrowed(x):
            before = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {before[-1]})
            return before, sorted(os.sched_getaffinity(0)), x
        """,
    )
    write(
        root / "main.py",
        """
        import os, pickle
        import cpus

        def plain(f, x):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(w, pickle.dumps(f.__casher_original__(x)))
                os._exit(0)
            os.close(w)
            with os.fdopen(r, "rb") as f_:
                value = pickle.loads(f_.read())
            os.waitpid(pid, 0)
            return value

        for i in range(4):
            for f in (cpus.shown, cpus.narrowed):
                expected = plain(f, i)
                assert f(i) == expected, (f.__name__, i, f(i), expected)
        print("same", sorted(os.sched_getaffinity(0)))
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert "same" in proc.stdout
    assert "fresh interpreter" not in proc.stderr, proc.stderr


def test_an_import_that_chose_the_callers_own_cpus_keeps_them_for_its_calls(root: Path, cache_dir: Path) -> None:
    """An import that sets its CPUs to the very ones it is shown (undoing
    an inherited pinning, as libraries do) has chosen them: its calls run
    on them for real, as plain calls in a fresh process do, and are not
    moved beside the tracer."""
    write(
        root / "widen.py",
        """
        import os
        os.sched_setaffinity(0, os.sched_getaffinity(0))
        from casher import cached

        @cached
        def where(x):
            with open("/proc/self/status") as f:
                real = [line.split()[1] for line in f if line.startswith("Cpus_allowed_list")][0]
            return sorted(os.sched_getaffinity(0)), real, x
        """,
    )
    write(
        root / "main.py",
        """
        import subprocess, sys
        import widen

        for x in (1, 1, 2, 3):
            plain = subprocess.run(
                [sys.executable, "-c", f"import widen; print(widen.where.__casher_original__({x}))"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            assert str(widen.where(x)) == plain, (widen.where(x), plain)
        print("same", plain)
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert "same" in proc.stdout
    assert "fresh interpreter" not in proc.stderr, proc.stderr


def test_a_call_is_told_the_cpus_a_plain_call_may_use(root: Path, cache_dir: Path) -> None:
    """The server and its calls run on the tracer's CPU (faster stops), but
    a call is told the CPUs of its caller: what sizes a thread pool (and so
    how a sum is split) is what a plain call would see."""
    write(
        root / "cpus.py",
        """
        import os
        import numpy as np
        from casher import cached

        @cached
        def cpus(x):
            return sorted(os.sched_getaffinity(0)), sorted(os.sched_getaffinity(os.getpid())), x
        """,
    )
    write(
        root / "main.py",
        """
        import os
        import cpus
        plain = cpus.cpus.__casher_original__(1)
        assert cpus.cpus(1) == plain, (cpus.cpus(1), plain)
        assert cpus.cpus(1) == plain, "a hit"
        print("cpus", plain)
        # The caller narrows its CPUs: the next call sees the narrower set.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        plain = cpus.cpus.__casher_original__(2)
        assert cpus.cpus(2) == plain, (cpus.cpus(2), plain)
        """,
    )
    proc = run(root, cache_dir, "main.py")
    assert "cpus" in proc.stdout
    assert "fresh interpreter" not in proc.stderr


def test_a_cached_function_goes_to_a_process_pool_by_reference(root: Path, cache_dir: Path) -> None:
    """A process pool pickles the function it runs by reference, as it
    would the plain function: the worker imports the module and calls the
    cached function there (a miss, then hits in later runs)."""
    write(
        root / "work.py",
        """
        from casher import cached

        @cached
        def f(x):
            return x * 10
        """,
    )
    write(
        root / "main.py",
        """
        import pickle
        from concurrent.futures import ProcessPoolExecutor
        import work

        assert pickle.loads(pickle.dumps(work.f)) is work.f
        with ProcessPoolExecutor(2) as pool:
            print("results", list(pool.map(work.f, [1, 2, 3])))
        """,
    )
    for _ in range(2):
        proc = run(root, cache_dir, "main.py")
        assert "results [10, 20, 30]" in proc.stdout, proc.stderr
