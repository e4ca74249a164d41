"""`@cached` gives the answer a plain call gives, where the answer depends
on what only the run shows: code reached at run time, the caller's state,
environment variables, the working directory. Each test runs the same
script with casher and without it in fresh interpreters on identical
copies (tests/cached_oracle.py), then changes one thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cached_oracle import Twin

# -- code reached only at run time ----------------------------------------

RUNTIME_CODE = {
    "singledispatch": (
        {
            "fmt.py": """
                import functools

                @functools.singledispatch
                def fmt(x):
                    return "any"

                @fmt.register(int)
                def _(x):
                    return f"int {x * 2}"
            """,
            "main.py": """
                from casher import cached
                from fmt import fmt

                @cached
                def show(x):
                    return fmt(x)

                print(show(3))
            """,
        },
        ("fmt.py", "x * 2", "x * 5"),
    ),
    "decorator-registry": (
        {
            "handlers.py": """
                HANDLERS = {}

                def register(name):
                    def wrap(f):
                        HANDLERS[name] = f
                        return f
                    return wrap

                @register("double")
                def double(x):
                    return x * 2
            """,
            "main.py": """
                from casher import cached
                import handlers

                @cached
                def apply(name, x):
                    return handlers.HANDLERS[name](x)

                print(apply("double", 4))
            """,
        },
        ("handlers.py", "x * 2", "x * 7"),
    ),
    "subclasses": (
        {
            "shapes.py": """
                class Base:
                    pass

                class Square(Base):
                    def area(self):
                        return 4
            """,
            "main.py": """
                from casher import cached
                from shapes import Base

                @cached
                def areas():
                    return [cls().area() for cls in Base.__subclasses__()]

                print(areas())
            """,
        },
        ("shapes.py", "return 4", "return 9"),
    ),
    "dataclass-argument": (
        {
            "model.py": """
                from dataclasses import dataclass

                @dataclass
                class Rect:
                    w: int
                    h: int

                    def area(self):
                        return self.w * self.h
            """,
            "main.py": """
                from casher import cached
                from model import Rect

                @cached
                def measure(shape):
                    return shape.area()

                print(measure(Rect(2, 3)))
            """,
        },
        ("model.py", "self.w * self.h", "self.w + self.h"),
    ),
    "init-subclass": (
        {
            "plugins.py": """
                class Plugin:
                    registry = []

                    def __init_subclass__(cls, **kw):
                        super().__init_subclass__(**kw)
                        Plugin.registry.append(cls)

                class Upper(Plugin):
                    def run(self, s):
                        return s.upper()
            """,
            "main.py": """
                from casher import cached
                import plugins

                @cached
                def run_all(s):
                    return [p().run(s) for p in plugins.Plugin.registry]

                print(run_all("abc"))
            """,
        },
        ("plugins.py", "s.upper()", "s.title()"),
    ),
}


@pytest.mark.parametrize("case", sorted(RUNTIME_CODE))
def test_code_reached_only_at_run_time_is_covered(tmp_path: Path, cache_dir: Path, case: str) -> None:
    files, (name, old, new) = RUNTIME_CODE[case]
    twin = Twin(tmp_path, files)
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)
    twin.edit(name, old, new)
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)


# -- the caller's state ------------------------------------------------------

CALLER_STATE = {
    "global-changed-at-run-time": """
        from casher import cached
        SCALE = 2

        @cached
        def f(x):
            return x * SCALE

        globals()["SCALE"] = 3  # rebinding as a statement is the analyzer's "bound twice" case
        print(f(5))
    """,
    "monkeypatched-helper": """
        from casher import cached
        import helper

        @cached
        def f(x):
            return helper.scale(x)

        helper.scale = lambda x: x + 100
        print(f(5))
    """,
    "global-set-under-main": """
        import sys
        from casher import cached

        @cached
        def f(x):
            return x * THRESHOLD

        if __name__ == "__main__":
            THRESHOLD = int(sys.argv[1])
            print(f(5))
    """,
    "mutated-default": """
        from casher import cached

        @cached
        def f(x, seen=[]):
            return x + len(seen)

        getattr(f, "__wrapped__", f).__defaults__[0].extend([1, 2])
        print(f(5))
    """,
    "helper-default-mutated": """
        from casher import cached

        def g(x, acc=[]):
            return x + sum(acc)

        @cached
        def f(x):
            return g(x)

        g.__defaults__[0].append(10)
        print(f(5))
    """,
}


@pytest.mark.parametrize("case", sorted(CALLER_STATE))
def test_the_callers_state_counts(tmp_path: Path, cache_dir: Path, case: str) -> None:
    twin = Twin(tmp_path, {"main.py": CALLER_STATE[case], "helper.py": "def scale(x):\n    return x * 2\n"})
    twin.check("main.py", "4")
    twin.check("main.py", "4", hits=1)
    if case == "global-set-under-main":
        twin.check("main.py", "6", hits=0)


def test_looking_at_the_callers_values_runs_none_of_their_code(tmp_path: Path, cache_dir: Path) -> None:
    """casher looks at the module-level values a function reaches (to key
    them, to find code they hold or wrap) without running their
    `__getattr__`: a lazy proxy that says when it loads says it exactly as
    often as in a plain run, in the caller and in the traced call."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                from casher import cached

                class Lazy:
                    def __getattr__(self, name):
                        print("loading", name)
                        if name.startswith("__"):
                            raise AttributeError(name)
                        return len(name)

                PROXY = Lazy()

                @cached
                def f(x):
                    return x + PROXY.value

                print(f(1))
            """
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)


def test_library_settings_the_caller_chose_count(tmp_path: Path, cache_dir: Path) -> None:
    """pandas options, numpy's print options and the decimal context are
    the caller's in a plain call, whenever it set them: they are keyed and
    the traced call takes them (also back to a default the module's own
    import changed)."""
    twin = Twin(
        tmp_path,
        {
            "report.py": """
                import decimal

                import numpy as np
                import pandas as pd
                from casher import cached

                pd.set_option("display.max_columns", 3)  # the module's own choice

                @cached
                def show(n):
                    df = pd.DataFrame({f"c{i}": [1.123456789 * n] for i in range(5)})
                    third = decimal.Decimal(1) / decimal.Decimal(7)
                    return " | ".join([str(df), str(third), str(np.array([1 / 3])), str(pd.get_option("display.max_columns"))])
            """,
            "main.py": """
                import sys
                import decimal

                import numpy as np
                import pandas as pd
                import report

                if "precision" in sys.argv:
                    pd.set_option("display.precision", 2)
                    decimal.getcontext().prec = 4
                    np.set_printoptions(precision=2)
                if "reset" in sys.argv:
                    pd.reset_option("display.max_columns")
                print(report.show(1))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", "precision", hits=0)
    twin.check("main.py", "precision", hits=1)
    twin.check("main.py", "reset", hits=0)
    twin.check("main.py", hits=1)


def test_the_callers_warning_filters_count(tmp_path: Path, cache_dir: Path) -> None:
    """A warning the caller turned into an error raises in a plain call."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import sys
                import warnings
                from casher import cached

                @cached
                def f(x):
                    warnings.warn("old API", FutureWarning)
                    return x + 1

                if "strict" in sys.argv:
                    warnings.simplefilter("error")
                try:
                    print(f(1))
                except FutureWarning as exc:
                    print("raised", exc)
            """
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", "strict")
    twin.check("main.py", hits=1)


def test_the_global_random_generators_are_the_callers(tmp_path: Path, cache_dir: Path) -> None:
    """A plain call draws from the caller's seeded generators and leaves
    them advanced; a function that draws nothing does not miss because
    they moved."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import random
                import sys

                import numpy as np
                from casher import cached

                @cached
                def draw(n):
                    return [round(float(x), 6) for x in np.random.rand(n)] + [random.random()]

                @cached
                def pure(n):
                    return n * 2

                if len(sys.argv) > 1:
                    np.random.seed(int(sys.argv[1]))
                    random.seed(int(sys.argv[1]))
                print(draw(2), pure(3), draw(2))
                print(np.random.rand(), random.random())
            """
        },
    )
    twin.check("main.py", "1", hits=0)
    twin.check("main.py", "1", hits=3)
    twin.check("main.py", "2", hits=1)
    twin.check("main.py", "1", hits=3)


def test_a_lazily_loaded_module_is_not_loaded_by_looking_at_it(tmp_path: Path, cache_dir: Path) -> None:
    """`importlib.util.LazyLoader` (the documented recipe): the module loads
    on its first attribute read, which a plain call that does not use it
    never makes; neither may casher, in the caller or in the traced call."""
    twin = Twin(
        tmp_path,
        {
            "heavy.py": """
                print("importing heavy")
                VALUE = 42
            """,
            "mod.py": """
                import importlib.util
                import sys
                from casher import cached

                def lazy_import(name):
                    spec = importlib.util.find_spec(name)
                    loader = importlib.util.LazyLoader(spec.loader)
                    spec.loader = loader
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    loader.exec_module(module)
                    return module

                heavy = lazy_import("heavy")

                @cached
                def f(x):
                    if x > 100:
                        return heavy.VALUE
                    return x + 1
            """,
            "main.py": """
                import sys
                import types
                import mod

                print(mod.f(int(sys.argv[1])))
                print(type(sys.modules["heavy"]) is types.ModuleType)
            """,
        },
    )
    twin.check("main.py", "1", hits=0)
    twin.check("main.py", "1", hits=1)
    # (A call that reads `heavy.VALUE` loads it in the traced process only:
    # a call's changes to the process stay there, docs/limitations.md.)


def test_an_unchanged_state_costs_nothing_and_a_changed_value_is_keyed(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import sys
                from casher import cached
                LIMIT = 10

                @cached
                def f(x):
                    return min(x, LIMIT)

                if len(sys.argv) > 1:
                    globals()["LIMIT"] = int(sys.argv[1])
                print(f(50))
            """
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)
    twin.check("main.py", "20", hits=0)
    twin.check("main.py", "20", hits=1)
    twin.check("main.py", hits=1)


def test_a_changed_value_that_cannot_be_sent_runs_uncached_with_one_warning(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                from casher import cached
                COUNTER = None

                @cached
                def f(x):
                    return x + (next(COUNTER) if COUNTER is not None else 0)

                globals()["COUNTER"] = (i for i in range(10, 20))
                print(f(1), f(1))
            """
        },
    )
    first = twin.check("main.py", hits=0)
    assert first.out == "11 12\n"
    assert first.err.count("cannot be sent to the traced process") == 1, first.err


# -- environment and working directory ---------------------------------------

def test_environment_read_inside_the_function_is_an_input(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import os
                from casher import cached

                @cached
                def mode():
                    value = os.environ["MODE"]
                    return [len(value), value == "a", os.getenv("LEVEL"), "FLAG" in os.environ]

                print(mode())
            """
        },
    )
    twin.check("main.py", env={"MODE": "a", "LEVEL": "1"}, hits=0)
    twin.check("main.py", env={"MODE": "a", "LEVEL": "1", "OTHER": "x"}, hits=1)
    twin.check("main.py", env={"MODE": "b", "LEVEL": "1"}, hits=0)
    twin.check("main.py", env={"MODE": "b"}, hits=0)
    twin.check("main.py", env={"MODE": "b", "FLAG": ""}, hits=0)
    twin.check("main.py", env={"MODE": "a", "LEVEL": "1"}, hits=1)
    twin.check("main.py", env={"MODE": "secret-value-xyz", "LEVEL": "1"}, hits=0)
    store = "".join(p.read_bytes().decode("latin-1") for p in cache_dir.rglob("*") if p.is_file())
    assert "MODE" in store and "secret-value-xyz" not in store


def test_working_directory_is_part_of_the_key(tmp_path: Path, cache_dir: Path) -> None:
    files = {
        "tool.py": """
            from pathlib import Path
            from casher import cached

            @cached
            def copy_upper(src, dst):
                Path(dst).write_text(Path(src).read_text().upper())
                return len(Path(src).read_text())
        """,
        "main.py": """
            import sys
            sys.path.insert(0, sys.argv[1])
            from tool import copy_upper
            print(copy_upper("in.txt", "out.txt"))
        """,
        "a/in.txt": "first",
        "b/in.txt": "second one",
    }
    twin = Twin(tmp_path, files)
    twin.check("../main.py", "..", cwd="a")
    twin.check("../main.py", "..", cwd="b", hits=0)
    for base in (twin.plain, twin.cached):
        assert (base / "a/out.txt").read_text() == "FIRST"
        assert (base / "b/out.txt").read_text() == "SECOND ONE"
    (twin.cached / "a/out.txt").unlink()
    twin.check("../main.py", "..", cwd="a", hits=1)
    assert (twin.cached / "a/out.txt").read_text() == "FIRST"
    assert (twin.cached / "b/out.txt").read_text() == "SECOND ONE"


# -- concurrent misses ---------------------------------------------------------

def test_two_processes_missing_the_same_key_compute_once(tmp_path: Path, cache_dir: Path) -> None:
    import os
    import subprocess
    import sys
    import uuid

    # A side channel the tracer does not record: inside the store directory
    # (`/dev/shm` holds ordinary files, which are inputs and outputs now).
    cache_dir.mkdir(parents=True, exist_ok=True)
    counter = cache_dir / f"casher-test-{uuid.uuid4().hex}"
    twin = Twin(
        tmp_path,
        {
            "main.py": f"""
                import time
                from casher import cached

                @cached
                def slow(x):
                    with open({str(counter)!r}, "a") as f:
                        f.write("x")
                    time.sleep(3)
                    return x * 2

                if __name__ == "__main__":
                    print(slow(21))
            """
        },
    )
    try:
        env = dict(os.environ, CASHER_LOG="info")
        env.pop("CASHER_CHECK_REACH", None)
        procs = [
            subprocess.Popen([sys.executable, "main.py"], cwd=twin.cached, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        results = [p.communicate(timeout=180) for p in procs]
        assert [out for out, _ in results] == ["42\n", "42\n"], results
        assert counter.read_text() == "x", "computed once"
        waited = [err for _, err in results if "is computing the same call" in err]
        assert len(waited) == 1 and "process " in waited[0], results
    finally:
        counter.unlink(missing_ok=True)


def test_state_reached_by_a_closure_through_an_imported_helper(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "helper.py": """
                FACTOR = 2

                def scale(x):
                    return x * FACTOR

                class Model:
                    def predict(self, x):
                        return x + 1

                MODEL = Model()
            """,
            "main.py": """
                from casher import cached
                import helper

                def make(offset):
                    @cached
                    def f(x):
                        return helper.scale(x) + offset + helper.MODEL.predict(x)
                    return f

                helper.FACTOR = 5
                helper.Model.predict = lambda self, x: x + 100
                print(make(1)(3))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)


def test_casher_own_log_level_is_not_part_of_the_key(tmp_path: Path, cache_dir: Path) -> None:
    """Turning casher's logging up or down says more or less about casher;
    the function logs the same records, so the call still hits. The
    caller's own loggers still count (they decide which records exist)."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import logging
                import os
                from casher import cached

                logging.getLogger("app").setLevel(os.environ.get("APP_LEVEL", "INFO"))

                @cached
                def work(x):
                    logging.getLogger("app").info("working on %s", x)
                    return x * 2

                print(work(21))
                info = getattr(work, "cache_info", None)
                print("hits", info().hits if info else "-", file=__import__("sys").stderr)
            """
        },
    )

    def hits(**env: str) -> str:
        run = twin.check("main.py", env=env)
        return [line for line in run.err.splitlines() if line.startswith("hits ")][-1]

    assert hits() == "hits 0"
    assert hits(CASHER_LOG="warning") == "hits 1"
    assert hits(CASHER_LOG="error") == "hits 1"
    assert hits(APP_LEVEL="WARNING") == "hits 0"


def test_the_umask_decides_the_mode_of_files_a_call_creates(tmp_path: Path, cache_dir: Path) -> None:
    """A plain call creates its file with the caller's umask; a hit must not
    restore a file made under another umask."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import os
                from casher import cached

                os.umask(int(os.environ["MASK"], 8))

                @cached
                def make(name):
                    with open(name, "w") as fh:
                        fh.write(name)
                    return oct(os.stat(name).st_mode & 0o777)

                print(make("a.txt"), oct(os.stat("a.txt").st_mode & 0o777))
            """
        },
    )
    twin.check("main.py", env={"MASK": "022"})
    twin.check("main.py", env={"MASK": "077"})  # a.txt exists: truncated, keeps 0644
    for copy in (twin.plain, twin.cached):
        (copy / "a.txt").unlink()
    twin.check("main.py", env={"MASK": "077"})  # created: 0600
    twin.check("main.py", env={"MASK": "077"}, hits=1)
