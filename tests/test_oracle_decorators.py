"""`@cached` against the plain call when code runs at import: decorators.

A project decorator counts as acting at import (so every function of a
module that imports it depends on every definition it decorates) unless
the analyzer proves that applying it touches only the decorated object and
objects it creates itself (analyzer/src/reach/decorators.rs). Each scenario
here builds a small project whose decoration *does* reach shared state
through a route that proof may miss, runs the driver once, edits a
decorated definition the cached function never names, and runs again: the
cached run must equal a plain run in a fresh interpreter (tests/oracle_cached.py).
A few scenarios check the other direction: an edit that cannot change the
result must hit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oracle_cached import Oracle


@pytest.fixture
def oracle(tmp_path: Path) -> Oracle:
    return Oracle(tmp_path / "o")


DRIVER = """
import _oracle
import work

print(repr(work.{call}))
_oracle.done(work.{name})
"""


def scenario(
    o: Oracle,
    files: dict[str, str],
    name: str,
    call: str,
    edits: list[tuple[str, str, str]],
    expect_hit: bool = False,
) -> None:
    """Write `files`, run, apply `edits` (file, old, new), run again.

    Both steps must equal the plain run; with `expect_hit` the second step
    must also be a hit (nothing the result depends on changed).
    """
    for path, source in files.items():
        o.write(path, source)
    o.write("driver.py", DRIVER.format(name=name, call=call))
    first = o.run()
    o.check(first)
    assert first.misses(name) == 1, o.report()
    for path, old, new in edits:
        o.edit(path, old, new)
    second = o.run()
    o.check(second)
    if expect_hit:
        assert second.hits(name) == 1, "needless miss:\n" + o.report()


# --------------------------------------------------------------------------
# a decorator that writes shared state through a builtin or stdlib call


def test_id_counter_next_on_module_global(oracle: Oracle) -> None:
    # `next(_ids)` advances a module-level iterator: a class decorated
    # earlier in the module changes the id of a later one.
    scenario(
        oracle,
        {
            "models.py": """
            import itertools

            _ids = itertools.count(1)

            def entity(cls):
                cls.id = next(_ids)
                return cls

            @entity
            class User:
                pass

            @entity
            class Order:
                pass
            """,
            "work.py": """
            from casher import cached
            from models import Order

            @cached
            def order_id():
                return Order.id
            """,
        },
        "order_id",
        "order_id()",
        [
            (
                "models.py",
                "@entity\nclass User:\n    pass\n",
                "@entity\nclass User:\n    pass\n\n@entity\nclass Product:\n    pass\n",
            )
        ],
    )


def test_id_counter_mutable_default(oracle: Oracle) -> None:
    # a mutable default is "a literal" but lives as long as the function
    scenario(
        oracle,
        {
            "models.py": """
            def entity(cls, _n=[0]):
                _n[0] += 1
                cls.id = _n[0]
                return cls

            @entity
            class User:
                pass

            @entity
            class Order:
                pass
            """,
            "work.py": """
            from casher import cached
            from models import Order

            @cached
            def order_id():
                return Order.id
            """,
        },
        "order_id",
        "order_id()",
        [("models.py", "@entity\nclass User:\n    pass\n", "")],
    )


def test_registry_exposed_through_mutable_default(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            def plugin(f, _all=[]):
                _all.append(f.__name__)
                return f

            def registered():
                return list(plugin.__defaults__[0])

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import registered

            @cached
            def names():
                return registered()
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_operator_setitem_into_registry(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            import operator

            REGISTRY = {}

            def plugin(f):
                operator.setitem(REGISTRY, f.__name__, f)
                return f

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_builtins_setattr_onto_namespace_class(oracle: Oracle) -> None:
    # `setattr(...)` is modelled as a write; `builtins.setattr(...)` is "a
    # stdlib call that does not call back"
    scenario(
        oracle,
        {
            "plugins.py": """
            import builtins

            class Registry:
                pass

            def plugin(f):
                builtins.setattr(Registry, f.__name__, staticmethod(f))
                return f

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import Registry

            @cached
            def names():
                return sorted(n for n in dir(Registry) if not n.startswith("_"))
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_object_setattr_onto_namespace(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            import types

            NS = types.SimpleNamespace()

            def plugin(f):
                object.__setattr__(NS, f.__name__, f.__name__.upper())
                return f

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import NS

            @cached
            def names():
                return sorted(vars(NS).values())
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_heappush_into_module_list(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "tasks.py": """
            import heapq

            QUEUE = []

            def task(priority):
                def deco(f):
                    heapq.heappush(QUEUE, (priority, f.__name__))
                    return f
                return deco

            @task(2)
            def compile_():
                pass

            @task(1)
            def fetch():
                pass
            """,
            "work.py": """
            from casher import cached
            from tasks import QUEUE

            @cached
            def order():
                return [name for _, name in sorted(QUEUE)]
            """,
        },
        "order",
        "order()",
        [("tasks.py", "@task(2)", "@task(0)")],
    )


def test_update_wrapper_onto_module_function(oracle: Oracle) -> None:
    # update_wrapper writes __name__, __doc__, __wrapped__ and __dict__ into
    # its first argument, here a module-level function
    scenario(
        oracle,
        {
            "hooks.py": """
            import functools

            def current():
                return None

            def hook(f):
                functools.update_wrapper(current, f)
                return f

            @hook
            def on_save():
                return "save"
            """,
            "work.py": """
            from casher import cached
            from hooks import current

            @cached
            def which():
                return current.__name__
            """,
        },
        "which",
        "which()",
        [("hooks.py", "def on_save():", "def on_load():")],
    )


# --------------------------------------------------------------------------
# a plain-name decorator that is not a `def`: "only wraps"


def test_plain_name_class_decorator_registers_in_init(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "commands.py": """
            COMMANDS = []

            class Command:
                def __init__(self, f):
                    self.f = f
                    COMMANDS.append(f.__name__)

                def __call__(self, *a):
                    return self.f(*a)

            @Command
            def build():
                return "b"

            @Command
            def test():
                return "t"
            """,
            "work.py": """
            from casher import cached
            from commands import COMMANDS

            @cached
            def listing():
                return sorted(COMMANDS)
            """,
        },
        "listing",
        "listing()",
        [("commands.py", "def test():", "def deploy():")],
    )


def test_plain_name_instance_decorator(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            class Registry:
                def __init__(self):
                    self.items = {}

                def __call__(self, f):
                    self.items[f.__name__] = f
                    return f

            plugin = Registry()

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import plugin

            @cached
            def names():
                return sorted(plugin.items)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_plain_name_lambda_decorator(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            REGISTRY = []

            plugin = lambda f: REGISTRY.append(f.__name__) or f

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_plain_name_rebound_to_registering_def(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            REGISTRY = []

            def _quiet(f):
                return f

            def _loud(f):
                REGISTRY.append(f.__name__)
                return f

            plugin = _loud

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_plain_name_from_closure_factory(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "registry.py": """
            REGISTRY = []

            def make_plugin_decorator(into):
                def deco(f):
                    into.append(f.__name__)
                    return f
                return deco

            plugin = make_plugin_decorator(REGISTRY)
            """,
            "plugins.py": """
            from registry import plugin

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            import plugins  # registers
            from registry import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_plain_name_from_star_import(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "registry.py": """
            REGISTRY = []

            def plugin(f):
                REGISTRY.append(f.__name__)
                return f
            """,
            "plugins.py": """
            from registry import *

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            import plugins  # registers
            from registry import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


# --------------------------------------------------------------------------
# writes "into the decorated object" that land in shared state


def test_own_class_attribute_aliasing_module_registry(oracle: Oracle) -> None:
    # `cls.registry[...]` is allowed because the class body defines
    # `registry`: but it is the module's dict
    scenario(
        oracle,
        {
            "models.py": """
            ALL = {}

            def register(cls):
                cls.registry[cls.__name__] = cls.table
                return cls

            @register
            class User:
                registry = ALL
                table = "users"

            @register
            class Order:
                registry = ALL
                table = "orders"
            """,
            "work.py": """
            from casher import cached
            from models import ALL

            @cached
            def tables():
                return sorted(ALL.values())
            """,
        },
        "tables",
        "tables()",
        [("models.py", 'table = "orders"', 'table = "purchases"')],
    )


# --------------------------------------------------------------------------
# import-time code that is not a decorator


def test_set_name_descriptor_registers_fields(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "fields.py": """
            FIELDS = []

            class Field:
                def __set_name__(self, owner, name):
                    FIELDS.append(f"{owner.__name__}.{name}")
            """,
            "models.py": """
            from fields import Field

            class User:
                name = Field()
                email = Field()
            """,
            "work.py": """
            from casher import cached
            import models  # declares fields
            from fields import FIELDS

            @cached
            def schema():
                return sorted(FIELDS)
            """,
        },
        "schema",
        "schema()",
        [("models.py", "email = Field()", "phone = Field()")],
    )


def test_class_body_calls_registering_function(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "fields.py": """
            FIELDS = []

            def field(name):
                FIELDS.append(name)
                return name
            """,
            "models.py": """
            from fields import field

            class User:
                name = field("name")
                email = field("email")
            """,
            "work.py": """
            from casher import cached
            import models  # declares fields
            from fields import FIELDS

            @cached
            def schema():
                return sorted(FIELDS)
            """,
        },
        "schema",
        "schema()",
        [("models.py", 'email = field("email")', 'phone = field("phone")')],
    )


# --------------------------------------------------------------------------
# controls: registering decorators the analysis must (and does) see


def test_method_decorator_factory_registers(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "shapes.py": """
            AREAS = {}

            def area(name):
                def deco(f):
                    AREAS[name] = f.__qualname__
                    return f
                return deco

            class Shapes:
                @area("square")
                def square(self):
                    return 9

                @area("circle")
                def circle(self):
                    return 3
            """,
            "work.py": """
            from casher import cached
            from shapes import AREAS

            @cached
            def names():
                return sorted(AREAS.items())
            """,
        },
        "names",
        "names()",
        [("shapes.py", '@area("circle")', '@area("disc")')],
    )


def test_decorator_with_overload_stubs_in_other_module(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "registry.py": """
            from typing import overload

            REGISTRY = []

            @overload
            def plugin(f: type) -> type: ...
            @overload
            def plugin(f: int) -> int: ...
            def plugin(f):
                REGISTRY.append(f.__name__)
                return f
            """,
            "plugins.py": """
            from registry import plugin

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            import plugins  # registers
            from registry import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_decorator_helper_writes_registry(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "registry.py": """
            REGISTRY = {}

            def _store(key, value):
                REGISTRY[key] = value

            def plugin(f):
                _store(f.__name__, f)
                return f
            """,
            "plugins.py": """
            from registry import plugin

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            import plugins  # registers
            from registry import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


# --------------------------------------------------------------------------
# the other direction: a pure decorator must not invalidate the unrelated


def test_pure_repr_decorator_edit_unused_class_hits(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "models.py": """
            import functools

            def auto_repr(cls):
                def __repr__(self):
                    return f"{type(self).__name__}({vars(self)})"
                cls.__repr__ = __repr__
                return cls

            def logged(f):
                @functools.wraps(f)
                def wrapper(*a, **k):
                    return f(*a, **k)
                return wrapper

            @auto_repr
            class User:
                def __init__(self):
                    self.name = "ann"

            @auto_repr
            class Order:
                def __init__(self):
                    self.total = 3

            @logged
            def helper():
                return 10

            def price(x):
                return x * 2
            """,
            "work.py": """
            from casher import cached
            from models import price

            @cached
            def total(x):
                return price(x)
            """,
        },
        "total",
        "total(4)",
        [
            ("models.py", "self.total = 3", "self.total = 4"),
            ("models.py", "return 10", "return 11"),
        ],
        expect_hit=True,
    )


# --------------------------------------------------------------------------
# state the caller-side fingerprint does not see: a function's attributes
# (functions are fingerprinted by where they are defined)


def test_function_id_counter_next_on_module_global(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "tasks.py": """
            import itertools

            _ids = itertools.count(1)

            def task(f):
                f.id = next(_ids)
                return f

            @task
            def fetch():
                pass

            @task
            def build():
                pass
            """,
            "work.py": """
            from casher import cached
            from tasks import build

            @cached
            def build_id():
                return build.id
            """,
        },
        "build_id",
        "build_id()",
        [
            (
                "tasks.py",
                "@task\ndef fetch():\n    pass\n",
                "@task\ndef fetch():\n    pass\n\n@task\ndef lint():\n    pass\n",
            )
        ],
    )


def test_function_id_counter_mutable_default(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "tasks.py": """
            def task(f, _n=[0]):
                _n[0] += 1
                f.id = _n[0]
                return f

            @task
            def fetch():
                pass

            @task
            def build():
                pass
            """,
            "work.py": """
            from casher import cached
            from tasks import build

            @cached
            def build_id():
                return build.id
            """,
        },
        "build_id",
        "build_id()",
        [("tasks.py", "@task\ndef fetch():\n    pass\n", "")],
    )


def test_decorator_stack_inner_returns_shared_function(oracle: Oracle) -> None:
    # `@disabled` returns one shared function; `@label(...)` then "writes
    # into the decorated object", which is that shared function
    scenario(
        oracle,
        {
            "handlers.py": """
            def _noop(*args):
                return None

            def disabled(f):
                return _noop

            def label(text):
                def deco(f):
                    f.label = text
                    return f
                return deco

            def noop_label():
                return getattr(_noop, "label", None)

            @label("old export")
            @disabled
            def export():
                return 1
            """,
            "work.py": """
            from casher import cached
            from handlers import noop_label

            @cached
            def which():
                return noop_label()
            """,
        },
        "which",
        "which()",
        [("handlers.py", '@label("old export")', '@label("new export")')],
    )


# --------------------------------------------------------------------------
# standard-library state written at decoration ("the stdlib does not call
# back" is true, but it keeps what it is given)


def test_decorator_registers_mimetype(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "formats.py": """
            import mimetypes

            def file_format(ext):
                def deco(f):
                    mimetypes.add_type(f"application/x-{f.__name__}", ext)
                    return f
                return deco

            @file_format(".casher1")
            def reader():
                return 1
            """,
            "work.py": """
            from casher import cached
            import mimetypes
            import formats  # registers file types

            @cached
            def kind(name):
                return mimetypes.guess_type(name)[0]
            """,
        },
        "kind",
        'kind("data.casher1")',
        [("formats.py", "def reader():", "def loader():")],
    )


def test_decorator_adds_logging_level_name(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "levels.py": """
            import logging

            def level(number):
                def deco(f):
                    logging.addLevelName(number, f.__name__.upper())
                    return f
                return deco

            @level(25)
            def notice():
                pass
            """,
            "work.py": """
            from casher import cached
            import logging
            import levels  # names level 25

            @cached
            def name_of(n):
                return logging.getLevelName(n)
            """,
        },
        "name_of",
        "name_of(25)",
        [("levels.py", "def notice():", "def verbose():")],
    )


def test_decorator_seeds_random(oracle: Oracle) -> None:
    # fails at the first step already: the miss runs in a child forked from
    # the fork server, and `random` reseeds itself after a fork
    scenario(
        oracle,
        {
            "experiments.py": """
            import random

            def seeded(seed):
                def deco(f):
                    random.seed(seed)
                    return f
                return deco

            @seeded(1)
            def baseline():
                pass
            """,
            "work.py": """
            from casher import cached
            import random
            import experiments  # seeds the generator

            @cached
            def draw():
                return random.randint(0, 10**9)
            """,
        },
        "draw",
        "draw()",
        [("experiments.py", "@seeded(1)", "@seeded(2)")],
    )


def test_decorator_seeds_random_fresh_interpreter(tmp_path: Path) -> None:
    # the same without the fork server: the seed edit itself
    oracle = Oracle(tmp_path / "o", env={"CASHER_FORK_SERVER": "0"})
    scenario(
        oracle,
        {
            "experiments.py": """
            import random

            def seeded(seed):
                def deco(f):
                    random.seed(seed)
                    return f
                return deco

            @seeded(1)
            def baseline():
                pass
            """,
            "work.py": """
            from casher import cached
            import random
            import experiments  # seeds the generator

            @cached
            def draw():
                return random.randint(0, 10**9)
            """,
        },
        "draw",
        "draw()",
        [("experiments.py", "@seeded(1)", "@seeded(2)")],
    )


# --------------------------------------------------------------------------
# A docstring read at run time (`f.help = f.__doc__`) is not covered: the
# design makes a docstring edit never invalidate (docs/limitations.md).


def test_plain_name_lambda_into_dunder_class_attribute(oracle: Oracle) -> None:
    # class attributes named `__x__` are left out of a class's fingerprint
    scenario(
        oracle,
        {
            "plugins.py": """
            class Registry:
                __plugins__ = []

            plugin = lambda f: Registry.__plugins__.append(f.__name__) or f

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import Registry

            @cached
            def names():
                return sorted(Registry.__plugins__)
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


def test_plain_name_instance_into_function_attribute(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "plugins.py": """
            def known():
                return sorted(known.names)

            known.names = []

            class _Collect:
                def __call__(self, f):
                    known.names.append(f.__name__)
                    return f

            plugin = _Collect()

            @plugin
            def alpha():
                return 1

            @plugin
            def beta():
                return 2
            """,
            "work.py": """
            from casher import cached
            from plugins import known

            @cached
            def names():
                return known()
            """,
        },
        "names",
        "names()",
        [("plugins.py", "def beta():", "def gamma():")],
    )


# --------------------------------------------------------------------------
# more controls in the other direction


def test_pure_partial_factory_edit_unused_class_hits(oracle: Oracle) -> None:
    scenario(
        oracle,
        {
            "models.py": """
            from functools import partial

            def _auto(cls, prefix):
                cls.tag = prefix + cls.__name__
                return cls

            def auto(prefix="x-"):
                return partial(_auto, prefix=prefix)

            @auto()
            class User:
                limit = 1

            @auto(prefix="y-")
            class Order:
                limit = 2

            def price(x):
                return x * 2
            """,
            "work.py": """
            from casher import cached
            from models import price

            @cached
            def total(x):
                return price(x)
            """,
        },
        "total",
        "total(4)",
        [("models.py", "limit = 2", "limit = 3")],
        expect_hit=True,
    )


def test_registering_decorator_edit_is_seen(oracle: Oracle) -> None:
    # control: a registering factory decorator (a `def`) is an effect
    scenario(
        oracle,
        {
            "plugins.py": """
            REGISTRY = {}

            def plugin(name):
                def deco(f):
                    REGISTRY[name] = f.__name__
                    return f
                return deco

            @plugin("a")
            def alpha():
                return 1
            """,
            "work.py": """
            from casher import cached
            from plugins import REGISTRY

            @cached
            def names():
                return sorted(REGISTRY.items())
            """,
        },
        "names",
        "names()",
        [("plugins.py", '@plugin("a")', '@plugin("b")')],
    )
