"""`@cached` on functions that cannot be imported by name, on methods, and
what the caller sees (output, log records), compared with plain calls in
fresh interpreters (tests/cached_oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cached_oracle import Twin

# -- functions sent by value ---------------------------------------------------

CODE = """
from casher import cached

def g(x):
    return x * 2

f = cached(lambda x: g(x) + 1)
print(f(10))
"""


@pytest.mark.parametrize("how", ["-c", "exec", "stdin"])
def test_functions_without_a_file_are_keyed_by_their_constants(tmp_path: Path, cache_dir: Path, how: str) -> None:
    twin = Twin(tmp_path, {"code.txt": CODE, "run_exec.py": "exec(open('code.txt').read())\n"})

    def check(hits: int) -> None:
        text = (twin.cached / "code.txt").read_text()
        if how == "-c":
            twin.check("-c", text, hits=hits)
        elif how == "exec":
            twin.check("run_exec.py", hits=hits)
        else:
            twin.check("-", stdin=text, hits=hits)

    check(0)
    check(1)
    twin.edit("code.txt", "x * 2", "x * 3")
    check(0)
    twin.edit("code.txt", "+ 1)", "+ 2)")
    check(0)
    check(1)


def test_closures_are_traced_in_the_child(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import os
                import numpy as np
                from casher import cached

                def make(offset):
                    @cached
                    def inner(x):
                        flag = os.path.exists("flag")
                        data = np.fromfile("data.bin", dtype=np.uint8)
                        return int(data.sum()) + x + offset + flag
                    return inner

                print(make(10)(1), make(20)(1))
            """
        },
    )
    for base in (twin.plain, twin.cached):
        (base / "data.bin").write_bytes(bytes([1, 2, 3]))
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=2)
    for base in (twin.plain, twin.cached):
        (base / "flag").write_text("")
    twin.check("main.py", hits=0)
    for base in (twin.plain, twin.cached):
        (base / "data.bin").write_bytes(bytes([9, 9, 9]))
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=2)
    twin.edit("main.py", "x + offset", "x * offset")
    twin.check("main.py", hits=0)


def test_main_classes_reach_the_child_with_functions_sent_by_value(tmp_path: Path, cache_dir: Path) -> None:
    code = """
from dataclasses import dataclass
from casher import cached

@dataclass
class Point:
    x: int
    y: int

norm = cached(lambda p: Point(p.x * 2, p.y * 2))
print(norm(Point(1, 2)))
"""
    twin = Twin(tmp_path, {})
    twin.check("-c", code, hits=0)
    twin.check("-c", code, hits=1)


def test_unserializable_functions_run_in_process_keyed_by_closure_values(tmp_path: Path, cache_dir: Path) -> None:
    code = """
import threading
from casher import cached

lock = threading.Lock()
factor = {factor}

def make():
    held = lock
    @cached
    def f(x):
        with held:
            return x * factor
    return f

print(make()(5))
"""
    twin = Twin(tmp_path, {})
    first = twin.check("-c", code.format(factor=2), hits=0)
    assert "runs in-process" in first.err, first.err
    twin.check("-c", code.format(factor=2), hits=1)
    twin.check("-c", code.format(factor=3), hits=0)


# -- output and logs ------------------------------------------------------------

def test_import_time_output_is_not_replayed_and_log_records_reach_the_callers_handlers(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "work.py": """
                import logging
                from casher import cached
                print("importing work")
                log = logging.getLogger("app.work")

                @cached
                def step(x):
                    log.info("step %d", x)
                    log.warning("careful with %s", x)
                    log.debug("hidden")
                    print("computing", x)
                    return x + 1
            """,
            "main.py": """
                import logging, sys
                logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
                import work
                print(work.step(1))
            """,
        },
    )
    first = twin.check("main.py", hits=0)
    assert first.out.count("importing work") == 1
    assert "INFO app.work step 1" in first.out and "WARNING app.work careful with 1" in first.out
    assert "hidden" not in first.out
    twin.check("main.py", hits=1)


# -- methods --------------------------------------------------------------------

def test_methods_key_the_instance_and_unhashable_instances_get_a_safe_fix(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "model.py": """
                import threading
                from dataclasses import dataclass
                from casher import cached

                @dataclass
                class Scaler:
                    factor: int

                    @cached
                    def apply(self, x):
                        return x * self.factor

                class Opaque:
                    def __init__(self):
                        self.lock = threading.Lock()

                    @cached
                    def apply(self, x):
                        return x

                class Keyed:
                    def __init__(self, factor):
                        self.factor = factor

                    def __casher_key__(self):
                        return self.factor

                    @cached
                    def apply(self, x):
                        return x * self.factor
            """,
            "main.py": """
                from model import Scaler, Keyed
                print(Scaler(2).apply(5), Scaler(3).apply(5), Keyed(4).apply(5), Keyed(5).apply(5))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=4)
    bad = twin.run("cached", "-c", "from model import Opaque; Opaque().apply(1)")
    assert bad.code != 0
    assert "dataclass" in bad.err and "__casher_key__" in bad.err and "ignore=" not in bad.err, bad.err


# -- import decisions ----------------------------------------------------------------

def test_new_files_in_a_package_only_invalidate_when_they_could_shadow_an_import(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/helpers.py": "def scale(x):\n    return x * 2\n",
            "main.py": """
                from casher import cached

                @cached
                def f(x):
                    from pkg import helpers
                    return helpers.scale(x)

                print(f(2))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)
    twin.write("pkg/unrelated.py", "X = 1\n")
    twin.write("pkg/data.csv", "a,b\n")
    twin.write("notes.txt", "hello\n")
    twin.check("main.py", hits=1)
    # A package directory named like the module, earlier in the search: shadows it.
    twin.write("pkg/helpers/__init__.py", "def scale(x):\n    return x * 10\n")
    twin.check("main.py", hits=0)


def test_python_dash_m_with_relative_imports(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/util.py": "def inc(x):\n    return x + 1\n",
            "app/main.py": """
                from casher import cached
                from .util import inc

                @cached
                def f(x):
                    return inc(x) * 2

                if __name__ == "__main__":
                    print(f(3))
            """,
        },
    )
    twin.check("-m", "app.main", hits=0)
    twin.check("-m", "app.main", hits=1)
    twin.edit("app/util.py", "x + 1", "x + 2")
    twin.check("-m", "app.main", hits=0)


# -- small things ---------------------------------------------------------------

def test_cached_called_with_a_function_keeps_its_options(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    import casher

    def mode() -> str:
        return "x"

    wrapped = casher.cached(mode, env=["MODE_X"], ignore=[])
    assert wrapped._env == ["MODE_X"]
    info = wrapped.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (0, 0, None)
    assert info["hits"] == 0 and isinstance(info, tuple)


def test_native_stub_covers_every_exported_name() -> None:
    import ast

    from casher import _native

    stub = Path(__file__).resolve().parent.parent / "python" / "casher" / "_native.pyi"
    tree = ast.parse(stub.read_text())
    declared = {
        getattr(node, "name", None) or getattr(getattr(node, "target", None), "id", None)
        for node in tree.body
    }
    exported = {n for n in dir(_native) if not n.startswith("_") or n == "__version__"}
    assert exported <= declared, exported - declared
    all_names = next(n for n in tree.body if isinstance(n, ast.AnnAssign | ast.Assign) and "__all__" in ast.unparse(n))
    assert set(ast.literal_eval(all_names.value)) == exported


def test_a_function_sent_by_value_that_reads_an_open_file_of_the_process_runs_in_it(tmp_path: Path, cache_dir: Path) -> None:
    """`python -c` defines a file and a function reading a line from it: a
    copy sent by value would start at the same line on every call (and hit
    on it); the call runs in the caller, uncached, and reads on."""
    code = """
from casher import cached

DATA = open("data.txt")

@cached
def line():
    return DATA.readline()

print(repr(line()), repr(line()), repr(DATA.readline()))
"""
    twin = Twin(tmp_path, {"data.txt": "line1\nline2\nline3\n"})
    twin.check("-c", code, hits=0)
    twin.check("-c", code, hits=0)
