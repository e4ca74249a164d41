"""`@cached` end to end, with real numpy, pandas and polars, the real native
module, and a real traced child process."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh project directory on sys.path; returns (dir, import_module)."""
    root = (tmp_path / "proj").resolve()
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(root)
    loaded: list[str] = []

    def write(relative: str, source: str) -> Path:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def load(name: str):
        importlib.invalidate_caches()
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]
        loaded.append(name)
        return importlib.import_module(name)

    yield root, write, load
    for name in loaded:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            sys.modules.pop(mod, None)


def unique() -> str:
    return "m_" + uuid.uuid4().hex[:8]


def test_miss_then_hit_replays_output_restores_files_and_returns(project, capsys) -> None:
    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        from pathlib import Path
        from casher import cached

        @cached
        def step(n: int, out: Path) -> dict:
            print(f"computing {n}")
            print("warning!", file=__import__("sys").stderr)
            out.write_text("x" * n)
            return {"n": n, "squares": [i * i for i in range(n)]}
        """,
    )
    mod = load(name)
    out = root / "result.txt"
    first = mod.step(5, out)
    captured = capsys.readouterr()
    assert captured.out == "computing 5\n" and captured.err == "warning!\n"
    assert mod.step.cache_info()["misses"] == 1
    out.unlink()
    second = mod.step(5, out)
    captured = capsys.readouterr()
    assert second == first == {"n": 5, "squares": [0, 1, 4, 9, 16]}
    assert captured.out == "computing 5\n" and captured.err == "warning!\n", "replayed through sys.stdout/stderr"
    assert out.read_text() == "xxxxx", "the written file is restored"
    info = mod.step.cache_info()
    assert (info["hits"], info["misses"], info["entries"]) == (1, 1, 1)
    assert mod.step.explain(5, out) == "hit"
    assert mod.step(n=5, out=out) == first and mod.step.cache_info()["hits"] == 2, "f(1) and f(n=1) are one call"
    assert mod.step.cache_clear() == 1
    assert mod.step.explain(5, out).startswith("miss")


def test_code_two_packages_deep(project) -> None:
    root, write, load = project
    pkg = unique()
    write(f"{pkg}/__init__.py", "")
    write(f"{pkg}/sub/__init__.py", "from .helpers import scale\n")
    helpers = write(f"{pkg}/sub/helpers.py", "def scale(x):\n    return x * 2\n")
    name = unique()
    write(
        f"{name}.py",
        f"""
        from casher import cached
        from {pkg}.sub import scale

        @cached
        def f(x: int) -> int:
            return scale(x) + 1
        """,
    )
    mod = load(name)
    assert mod.f(3) == 7
    assert mod.f(3) == 7 and mod.f.cache_info()["hits"] == 1
    # Formatting only (black-style rewrite): still a hit.
    helpers.write_text('def scale(x):\n    """Doubles."""\n    # comment\n    return (x * 2)\n')
    assert mod.f.explain(3) == "hit"
    subprocess.run([sys.executable, "-m", "black", "-q", "--line-length", "40", str(helpers)], check=True)
    assert mod.f.explain(3) == "hit"
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", "--config", "format.quote-style='single'", str(helpers)], check=True)
    assert mod.f.explain(3) == "hit"
    # Logic: a miss naming the file.
    helpers.write_text("def scale(x):\n    return x * 3\n")
    reason = mod.f.explain(3)
    assert reason.startswith("miss") and "helpers.py" in reason, reason


def test_argument_changes(project) -> None:
    import numpy as np
    import pandas as pd
    import polars as pl

    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        from casher import cached

        @cached
        def size(value) -> str:
            return type(value).__name__
        """,
    )
    mod = load(name)
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    frame = pl.DataFrame({"a": [1, 2, 3], "s": ["x", "y", None]})
    arr = np.arange(12.0).reshape(3, 4)
    for value in [1, 1.5, "s", b"b", (1, 2), [1, 2], {"k": 1}, {1, 2}, Path("p"), df, frame, arr]:
        mod.size(value)
    misses = mod.size.cache_info()["misses"]
    assert misses == 12
    # Equal values, built differently: hits.
    mod.size(pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}).copy())
    mod.size(pl.concat([frame.slice(0, 1), frame.slice(1, 2)], rechunk=False))
    mod.size(np.asfortranarray(arr))
    mod.size({"k": 1})
    assert mod.size.cache_info()["misses"] == misses
    # Any change: misses.
    mod.size(df.assign(b=[0.5, 1.5, 2.0]))
    mod.size(frame.rename({"s": "t"}))
    assert mod.size.cache_info()["misses"] == misses + 2


def test_unsupported_argument_names_the_parameter_and_ignore_works(project) -> None:
    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        import threading
        from casher import cached

        @cached
        def f(x: int, lock) -> int:
            return x

        @cached(ignore=["lock"])
        def g(x: int, lock) -> int:
            return x + 1
        """,
    )
    mod = load(name)
    import threading

    import logging

    with pytest.raises(TypeError, match=r"argument 'lock'.*ignore=\['lock'\]"):
        mod.f(1, threading.Lock())
    # An ignored argument is left out of the key (a logger: picklable, not hashable).
    assert mod.g(1, logging.getLogger("a")) == 2
    assert mod.g(1, logging.getLogger("b")) == 2 and mod.g.cache_info()["hits"] == 1
    # One that cannot even be sent to the traced process runs uncached.
    assert mod.g(2, threading.Lock()) == 3


def test_file_read_by_polars_natively(project) -> None:
    import polars as pl

    root, write, load = project
    (root / "data.csv").write_text("a,b\n1,2\n3,4\n")
    name = unique()
    write(
        f"{name}.py",
        """
        import polars as pl
        from casher import cached

        @cached
        def total(path: str) -> int:
            return int(pl.read_csv(path)["a"].sum())
        """,
    )
    mod = load(name)
    pl.DataFrame({"warm": [1, 2]}).sum()  # the thread pool is started in the caller
    assert mod.total("data.csv") == 4
    assert mod.total("data.csv") == 4 and mod.total.cache_info()["hits"] == 1
    (root / "data.csv").write_text("a,b\n10,2\n3,4\n")
    assert "data.csv changed" in mod.total.explain("data.csv")
    assert mod.total("data.csv") == 13


def test_absent_file_and_directory_listing(project) -> None:
    root, write, load = project
    (root / "inputs").mkdir()
    (root / "inputs" / "1.txt").write_text("1")
    name = unique()
    write(
        f"{name}.py",
        """
        import os
        from casher import cached

        @cached
        def scan(folder: str) -> list:
            override = os.path.exists("override.cfg")
            return sorted(os.listdir(folder)) + [override]
        """,
    )
    mod = load(name)
    assert mod.scan("inputs") == ["1.txt", False]
    assert mod.scan("inputs") == ["1.txt", False] and mod.scan.cache_info()["hits"] == 1
    (root / "override.cfg").write_text("")
    assert mod.scan("inputs") == ["1.txt", True]
    (root / "inputs" / "2.txt").write_text("2")
    assert mod.scan("inputs") == ["1.txt", "2.txt", True]


def test_env_vars_read_and_selected_are_inputs_others_are_not(project, monkeypatch) -> None:
    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        import os
        from casher import cached

        @cached(env=["NATIVE"])
        def mode() -> str:
            return os.environ.get("MODE", "") + os.environ.get("NOISE", "")
        """,
    )
    mod = load(name)
    monkeypatch.setenv("MODE", "a")
    monkeypatch.setenv("NOISE", "1")
    monkeypatch.setenv("UNREAD", "x")
    assert mod.mode() == "a1"
    monkeypatch.setenv("UNREAD", "y")
    assert mod.mode() == "a1" and mod.mode.cache_info().hits == 1, "a variable the call did not read does not invalidate"
    monkeypatch.setenv("NOISE", "2")
    assert mod.mode() == "a2", "a variable read through os.environ is an input without env="
    monkeypatch.setenv("NATIVE", "1")
    assert mod.mode() == "a2" and mod.mode.cache_info().misses == 3, "env= still keys variables read by native code"


def test_exceptions_are_reraised_and_not_cached(project) -> None:
    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        from casher import cached

        @cached
        def boom(x: int) -> int:
            raise ValueError(f"bad value {x}")
        """,
    )
    mod = load(name)
    with pytest.raises(ValueError, match="bad value 3") as info:
        mod.boom(3)
    assert "in the traced process" in str(info.value.__cause__)
    assert "raise ValueError" in str(info.value.__cause__)
    with pytest.raises(ValueError):
        mod.boom(3)
    assert mod.boom.cache_info()["misses"] == 2


def test_main_script_functions_and_two_processes(project, tmp_path) -> None:
    root, write, load = project
    script = write(
        "pipeline.py",
        """
        import sys
        from casher import cached

        class Point:
            def __init__(self, x):
                self.x = x

        @cached
        def make(x: int) -> Point:
            print("making", x)
            return Point(x * 10)

        if __name__ == "__main__":
            print("main ran", make(int(sys.argv[1])).x)
        """,
    )
    env = dict(os.environ, CASHER_LOG="debug")
    runs = [
        subprocess.Popen([sys.executable, str(script), "4"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == "making 4\nmain ran 40\n", out
    third = subprocess.run([sys.executable, str(script), "4"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert third.stdout == "making 4\nmain ran 40\n"
    assert "hit" in third.stderr, third.stderr


def test_polars_frames_cross_to_the_child_intact(project) -> None:
    import polars as pl

    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        import polars as pl
        from casher import cached

        @cached
        def describe(df: pl.DataFrame, s: pl.Series) -> tuple:
            return (df.columns, df.height, float(df["x"].sum()), s.name, s.to_list())
        """,
    )
    mod = load(name)
    df = pl.DataFrame({"x": [1.5, 2.5], "s": ["a", None]})
    assert mod.describe(df, pl.Series("k", [1, 2])) == (["x", "s"], 2, 4.0, "k", [1, 2])


def test_closures_run_in_the_traced_child_by_value(project, caplog, capsys) -> None:
    from casher import cached

    root, write, load = project
    (root / "data.txt").write_text("abc")

    def make(offset: int):
        @cached
        def inner(x: int) -> int:
            print(f"inner {x}")
            return x + offset + len(open("data.txt").read())

        return inner

    f = make(10)
    assert f(1) == 14
    assert capsys.readouterr().out == "inner 1\n"
    assert f(1) == 14 and f.cache_info().hits == 1, "the second call is a hit"
    assert capsys.readouterr().out == "inner 1\n", "output replayed"
    assert not [r for r in caplog.records if "runs in-process" in r.getMessage()], "sent by value, not run in-process"
    # A different closure value is a different key; a changed file read is a miss.
    g = make(20)
    assert g(1) == 24 and g.cache_info().misses == 1
    (root / "data.txt").write_text("abcd")
    assert f(1) == 15 and f.cache_info().misses == 2


def test_check_reach_flags_what_static_analysis_missed_and_the_safety_net_holds(project, caplog) -> None:
    root, write, load = project
    name = unique()
    helper = write(f"helper_{name}.py", "def h():\n    return 1\n")
    write(
        f"{name}.py",
        f"""
        import importlib
        from casher import cached

        @cached
        def f() -> int:
            module = importlib.import_module("helper_" + "{name}")
            return module.h()
        """,
    )
    mod = load(name)
    assert mod.f() == 1
    flagged = [r.getMessage() for r in caplog.records if "CASHER_CHECK_REACH" in r.getMessage()]
    assert flagged and "helper_" in flagged[0], flagged
    caplog.clear()  # expected here: the autouse check must not fail this test
    assert mod.f() == 1 and mod.f.cache_info()["hits"] == 1
    # The file the child really imported is a whole-module input: editing it misses.
    helper.write_text("def h():\n    return 2\n")
    assert mod.f() == 2
    caplog.clear()


def test_calls_travel_through_memfd_or_files_and_leave_nothing_behind(project, cache_dir, monkeypatch) -> None:
    import numpy as np

    root, write, load = project
    name = unique()
    write(
        f"{name}.py",
        """
        import numpy as np
        from casher import cached

        @cached
        def total(a, scale=1):
            return float(a.sum()) * scale
        """,
    )
    mod = load(name)
    big = np.arange(1_000_000, dtype=np.float64)  # out-of-band buffer
    assert mod.total(big) == float(big.sum())
    monkeypatch.delattr("os.memfd_create")  # the file fallback
    assert mod.total(big, scale=2) == 2 * float(big.sum())
    assert mod.total.cache_info().misses == 2
    assert not list((cache_dir / "calls").glob("*")), "no call file left behind"
