"""What a plain call shares with its caller, beyond arguments and globals:
the warnings machinery (filters, `catch_warnings(record=True)`, the
once-per-location registry, `logging.captureWarnings`), library settings
holding callables, the global generators when the call raises, and
functions reached through holders of every kind. Each test runs the same
script with casher and without it (tests/cached_oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cached_oracle import Twin

WARNS = """
    import warnings

    from casher import cached

    class StaleData(UserWarning):
        pass

    @cached
    def f(x):
        warnings.warn("old API", FutureWarning)
        warnings.warn("stale input", StaleData, stacklevel=1)
        warnings.warn("going away", DeprecationWarning)
        return x + 1
"""


def test_warnings_reach_the_callers_machinery(tmp_path: Path, cache_dir: Path) -> None:
    """Recorded by the caller's `catch_warnings`, shown once per location
    under the "default" action, logged under `captureWarnings`: the same on
    a miss and on a hit."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": WARNS,
            "main.py": """
                import logging
                import os
                import sys
                import warnings

                import mod

                def seen(ws):
                    return [(w.category.__name__, str(w.message), os.path.basename(w.filename), w.lineno) for w in ws]

                with warnings.catch_warnings(record=True) as ws:
                    warnings.simplefilter("always")
                    print(mod.f(1), seen(ws))
                with warnings.catch_warnings(record=True) as ws:
                    print(mod.f(2), mod.f(2), mod.f(3), seen(ws))
                logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
                for handler in logging.getLogger().handlers:  # the copies' paths differ
                    handler.addFilter(lambda r: setattr(r, "msg", r.getMessage().replace(os.getcwd(), ".")) or True)
                logging.captureWarnings(True)
                with warnings.catch_warnings():
                    warnings.simplefilter("always")
                    print(mod.f(4))
            """,
        },
    )
    first = twin.check("main.py", hits=1)  # f(2) twice
    assert "StaleData" in first.out and "py.warnings WARNING ./mod.py" in first.out, first.out
    twin.check("main.py", hits=5)


def test_a_deprecation_from_the_callers_script_is_shown_as_there(tmp_path: Path, cache_dir: Path) -> None:
    """Python shows a DeprecationWarning only when it is attributed to
    `__main__`: a function defined in the script (sent by value) warns from
    there."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import warnings

                from casher import cached
                import mod

                @cached
                def g(x):
                    warnings.warn("main-only", DeprecationWarning)
                    return x

                with warnings.catch_warnings(record=True) as ws:
                    print(g(1), mod.f(1), sorted(str(w.message) for w in ws))
            """,
            "mod.py": WARNS,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=2)


def test_a_warning_turned_into_an_error_by_a_module_filter(tmp_path: Path, cache_dir: Path) -> None:
    """Filters match the module a warning is attributed to."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": WARNS,
            "main.py": """
                import sys
                import warnings

                import mod

                warnings.filterwarnings("error", category=FutureWarning, module=sys.argv[1])
                try:
                    print(mod.f(1))
                except FutureWarning as exc:
                    print("raised", exc)
            """,
        },
    )
    twin.check("main.py", "mod", hits=0)
    twin.check("main.py", "other", hits=0)
    twin.check("main.py", "mod", hits=0)
    twin.check("main.py", "other", hits=1)


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
