"""Values through `@cached` end to end (real traced child, real store, real
numpy/pandas/polars/pyarrow): arguments that differ observably miss, equal
ones hit, and large results come back from the store's objects by memory
map, equal to a plain call and as writeable as its result."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from test_cached import project, unique  # noqa: F401  (fixture)

MODULE = """
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from casher import cached

@cached
def count_none(df):
    print("computing")
    return int(sum(v is None for v in df["c"]))

@cached
def describe(cfg):
    print("computing")
    return sorted(vars(cfg).items())

@cached
def arrays(n):
    print("computing")
    rng = np.random.default_rng(n)
    return {
        "np": rng.random(n),
        "pd": pd.DataFrame({
            "x": rng.random(n),
            "i": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"),
            "s": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 99, n).astype(str)), dtype="str"),
            "c": pd.Categorical(rng.integers(0, 3, n).astype(str)),
        }),
        "pl": pl.DataFrame({"a": rng.integers(0, 5, n), "s": rng.integers(0, 99, n).astype(str), "l": [[1, 2]] * n}),
        "pa": pa.table({"v": rng.random(n)}),
    }
"""


@dataclasses.dataclass
class Cfg:
    a: int


def objects(cache_dir: Path) -> list[Path]:
    return [p for p in (cache_dir / "store-v1" / "objects").rglob("*") if p.is_file()]


def test_none_vs_nan_past_row_1000_and_extra_attributes_miss(project, capsys) -> None:
    root, write, load = project
    name = unique()
    write(f"{name}.py", MODULE)
    mod = load(name)
    values = ["x"] * 3000
    with_none, with_nan = list(values), list(values)
    with_none[2500], with_nan[2500] = None, float("nan")
    assert mod.count_none(pd.DataFrame({"c": pd.Series(with_none, dtype=object)})) == 1
    assert mod.count_none(pd.DataFrame({"c": pd.Series(with_nan, dtype=object)})) == 0
    assert mod.count_none(pd.DataFrame({"c": pd.Series(with_none, dtype=object)})) == 1
    assert mod.count_none.cache_info()["misses"] == 2  # the third call hit
    assert mod.count_none.cache_info()["hits"] == 1
    c5, c6 = Cfg(1), Cfg(1)
    c5.extra, c6.extra = 5, 6
    assert mod.describe(c5) == [("a", 1), ("extra", 5)]
    assert mod.describe(c6) == [("a", 1), ("extra", 6)]
    assert mod.describe(Cfg(1)) == [("a", 1)]
    assert mod.describe.cache_info()["misses"] == 3


def _check_equal(got: dict, want: dict) -> None:
    np.testing.assert_array_equal(got["np"], want["np"])
    pd.testing.assert_frame_equal(got["pd"], want["pd"])
    assert got["pl"].equals(want["pl"]) and got["pl"].schema == want["pl"].schema
    assert got["pa"].equals(want["pa"])


def test_large_results_come_back_mapped_from_the_store(project, cache_dir: Path, capsys) -> None:
    root, write, load = project
    name = unique()
    write(f"{name}.py", MODULE)
    mod = load(name)
    n = 200_000
    plain = mod.arrays.__wrapped__(n)
    first = mod.arrays(n)
    _check_equal(first, plain)
    stored = objects(cache_dir)
    big = [p for p in stored if p.stat().st_size >= n * 8]
    assert big, "the large buffers are store objects of their own"
    hit = mod.arrays(n)
    assert mod.arrays.cache_info()["hits"] == 1
    _check_equal(hit, plain)
    # Writeable like a plain call's result; a write never reaches the store.
    assert hit["np"].flags.writeable
    hit["np"][:] = -1.0
    hit["pd"].loc[0, "x"] = -1.0
    again = mod.arrays(n)
    _check_equal(again, plain)
    info = mod.arrays.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 1, 1)
    # The mapped memory is the store's object: no copy was made.
    base = again["np"]
    while getattr(base, "base", None) is not None:
        base = base.base
    base = base.obj if isinstance(base, memoryview) else base
    assert type(base).__name__ == "mmap"


def test_a_corrupt_buffer_object_is_never_returned(project, cache_dir: Path, casher) -> None:
    root, write, load = project
    name = unique()
    write(f"{name}.py", MODULE)
    mod = load(name)
    n = 100_000
    plain = mod.arrays.__wrapped__(n)
    mod.arrays(n)
    assert casher("cache", "verify").code == 0
    victim = max(objects(cache_dir), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))  # same size, new stamp: re-verified
    _check_equal(mod.arrays(n), plain)
    _check_equal(mod.arrays(n), plain)


def test_gc_keeps_buffer_objects_of_live_entries(project, cache_dir: Path, casher) -> None:
    root, write, load = project
    name = unique()
    write(f"{name}.py", MODULE)
    mod = load(name)
    mod.arrays(100_000)
    before = {p.name for p in objects(cache_dir)}
    casher("cache", "gc")
    assert before <= {p.name for p in objects(cache_dir)}


def test_hit_in_a_fresh_process(project, cache_dir: Path) -> None:
    root, write, load = project
    name = unique()
    write(f"{name}.py", MODULE)
    code = f"import {name} as m; r = m.arrays(300_000); print(float(r['np'].sum()), r['pd'].shape, m.arrays.cache_info()['misses'])"
    outs = [subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert outs[0].endswith(" 1\n") and outs[1].endswith(" 0\n")  # a miss, then a hit
    assert outs[0][:-2] == outs[1][:-2]


@pytest.mark.parametrize("value", [np.arange(10), pd.Series([1, None], dtype="Int64"), pl.Series([1, 2]), pa.array([1, 2])])
def test_small_values_stay_inline(value) -> None:
    from casher import _values

    payload, buffers = _values.dumps(value)
    assert buffers == []
    restored = _values.loads(payload)
    assert type(restored) is type(value)


def test_polars_values_keep_their_exact_dtypes_through_transfer() -> None:
    import datetime as dt
    import decimal
    import pickle

    from casher import _values

    df = pl.DataFrame(
        {
            "enum": pl.Series(["a", "b"] * 20_000, dtype=pl.Enum(["a", "b", "c"])),
            "cat": pl.Series(["x", "y"] * 20_000, dtype=pl.Categorical),
            "dt": pl.Series([dt.datetime(2024, 1, 1), None] * 20_000).dt.replace_time_zone("Europe/Paris"),
            "dec": pl.Series([decimal.Decimal("1.10"), None] * 20_000),
            "arr": pl.Series([[1, 2], [3, 4]] * 20_000, dtype=pl.Array(pl.Int64, 2)),
            "st": [{"a": 1}, {"a": 2}] * 20_000,
        }
    )
    for value in [df, *df.get_columns(), df.head(2), *df.head(2).get_columns()]:
        payload, buffers = _values.dumps(value)
        back = pickle.loads(payload, buffers=buffers)
        assert type(back) is type(value)
        assert back.equals(value)
        if isinstance(value, pl.DataFrame):
            assert back.schema == value.schema
        else:
            assert (back.name, back.dtype) == (value.name, value.dtype)
