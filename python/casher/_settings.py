"""Process-wide settings of libraries that change what a call returns or
prints: pandas options, numpy's print options and floating-point error
handling (with its callback), the `decimal` context, the `warnings` filters,
polars' `Config`.

A caller may set them at any time (`pd.set_option("display.precision", 2)`
before calling); a plain call sees the caller's settings, a traced call
starts from its own import's. So they are part of the key (a changed one is
another result) and the child takes the caller's before the call (nothing
to do when they equal the fork server's after its import, the usual case).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from typing import Any, Iterator

Settings = list[tuple[str, Any]]


def _flat(tree: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in tree.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _pandas_options() -> dict[str, Any] | None:
    """Every pandas option's value (None: pandas is not imported, or its
    option registry is not where it was). All of them, not only those that
    differ from their defaults: some defaults depend on the process (in a
    Jupyter kernel `display.max_columns` is 20, elsewhere 0)."""
    if "pandas" not in sys.modules:
        return None
    try:
        from pandas._config import config

        registered, deprecated = config._registered_options, config._deprecated_options
        return {k: v for k, v in _flat(config._global_config) if k in registered and k not in deprecated}
    except Exception:
        return None


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return a is b


def capture() -> Settings:
    """The caller's settings, for the key and for the child."""
    settings: Settings = []
    pandas = _pandas_options()
    if pandas is not None:
        settings.append(("pandas.options", sorted(pandas.items())))
    if "numpy" in sys.modules:
        import numpy as np

        try:
            settings.append(("numpy.printoptions", sorted(np.get_printoptions().items())))
            settings.append(("numpy.errstate", sorted(np.geterr().items())))
            settings.append(("numpy.errcall", np.geterrcall()))
        except Exception:
            pass
    import warnings

    settings.append(("warnings.filters", [tuple(f) for f in warnings.filters]))
    if "decimal" in sys.modules:
        import decimal

        c = decimal.getcontext()
        traps = sorted(t.__name__ for t, on in c.traps.items() if on)
        settings.append(("decimal.context", (c.prec, c.rounding, c.Emin, c.Emax, c.capitals, c.clamp, traps)))
    if "polars" in sys.modules:
        # Its formatting lives in environment variables read by native code
        # (never seen as read) and in the library's own globals.
        try:
            settings.append(("polars.config", sys.modules["polars"].Config.save()))
        except Exception:
            pass
    return settings


_PLAIN = frozenset({str, int, float, bool, type(None)})

_last: list[str] = []
"""The `repr` and fingerprint of the last settings examined that held no
callable: every call examines the settings, and they rarely change."""


def examine(settings: Settings) -> tuple[str, list[Any]]:
    """Their fingerprint, stable across processes, and the callables in
    them (a pandas float format: the code they reach is the call's too).
    A class (a warning category) counts by its name; another callable (a
    formatter: `"{:.2f}".format`, a lambda, a partial) by the hash of its
    cloudpickle, which holds what it is bound to; one that cannot be
    pickled equals nothing (it cannot be sent either)."""
    text = repr(settings)  # strict: `True`, `1` and `1.0` differ
    if _last and _last[0] == text:
        return _last[1], []
    found: list[Any] = []

    def canon(value: Any) -> Any:
        if type(value) in _PLAIN:  # most options: the fast way
            return repr(value)
        if isinstance(value, (list, tuple)):
            return [canon(v) for v in value]
        if isinstance(value, dict):
            return sorted((str(k), canon(v)) for k, v in value.items())
        if isinstance(value, type):
            return f"class {value.__module__}.{value.__qualname__}"
        if callable(value):
            found.append(value)
            try:
                import cloudpickle

                blob = cloudpickle.dumps(value, protocol=5)
            except Exception:
                return f"unpicklable {id(value)}"
            return "callable " + hashlib.blake2b(blob, digest_size=16).hexdigest()
        return repr(value)

    printed = repr(canon(settings))
    # With a callable, the same repr may hide other behaviour (a closure
    # whose cell changed): examined again each time.
    _last[:] = [] if found else [text, printed]
    return printed, found


def fingerprint(settings: Settings) -> str:
    return examine(settings)[0]


_AT_IMPORT: list[str] = []
"""The fingerprint of this process's settings after the module's import
(the fork server's, which every call it forks starts from)."""


def remember_import() -> None:
    """Called by the fork server once its import is done."""
    _AT_IMPORT[:] = [fingerprint(capture())]


def dumps(settings: Settings, main_there: bool = False) -> bytes | None:
    """For the child: pickle, or cloudpickle for a formatter defined in the
    caller's session (a lambda) or in its `__main__` (unless the child has
    the caller's `__main__` too: `main_there`); None when neither can."""
    try:
        blob = pickle.dumps(settings, protocol=5)
        if main_there or b"__main__" not in blob:
            return blob
    except Exception:
        pass
    try:
        import cloudpickle

        return cloudpickle.dumps(settings, protocol=5)
    except Exception:
        return None


def apply(blob: bytes | None, printed: str | None = None) -> None:
    """In the child, before the call: the caller's settings (`dumps`).
    `printed`: their fingerprint; when it is the import's, there is nothing
    to do."""
    if printed is not None and _AT_IMPORT == [printed]:
        return
    given = dict(pickle.loads(blob) if blob else [])
    if "pandas.options" in given:
        import pandas as pd

        here = _pandas_options() or {}
        for key, value in given["pandas.options"]:
            if key in here and not _same(here[key], value):
                pd.set_option(key, value)
    if "warnings.filters" in given:
        import warnings

        warnings.filters[:] = [tuple(f) for f in given["warnings.filters"]]
        warnings._filters_mutated()  # type: ignore[attr-defined]
    if "numpy.printoptions" in given:
        import numpy as np

        np.set_printoptions(**dict(given["numpy.printoptions"]))
        np.seterr(**dict(given["numpy.errstate"]))
        np.seterrcall(given.get("numpy.errcall"))
    if "decimal.context" in given:
        import decimal

        prec, rounding, emin, emax, capitals, clamp, traps = given["decimal.context"]
        c = decimal.getcontext()
        c.prec, c.rounding, c.Emin, c.Emax, c.capitals, c.clamp = prec, rounding, emin, emax, capitals, clamp
        for signal in list(c.traps):
            c.traps[signal] = signal.__name__ in traps
    if "polars.config" in given:
        import polars as pl

        if pl.Config.save() != given["polars.config"]:
            pl.Config.load(given["polars.config"])
