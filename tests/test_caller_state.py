"""What a plain call shares with its caller besides its arguments: library
settings (holding callables too), the global generators when the call
raises, module state reached through holders of every kind, through
arguments and through settings, class and static methods, the caller's
script's functions and classes. Each test runs the same script with casher
and without it (tests/cached_oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cached_oracle import Twin

def test_settings_holding_callables(tmp_path: Path, cache_dir: Path) -> None:
    """pandas' float format and numpy's error callback are the caller's."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": """
                import numpy as np
                import pandas as pd
                from casher import cached

                @cached
                def f(n):
                    with np.errstate(divide="call"):
                        inf = (np.array([1.0]) / 0).tolist()
                    return str(pd.DataFrame({"a": [1.123456789 * n, 2.5]})), inf
            """,
            "main.py": """
                import sys

                import numpy as np
                import pandas as pd

                import mod

                digits = int(sys.argv[1])
                pd.set_option("display.float_format", ("{:.%df}" % digits).format)
                np.seterrcall(lambda kind, flag: print("handler", digits, kind))
                print(mod.f(1))
            """,
        },
    )
    twin.check("main.py", "4", hits=0)
    twin.check("main.py", "2", hits=0)
    twin.check("main.py", "4", hits=1)


def test_a_call_that_draws_then_raises_advances_the_callers_generators(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import random

                from casher import cached

                @cached
                def f(x):
                    random.random()
                    raise ValueError("boom")

                random.seed(1)
                try:
                    f(1)
                except ValueError as exc:
                    print("error:", exc)
                print(random.random())
            """
        },
    )
    twin.check("main.py")
    twin.check("main.py")


HOLDERS = {
    "dict-value": ("HOLDER = {'s': helpers.scaled}", "HOLDER['s'](x)", ""),
    "list-of-partials": ("import functools\nHOLDER = [functools.partial(helpers.scaled)]", "HOLDER[0](x)", ""),
    "instance-attribute": ("HOLDER = Box(None)\nHOLDER.fn = helpers.scaled", "HOLDER.fn(x)", ""),
    "partial-args": ("import functools\nHOLDER = functools.partial(apply, helpers.scaled)", "HOLDER(x)", "def apply(fn, x):\n    return fn(x)\n"),
    "bound-self": ("HOLDER = Box(helpers.scaled).run", "HOLDER(x)", ""),
    "class-attribute": ("Box.REGISTRY = {'s': helpers.scaled}", "Box.REGISTRY['s'](x)", ""),
    "default": ("def HOLDER(x, fn=helpers.scaled):\n    return fn(x)", "HOLDER(x)", ""),
    "getattr-string": ("", "getattr(helpers, 'scaled')(x)", ""),
    "deque": ("import collections\nHOLDER = collections.deque([helpers.scaled])", "HOLDER[0](x)", ""),
    "namespace": ("import types\nHOLDER = types.SimpleNamespace(fn=helpers.scaled)", "HOLDER.fn(x)", ""),
    "dict-key": ("HOLDER = {helpers.scaled: 1}", "next(iter(HOLDER))(x)", ""),
    "behind-many-numbers": ("HOLDER = [list(range(30_000)), [helpers.scaled]]", "HOLDER[1][0](x)", ""),
}


@pytest.mark.parametrize("case", sorted(HOLDERS))
def test_a_function_reached_through_any_holder_uses_the_callers_state(tmp_path: Path, cache_dir: Path, case: str) -> None:
    setup, use, extra = HOLDERS[case]
    twin = Twin(
        tmp_path,
        {
            "helpers.py": """
                SCALE = 1

                def scaled(x):
                    return x * SCALE
            """,
            "mod.py": "\n".join(
                [
                    "from casher import cached",
                    "import helpers",
                    extra,
                    "class Box:",
                    "    def __init__(self, fn):",
                    "        self.fn = fn",
                    "    def run(self, x):",
                    "        return self.fn(x)",
                    setup,
                    "@cached",
                    "def f(x):",
                    f"    return {use}",
                ]
            ),
            "main.py": """
                import sys
                import helpers
                import mod

                helpers.SCALE = int(sys.argv[1])
                print(mod.f(3))
            """,
        },
    )
    twin.check("main.py", "1", hits=0)
    twin.check("main.py", "1", hits=1)
    twin.check("main.py", "10", hits=0)


def test_class_and_static_methods_of_project_classes(tmp_path: Path, cache_dir: Path) -> None:
    """They are compared as the functions they hold (a bound method is
    another value each time), and one the caller replaced is sent as what it
    was: still a class method."""
    twin = Twin(
        tmp_path,
        {
            "ops.py": """
                from casher import cached

                class Op:
                    @classmethod
                    def make(cls, x):
                        return (cls.__name__, x * 2)

                    @staticmethod
                    def twice(x):
                        return x * 2

                @cached
                def f(x):
                    return Op.make(x), Op.twice(x)
            """,
            "main.py": """
                import sys
                import ops

                if "patched" in sys.argv:
                    ops.Op.make = classmethod(lambda cls, x: (cls.__name__, x * 100))
                print(ops.f(2))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)
    twin.check("main.py", "patched", hits=0)
    twin.check("main.py", "patched", hits=1)


def test_what_the_arguments_and_settings_reach_is_the_callers(tmp_path: Path, cache_dir: Path) -> None:
    """A function passed in (plain, partial, bound method) and a pandas float
    format read module state the caller changed."""
    # (ops.py's functions are reached at run time only: keyed on the file.)
    twin = Twin(
        tmp_path,
        {
            "ops.py": """
                SCALE = 1
                CURRENCY = "$"

                def scale(x):
                    return x * SCALE

                def money(v):
                    return f"{CURRENCY}{v:.2f}"

                class Scaler:
                    def run(self, x):
                        return scale(x)
            """,
            "lib.py": """
                import pandas as pd
                from casher import cached

                @cached
                def apply(fn, x):
                    return fn(x)

                @cached
                def show(v):
                    return str(pd.DataFrame({"v": [v]}))
            """,
            "main.py": """
                import functools
                import sys

                import pandas as pd

                import lib
                import ops

                ops.SCALE = int(sys.argv[1])
                ops.CURRENCY = sys.argv[2]
                pd.set_option("display.float_format", ops.money)
                print(lib.apply(ops.scale, 2), lib.apply(functools.partial(ops.scale), 3), lib.apply(ops.Scaler().run, 4))
                print(lib.show(1.5))
            """,
        },
    )
    twin.check("main.py", "1", "$", hits=0)
    twin.check("main.py", "1", "$", hits=4)
    twin.check("main.py", "10", "$", hits=1)
    # Settings are keyed for every call (any call may print a frame).
    twin.check("main.py", "10", "EUR ", hits=0)


def test_functions_and_instances_of_the_callers_script_as_arguments(tmp_path: Path, cache_dir: Path) -> None:
    """The child's `__main__` is not the caller's script: they go by value,
    and an instance comes back as the caller's class."""
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                from casher import cached

                @cached
                def apply(fn, x):
                    return fn(x)

                @cached
                def same(p):
                    return p
            """,
            "main.py": """
                from dataclasses import dataclass

                import lib

                FACTOR = 3

                def mul(x):
                    return x * FACTOR

                @dataclass
                class Point:
                    x: int

                back = lib.same(Point(4))
                print(lib.apply(mul, 2), back, type(back) is Point)
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=2)
    twin.edit("main.py", "FACTOR = 3", "FACTOR = 5")
    twin.check("main.py", hits=1)


def test_polars_configuration_is_the_callers(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                import polars as pl
                from casher import cached

                @cached
                def show(n):
                    return str(pl.DataFrame({"a": list(range(n)), "b": [x / 3 for x in range(n)]}))
            """,
            "main.py": """
                import sys

                import polars as pl

                from lib import show

                print(show(12))
                if len(sys.argv) > 1:
                    pl.Config.set_tbl_rows(int(sys.argv[1]))
                    pl.Config.set_float_precision(2)
                print(show(12))
            """,
        },
    )
    twin.check("main.py", hits=1)
    twin.check("main.py", "4", hits=1)
    twin.check("main.py", "6", hits=1)


def test_a_setting_that_cannot_be_examined_runs_the_call_uncached(tmp_path: Path, cache_dir: Path) -> None:
    """An error callback whose `repr` raises: the call still runs, once
    warned, and returns the plain call's value."""
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                import numpy as np
                from casher import cached

                @cached
                def f(x):
                    with np.errstate(divide="call"):
                        return (np.array([x]) / 0).tolist()
            """,
            "main.py": """
                import numpy as np

                import lib

                class Handler:
                    def __call__(self, kind, flag):
                        print("handler", kind)

                    def __repr__(self):
                        raise RuntimeError("no repr")

                np.seterrcall(Handler())
                print(lib.f(1.0), lib.f(2.0))
            """,
        },
    )
    run = twin.check("main.py", hits=0)
    assert run.err.count("could not be examined") == 1, run.err


def test_class_attributes_and_properties_reached_through_arguments(tmp_path: Path, cache_dir: Path) -> None:
    """An instance or a bound method passed in reaches its class: a class
    attribute the caller changed (on the class or a base) and a property it
    replaced are the caller's."""
    twin = Twin(
        tmp_path,
        {
            "helper.py": """
                class Base:
                    SCALE = 1

                class Scaler(Base):
                    OFFSET = 0

                    def scale(self, x):
                        return x * self.SCALE + self.OFFSET

                    @property
                    def label(self):
                        return "orig"
            """,
            "lib.py": """
                from casher import cached

                @cached
                def use(obj, x):
                    return obj.scale(x), obj.label

                @cached
                def apply(fn, x):
                    return fn(x)
            """,
            "main.py": """
                import sys

                import helper
                import lib

                helper.Scaler.OFFSET = int(sys.argv[1])
                helper.Base.SCALE = int(sys.argv[2])
                if len(sys.argv) > 3:
                    helper.Scaler.label = property(lambda self: "patched")
                print(lib.use(helper.Scaler(), 3), lib.apply(helper.Scaler().scale, 2))
            """,
        },
    )
    twin.check("main.py", "0", "1", hits=0)
    twin.check("main.py", "0", "1", hits=2)
    twin.check("main.py", "100", "1", hits=0)
    twin.check("main.py", "100", "5", hits=0)
    twin.check("main.py", "100", "5", "patch", hits=0)  # both reach the class


def test_a_script_without_a_main_guard_does_its_work_once(tmp_path: Path, cache_dir: Path) -> None:
    """The child imports the caller's script for its function without
    running the work it does at the top level: files it writes, what it
    prints, an exit after the call."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import sys
                from casher import cached

                LOG = "side.txt"
                CONFIG = dict(factor=int(sys.argv[1]))

                @cached
                def f(n):
                    return n * CONFIG["factor"]

                with open(LOG, "a") as fh:
                    fh.write("top-level ran\\n")
                results = [f(i) for i in range(3)]
                print("results", results)
                print(open(LOG).read(), end="")
                if len(sys.argv) > 2:
                    sys.exit(int(sys.argv[2]))
                print("end")
            """
        },
    )
    twin.check("main.py", "2", hits=0)
    twin.check("main.py", "2", hits=3)
    twin.check("main.py", "5", hits=0)
    plain = twin.run("plain", "main.py", "5", "3")
    cached = twin.run("cached", "main.py", "5", "3")
    assert (cached.code, cached.out) == (plain.code, plain.out) == (3, plain.out), (plain, cached)


def test_exceptions_keep_what_they_were_raised_from(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                from casher import cached

                class Failed(Exception):
                    def __init__(self, code, text):
                        super().__init__(text)
                        self.code = code

                class Rewritten(Exception):
                    def __init__(self, code, text):
                        super().__init__(f"{code}:{text}")

                @cached
                def f(how):
                    if how == "group":
                        raise ExceptionGroup("many", [Rewritten(5, "m"), KeyError("k")])
                    try:
                        {}["missing"]
                    except KeyError as exc:
                        if how == "from":
                            raise Failed(7, "lookup failed") from exc
                        if how == "during":
                            raise ValueError("while handling")
                        raise Failed(8, "no context") from None
            """,
            "main.py": """
                import lib

                for how in ("from", "during", "none"):
                    try:
                        lib.f(how)
                    except Exception as exc:
                        print(type(exc).__name__, exc, getattr(exc, "code", None), type(exc.__cause__).__name__ if how != "during" else "-", type(exc.__context__).__name__, exc.__suppress_context__)
                try:
                    lib.f("group")
                except* lib.Rewritten as group:
                    print("rewritten", [e.args for e in group.exceptions])
                except* KeyError as group:
                    print("key", [e.args for e in group.exceptions])
            """,
        },
    )
    twin.check("main.py")


def test_a_script_whose_definitions_need_its_work_loads_whole(tmp_path: Path, cache_dir: Path) -> None:
    """A kept statement needs what a left-out one made (a config read in a
    `with` block, arguments parsed at the top level), or the function is
    defined inside a `with` block: the script loads, and the values are
    the caller's."""
    twin = Twin(
        tmp_path,
        {
            "config.json": '{"t": 3}',
            "main.py": """
                import argparse
                import json

                from casher import cached

                parser = argparse.ArgumentParser()
                parser.add_argument("--n", type=int, default=1)
                args = parser.parse_args()
                with open("config.json") as fh:
                    CFG = json.load(fh)
                THRESH = CFG["t"] * args.n

                @cached
                def f(x):
                    return x * THRESH

                with open("config.json") as fh:
                    @cached
                    def g(x):
                        return x + len(fh.name)

                print(f(2), g(1))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", "--n", "5", hits=1)
    twin.check("main.py", "--n", "5", hits=2)


def test_metaclass_attributes_are_the_callers(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                from casher import cached

                class Meta(type):
                    factor = 1

                    def scale(cls):
                        return cls.factor

                class Base(metaclass=Meta):
                    pass

                @cached
                def f(c):
                    return c.scale()
            """,
            "main.py": """
                import sys

                import lib

                lib.Meta.factor = int(sys.argv[1])
                print(lib.f(lib.Base))
            """,
        },
    )
    twin.check("main.py", "1", hits=0)
    twin.check("main.py", "30", hits=0)
    twin.check("main.py", "30", hits=1)
