"""Canonical argument hashing with real numpy, pandas and polars."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

import numpy as np
import pandas as pd
import polars as pl
import pytest

from casher._hashing import UnsupportedArgument, digest


def d(value) -> str:
    return digest(value, "arg")


def test_scalars_and_containers() -> None:
    assert d(1) != d(1.0) != d(True)
    assert d(0.0) != d(-0.0)
    assert d(float("nan")) == d(float("nan"))
    assert d("a") != d(b"a")
    assert d((1, 2)) != d([1, 2])
    # A dict's order is observable (iterating it): it counts. A set's does
    # not (it follows the string hash seed of the process).
    assert d({"a": 1, "b": 2}) != d({"b": 2, "a": 1})
    assert d({"a": 1, "b": 2}) == d(dict([("a", 1), ("b", 2)]))
    assert d({1, 2, 3}) == d({3, 2, 1}) != d(frozenset({1, 2}))
    assert d(dt.date(2024, 1, 2)) != d(dt.datetime(2024, 1, 2))
    assert d(dt.timedelta(seconds=1)) != d(dt.timedelta(seconds=2))

    class Color(enum.Enum):
        RED = 1
        BLUE = 2

    assert d(Color.RED) != d(Color.BLUE) != d(1)

    @dataclasses.dataclass
    class Cfg:
        a: int
        b: str = "x"

    assert d(Cfg(1)) == d(Cfg(1, "x")) != d(Cfg(2))


def test_numpy_layout_does_not_matter_values_do() -> None:
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    assert d(a) == d(np.asfortranarray(a)) == d(a.copy())
    assert d(a[:, ::2]) == d(np.ascontiguousarray(a[:, ::2]))
    assert d(a) != d(a.astype(np.float32))
    assert d(a) != d(a.reshape(6, 4))
    b = a.copy()
    b[3, 5] += 1
    assert d(a) != d(b)


def test_pandas_frames() -> None:
    df = pd.DataFrame({"x": np.arange(5), "y": list("abcde"), "z": np.linspace(0, 1, 5)})
    same = pd.concat([df.iloc[:2], df.iloc[2:]])
    assert d(df) == d(same)
    assert d(df) != d(df[["y", "x", "z"]]), "column order"
    assert d(df) != d(df.rename(columns={"x": "w"})), "column name"
    assert d(df) != d(df.astype({"x": "int32"})), "dtype"
    assert d(df) != d(df.set_index(pd.Index([5, 6, 7, 8, 9]))), "index"
    changed = df.copy()
    changed.loc[4, "y"] = "E"
    assert d(df) != d(changed), "a string value"
    assert d(df["x"]) != d(df["z"])
    assert d(pd.Series(["a", None, "b"])) != d(pd.Series(["a", "", "b"]))


def test_polars_chunking_does_not_matter_values_do() -> None:
    df = pl.DataFrame({"a": [1, 2, 3, 4], "s": ["p", None, "q", "r"], "f": [0.5, None, 1.5, 2.5]})
    chunked = pl.concat([df.slice(0, 2), df.slice(2, 2)], rechunk=False)
    assert chunked.n_chunks() > 1
    assert d(df) == d(chunked)
    assert d(df) != d(df.select(["s", "a", "f"]))
    assert d(df) != d(df.with_columns(pl.col("a").cast(pl.Int32)))
    assert d(df) != d(df.with_columns(pl.col("s").fill_null("")))
    assert d(df) != d(df.with_columns(pl.col("f").fill_null(0.0)))
    assert d(df.lazy().filter(pl.col("a") > 1)) != d(df.lazy().filter(pl.col("a") > 2))


def test_unsupported_types_are_a_type_error_naming_the_argument() -> None:
    # What neither walks nor pickles (a plain object() now pickles, so it is
    # accepted: see test_values.py) is refused, naming the argument.
    import threading

    with pytest.raises(UnsupportedArgument, match=r"argument 'arg\[0\]' of type _thread.lock"):
        d([threading.Lock()])
    with pytest.raises(UnsupportedArgument, match=r"argument 'arg' of type builtins.generator"):
        d(x for x in range(3))
    assert issubclass(UnsupportedArgument, TypeError)
