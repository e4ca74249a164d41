"""Looking at the caller's values without running their code.

casher reads the module-level values a function reaches (to key them, to
find the project code they hold or wrap). A plain call never runs their
class's `__getattr__` or `__getattribute__` on casher's behalf, so neither
may casher: a DataFrame's `__getattr__` builds its column index's hash
table, a lazy proxy's loads what it stands for, a module loaded with
`importlib.util.LazyLoader` loads on any attribute read. Attributes are read
from instance dicts, types are checked by `type()`.
"""

from __future__ import annotations

from typing import Any


class Wrapper:
    """Base of `@cached`'s wrapper: `original` recognizes it by its type.
    Looking `__casher_original__` up on any value would run its class's
    `__getattr__`: a DataFrame's builds its column index's hash table, a
    lazy proxy's loads what it stands for. The caller's values must not
    change because casher looked at them."""

    __casher_original__: Any


def is_a(value: Any, kinds: Any) -> bool:
    """`isinstance` by the value's own type: `isinstance` falls back to
    reading `value.__class__`, which runs a `__getattribute__` (a lazily
    loaded module loads; see `Wrapper`)."""
    return issubclass(type(value), kinds)


def original(value: Any) -> Any:
    """The function a `@cached` wrapper wraps, else `value` itself."""
    return value.__casher_original__ if is_a(value, Wrapper) else value


def wrapped_of(value: Any) -> Any:
    """What `value` wraps (`functools.wraps` sets `__wrapped__` in the
    instance's dict; proxies may define it on their class), without asking
    a `__getattr__` (see `Wrapper`)."""
    attrs = own_dict(value)
    if attrs is not None and "__wrapped__" in attrs:
        return attrs["__wrapped__"]
    if any("__wrapped__" in vars(k) for k in type(value).__mro__):
        try:
            return value.__wrapped__
        except Exception:
            return None
    return None


def module_attr(module: Any, name: str) -> Any:
    """A module's attribute from its dict: a lazily loaded module
    (`importlib.util.LazyLoader`) loads on any attribute read, which the
    caller's plain call may never cause."""
    return (own_dict(module) or {}).get(name)


def own_dict(value: Any) -> dict | None:
    """`value.__dict__` without running a `__getattr__` (see `Wrapper`)."""
    try:
        attrs = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return None
    return attrs if isinstance(attrs, dict) else None
