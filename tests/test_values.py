"""Argument hashing over the Python data world (real numpy, pandas, polars,
pyarrow): every type is accepted, equal values hash equal however they are
laid out, and values a program could tell apart hash differently."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import pathlib
import typing
import uuid
import zoneinfo

import attrs
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pydantic
import pytest
from casher._hashing import UnsupportedArgument, digest


def d(value) -> str:
    return digest(value, "arg")


def same(*values) -> None:
    assert len({d(v) for v in values}) == 1, values


def distinct(*values) -> None:
    digests = [d(v) for v in values]
    assert len(set(digests)) == len(values), values


# -- standard types -------------------------------------------------------


class Color(enum.Enum):
    RED = 1
    BLUE = 2


Point = collections.namedtuple("Point", "x y")
Other = collections.namedtuple("Other", "x y")


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: str = "x"


@dataclasses.dataclass
class Cfg:
    a: int


@attrs.define
class AttrsCfg:
    a: int
    b: list = attrs.field(factory=list)


class Model(pydantic.BaseModel):
    a: int
    b: str = "x"


class Plain:
    def __init__(self, a):
        self.a = a


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


class Stateful:
    def __init__(self, a):
        self.a = a

    def __getstate__(self):
        return {"only": self.a}


def test_datetimes_with_time_zones() -> None:
    paris, utc = zoneinfo.ZoneInfo("Europe/Paris"), dt.timezone.utc
    t = dt.datetime(2024, 3, 1, 12, 0)
    same(t, dt.datetime(2024, 3, 1, 12, 0))
    distinct(t, t.replace(tzinfo=paris), t.replace(tzinfo=utc), t.replace(tzinfo=dt.timezone(dt.timedelta(hours=1))), t.replace(microsecond=1))
    distinct(t.replace(fold=0), t.replace(fold=1))
    distinct(dt.date(2024, 1, 2), dt.datetime(2024, 1, 2), dt.time(1, 2), dt.time(1, 2, tzinfo=utc))
    distinct(dt.timedelta(seconds=1), dt.timedelta(seconds=2), dt.timedelta(days=1))


def test_numbers_decimal_fraction_complex() -> None:
    distinct(decimal.Decimal("1.10"), decimal.Decimal("1.1"), decimal.Decimal("-0"), decimal.Decimal(0), decimal.Decimal("1E+1"), decimal.Decimal(10))
    same(decimal.Decimal("1.10"), decimal.Decimal("1.10"))
    distinct(fractions.Fraction(1, 3), fractions.Fraction(2, 3), 1 / 3)
    same(fractions.Fraction(2, 6), fractions.Fraction(1, 3))
    distinct(1 + 2j, 1 - 2j, complex(1, 0), 1.0)
    distinct(1, 1.0, True, 10**30, 10**30 + 1)


def test_identifiers_paths_ranges_enums() -> None:
    u = uuid.UUID(int=5)
    same(u, uuid.UUID(int=5))
    distinct(u, uuid.UUID(int=6), str(u))
    distinct(pathlib.Path("a/b"), pathlib.PurePosixPath("a/b"), "a/b", pathlib.Path("a/c"))
    same(pathlib.Path("a/b"), pathlib.Path("a") / "b")
    distinct(range(3), range(4), range(0, 3, 2), [0, 1, 2])
    distinct(Color.RED, Color.BLUE, 1)


def test_mappings_and_sequences() -> None:
    od = collections.OrderedDict
    distinct(od(a=1, b=2), od(b=2, a=1), {"a": 1, "b": 2})
    same(collections.Counter("abca"), collections.Counter("abca"))
    distinct(collections.Counter("ab"), collections.Counter("abb"), {"a": 1, "b": 1})
    distinct(collections.defaultdict(int, a=1), collections.defaultdict(list, a=1), collections.defaultdict(lambda: 0, a=1), {"a": 1})
    distinct(collections.defaultdict(lambda: 0), collections.defaultdict(lambda: 1))
    distinct(collections.deque([1, 2]), collections.deque([1, 2], maxlen=5), [1, 2], collections.deque([2, 1]))
    distinct(Point(1, 2), Other(1, 2), (1, 2), Point(2, 1))
    same(Point(1, 2), Point(x=1, y=2))
    same({1, 2, 3}, {3, 2, 1})
    distinct(frozenset({1}), {1})


def test_objects_count_every_attribute() -> None:
    c1, c2, c3 = Cfg(1), Cfg(1), Cfg(1)
    same(c1, c2)
    c1.extra, c3.extra = 5, 6
    distinct(c1, c3, c2)
    distinct(Frozen(1), Frozen(1, "y"), Frozen(2), Cfg(1))
    same(Frozen(1), Frozen(1, "x"))
    distinct(AttrsCfg(1), AttrsCfg(1, [2]), AttrsCfg(2))
    same(AttrsCfg(1, [2]), AttrsCfg(1, [2]))
    distinct(Model(a=1), Model(a=1, b="y"), Model(a=2))
    same(Model(a=1), Model(a=1))
    p, q = Plain(1), Plain(1)
    same(p, q)
    q.more = [1]
    distinct(p, q, Plain(2))
    distinct(Slotted(1, 2), Slotted(1, 3))
    same(Stateful(1), Stateful(1))
    distinct(Stateful(1), Stateful(2))


def test_cycles_and_functions() -> None:
    a: list = [1]
    a.append(a)
    b: list = [1]
    b.append(b)
    same(a, b)
    distinct(a, [1, [1]])

    def f(x):
        return x + 1

    def g(x):
        return x + 2

    distinct(f, g, len, print)
    same(len, len)
    distinct([1].append, [2].append, [1].extend)
    same([1].append, [1].append)


def test_pickled_as_last_resort_and_refused_when_it_does_not_pickle() -> None:
    same(object(), object())  # nothing to tell apart
    import threading

    with pytest.raises(UnsupportedArgument, match=r"argument 'arg\.lock' of type _thread.lock"):
        digest(threading.Lock(), "arg.lock")


# -- numpy ----------------------------------------------------------------


def test_numpy_every_dtype() -> None:
    for dtype in ["i1", "u2", "i4", "i8", "f2", "f4", "f8", "c16", "?", "M8[ns]", "m8[s]", "U3", "S3", "V4"]:
        a = np.zeros(4, dtype=dtype)
        same(a, a.copy(), np.zeros(4, dtype=dtype))
        distinct(a, np.zeros(5, dtype=dtype), a.reshape(2, 2))
    distinct(np.zeros(4, "i4"), np.zeros(4, "i8"), np.zeros(4, ">i4"), np.zeros(4, "f4"))
    distinct(np.array(["ab"]), np.array([b"ab"]), np.array(["ab"], dtype="U3"))


def test_numpy_structured_and_object_arrays() -> None:
    s1 = np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    s2 = np.array([(1, 2.0)], dtype=[("x", "i4"), ("b", "f8")])
    aligned = np.array([(1, 2.0)], dtype=np.dtype([("a", "i4"), ("b", "f8")], align=True))
    distinct(s1, s2, aligned)
    same(s1, s1.copy())
    objects = np.array([1, "a", None, 2.5, (1, 2)], dtype=object)
    same(objects, objects.copy())
    for i, other in enumerate([2, "b", float("nan"), 2.6, (1, 3)]):
        changed = objects.copy()
        changed[i] = other
        distinct(objects, changed)
    big = np.array(["x"] * 5000, dtype=object)
    late_none, late_nan = big.copy(), big.copy()
    late_none[4000], late_nan[4000] = None, float("nan")
    distinct(late_none, late_nan, big)
    masked = np.ma.array([1, 2, 3], mask=[0, 1, 0])
    distinct(masked, np.ma.array([1, 2, 3], mask=[0, 0, 0]), np.array([1, 2, 3]))
    same(np.float64(1.5), np.float64(1.5))
    distinct(np.float64(1.5), np.float32(1.5), 1.5, np.int64(1), 1)


# -- pandas ---------------------------------------------------------------


PANDAS_SERIES = {
    "int": pd.Series([1, 2, 3]),
    "float nan": pd.Series([1.0, np.nan, 3.0]),
    "Int64 NA": pd.Series([1, None, 3], dtype="Int64"),
    "Float64 NA": pd.Series([1.0, None, 3.0], dtype="Float64"),
    "boolean": pd.Series([True, None, False], dtype="boolean"),
    "str": pd.Series(["a", None, "c"], dtype="str"),
    "string python": pd.Series(["a", None, "c"], dtype="string[python]"),
    "string pyarrow": pd.Series(["a", None, "c"], dtype="string[pyarrow]"),
    "object": pd.Series(["a", None, "c"], dtype=object),
    "object nan": pd.Series(["a", np.nan, "c"], dtype=object),
    "arrow int": pd.Series([1, None, 3], dtype="int64[pyarrow]"),
    "arrow list": pd.Series([[1], None, [2, 3]], dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
    "category": pd.Series(["a", "b", "a"], dtype="category"),
    "category other order": pd.Series(["a", "b", "a"], dtype=pd.CategoricalDtype(["b", "a"])),
    "datetime": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-03"])),
    "datetime tz": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-03"])).dt.tz_localize("Europe/Paris"),
    "datetime utc": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-03"])).dt.tz_localize("UTC"),
    "timedelta": pd.Series(pd.to_timedelta([1, 2, 3], unit="s")),
    "period": pd.Series(pd.period_range("2024-01", periods=3, freq="M")),
    "interval": pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 2, 3])),
    "interval left": pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 2, 3], closed="left")),
    "sparse": pd.Series(pd.arrays.SparseArray([0, 0, 1])),
}


def test_pandas_every_dtype_accepted_and_distinct() -> None:
    digests = {name: d(s) for name, s in PANDAS_SERIES.items()}
    assert len(set(digests.values())) == len(digests), digests
    for name, s in PANDAS_SERIES.items():
        assert d(s) == d(s.copy(deep=True)), name
        changed = s.iloc[::-1].reset_index(drop=True)
        if not changed.equals(s):
            assert d(changed) != d(s), name


def test_pandas_none_vs_nan_everywhere_not_only_first_rows() -> None:
    base = ["x"] * 3000
    with_none, with_nan = base.copy(), base.copy()
    with_none[2500], with_nan[2500] = None, np.nan
    distinct(pd.DataFrame({"c": pd.Series(with_none, dtype=object)}), pd.DataFrame({"c": pd.Series(with_nan, dtype=object)}))
    distinct(pd.Series([1, None], dtype="Int64"), pd.Series([1, 0], dtype="Int64"))
    distinct(pd.Series([1.0, None], dtype="Float64"), pd.Series([1.0, np.nan]), pd.Series([1.0, None], dtype="float64[pyarrow]"))


def test_pandas_frames_layout_and_chunking_do_not_count() -> None:
    df = pd.DataFrame({"x": np.arange(6), "s": pd.Series(list("abcdef"), dtype="str"), "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64")})
    same(df, pd.concat([df.iloc[:2], df.iloc[2:]]), df.copy())
    arrow_chunked = df.astype({"s": "string[pyarrow]"})
    arrow_one = df.astype({"s": "string[pyarrow]"})
    arrow_chunked["s"] = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["a", "b"], ["c", "d", "e", "f"]])))
    same(arrow_chunked, arrow_one)
    distinct(df, df[["s", "x", "n"]], df.set_index("x"), df.rename(columns={"x": "y"}), df.astype({"x": "int32"}))
    multi = df.set_index(["x", "s"])
    distinct(multi, df.set_index(["s", "x"]), df.set_index("x"))
    same(multi, df.copy().set_index(["x", "s"]))
    distinct(pd.Index([1, 2]), pd.RangeIndex(1, 3), pd.Index([1, 2], name="a"))
    distinct(pd.Series([1, 2], name="a"), pd.Series([1, 2], name="b"), pd.Series([1, 2], index=[1, 0]))


def test_pandas_scalars() -> None:
    distinct(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01", tz="UTC"), dt.datetime(2024, 1, 1), pd.Timestamp("2024-01-01 00:00:00.000000001"))
    distinct(pd.NA, pd.NaT, None, np.nan, pd.Timedelta(1), pd.Period("2024-01", freq="M"), pd.Interval(0, 1))
    same(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01"))


# -- polars and pyarrow ---------------------------------------------------


def test_polars_every_dtype_nested_included() -> None:
    df = pl.DataFrame(
        {
            "i": [1, None, 3],
            "u8": pl.Series([1, 2, 3], dtype=pl.UInt8),
            "f": [0.5, float("nan"), None],
            "b": [True, None, False],
            "s": ["short", None, "a string longer than twelve bytes"],
            "bin": [b"a", None, b"c"],
            "cat": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
            "enum": pl.Series(["a", "b", "a"], dtype=pl.Enum(["a", "b"])),
            "date": [dt.date(2024, 1, 1), None, dt.date(2024, 1, 3)],
            "dt": pl.Series([dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 3)]).dt.replace_time_zone("Europe/Paris"),
            "dur": [dt.timedelta(1), None, dt.timedelta(3)],
            "time": [dt.time(1), None, dt.time(3)],
            "dec": pl.Series([decimal.Decimal("1.10"), None, decimal.Decimal("2.00")]),
            "list": [[1, 2], None, []],
            "array": pl.Series([[1, 2], [3, 4], [5, 6]], dtype=pl.Array(pl.Int64, 2)),
            "struct": [{"a": 1, "b": "x"}, None, {"a": 3, "b": None}],
            "nested": [[{"a": [1]}], [], None],
            "null": [None, None, None],
        }
    )
    chunked = pl.concat([df.slice(0, 1), df.slice(1, 2)], rechunk=False)
    assert chunked.n_chunks() > 1
    same(df, chunked, df.clone())
    for name in df.columns:
        same(df[name], chunked[name])
        if name == "null":
            continue
        changed = df.with_columns(pl.col(name).reverse())
        if not changed[name].equals(df[name]):
            distinct(df, changed)
        distinct(df[name], df[name].rename("other"))
    distinct(df["i"], df["i"].cast(pl.Int32), df["i"].fill_null(0))
    distinct(df["f"], df["f"].fill_nan(None), df["f"].fill_null(float("nan")))
    distinct(df["s"], df["s"].cast(pl.Categorical), df["s"].fill_null(""))
    distinct(df, df.select(list(reversed(df.columns))))


def test_pyarrow_tables_batches_arrays() -> None:
    t = pa.table({"a": [1, None, 3], "s": ["x", "y", None], "l": [[1], [], None]})
    rechunked = pa.concat_tables([t.slice(0, 1), t.slice(1)])
    assert rechunked.column("a").num_chunks == 2
    same(t, rechunked, t.combine_chunks())
    distinct(t, t.select(["s", "a", "l"]), t.cast(pa.schema([("a", pa.int32()), ("s", pa.string()), ("l", pa.list_(pa.int64()))])))
    distinct(t, t.replace_schema_metadata({"k": "v"}), t.to_batches()[0] if t.num_rows else t)
    same(pa.array([1, 2, 3]).slice(1), pa.array([2, 3]))
    distinct(pa.array(["a", None]), pa.array(["a", ""]), pa.array(["a", None], type=pa.large_string()))
    same(pa.chunked_array([["a"], ["b", None]]), pa.chunked_array([["a", "b", None]]))
    dictionary = pa.array(["a", "b", "a"]).dictionary_encode()
    same(pa.chunked_array([dictionary.slice(0, 1), pa.array(["b", "a"]).dictionary_encode()]), pa.chunked_array([dictionary]))
    union = pa.UnionArray.from_sparse(pa.array([0, 1], type=pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])])
    same(union, union)
    distinct(union, pa.UnionArray.from_sparse(pa.array([0, 0], type=pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]))


def test_typing_annotations_do_not_crash() -> None:
    same(typing.Optional[int], typing.Optional[int])


# -- property-based: hash equal exactly when observably equal --------------

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KINDS = ["int64", "float64", "Int64", "Float64", "boolean", "str", "object", "category", "string[pyarrow]", "datetime64[ns]"]


def _values(kind: str):
    if kind in ("int64", "Int64", "datetime64[ns]"):
        item = st.integers(-5, 5)
    elif kind in ("float64", "Float64"):
        item = st.sampled_from([0.5, 1.0, 2.5, float("nan"), -1.0])
    elif kind == "boolean":
        item = st.booleans()
    else:
        item = st.sampled_from(["a", "b", "", "ab", "é"])
    if kind in ("Int64", "Float64", "boolean", "str", "object", "category", "string[pyarrow]"):
        item = st.one_of(item, st.none(), st.just(float("nan"))) if kind == "object" else st.one_of(item, st.none())
    return item


def _frame(values: list, kind: str, split: int, name: str) -> pd.DataFrame:
    if kind == "datetime64[ns]":
        column = pd.Series(pd.to_datetime(values, unit="D"))
    elif kind == "int64":
        column = pd.Series(values, dtype="int64")
    else:
        column = pd.Series(values, dtype=kind)
    df = pd.DataFrame({name: column, "k": np.arange(len(values))})
    if 0 < split < len(values):  # another layout of the same values
        df = pd.concat([df.iloc[:split], df.iloc[split:]])
    return df


def _observably_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if not (a.equals(b) and list(a.dtypes) == list(b.dtypes) and list(a.columns) == list(b.columns)):
        return False
    return all([repr(v) for v in a[c].tolist()] == [repr(v) for v in b[c].tolist()] for c in a.columns) and a.index.equals(b.index)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_frames_hash_equal_exactly_when_observably_equal(data) -> None:
    kind_a = data.draw(st.sampled_from(KINDS))
    kind_b = data.draw(st.sampled_from([kind_a, kind_a, *KINDS]))
    values_a = data.draw(st.lists(_values(kind_a), max_size=12))
    same_values = data.draw(st.booleans())
    values_b = list(values_a) if same_values and kind_a == kind_b else data.draw(st.lists(_values(kind_b), min_size=len(values_a), max_size=len(values_a) + 1))
    name_b = data.draw(st.sampled_from(["v", "v", "w"]))
    a = _frame(values_a, kind_a, 0, "v")
    try:
        b = _frame(values_b, kind_b, data.draw(st.integers(0, 12)), name_b)
    except (TypeError, ValueError):
        return
    assert (d(a) == d(b)) == _observably_equal(a, b), (a, b)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 3), st.none()), max_size=20), st.integers(0, 20))
def test_polars_and_arrow_chunking_never_counts(values, split) -> None:
    s = pl.Series("v", values, dtype=pl.Int64)
    chunked = pl.concat([s.slice(0, split), s.slice(split)], rechunk=False)
    same(s, chunked)
    t = pa.table({"v": pa.array(values, type=pa.int64())})
    same(t, pa.concat_tables([t.slice(0, split), t.slice(split)]))
    if values:
        changed = list(values)
        changed[0] = None if values[0] is not None else 0
        distinct(s, pl.Series("v", changed, dtype=pl.Int64))
