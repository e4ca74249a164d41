"""Canonical argument hashing.

Equal values hash equal whatever their chunking, slicing, memory order or
construction; any change of a value, name, order, dtype, shape or index
changes the hash. Large buffers are hashed by the native module straight
from memory, with the GIL released.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import struct
import sys
from pathlib import PurePath
from typing import Any

from casher import _native


class UnsupportedArgument(TypeError):
    """An argument casher cannot hash."""


def _len(n: int) -> bytes:
    return struct.pack("<Q", n)


def _text(h: Any, tag: bytes, s: str) -> None:
    data = s.encode("utf-8", "surrogatepass")
    h.update(tag + _len(len(data)) + data)


def digest(value: Any, where: str) -> str:
    h = _native.Hasher()
    feed(h, value, where)
    return h.hexdigest()


def _sub(value: Any, where: str) -> bytes:
    return bytes.fromhex(digest(value, where))


def _numpy_array(h: Any, arr: Any, where: str) -> None:
    import numpy as np

    _text(h, b"npdtype", arr.dtype.str)
    h.update(b"npshape" + _len(arr.ndim) + b"".join(_len(d) for d in arr.shape))
    if arr.dtype.hasobject:
        for i, item in enumerate(arr.flat):
            feed(h, item, f"{where}[{i}]")
        return
    # Floats are hashed by their bits: NaNs with different payloads differ,
    # which can only cause a miss, never a wrong hit, and saves a full pass.
    contiguous = np.ascontiguousarray(arr)
    h.update_memory(contiguous.__array_interface__["data"][0], contiguous.nbytes)


def _arrow_strings(h: Any, values: Any, where: str) -> None:
    """Strings as Arrow large_string buffers: offsets and data, exactly."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values.cast(pa.large_string())
    else:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    import numpy as np

    filled = arr.fill_null("")
    offsets_buf, data_buf = filled.buffers()[1], filled.buffers()[2]
    n = len(filled)
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1)
    offsets = offsets - offsets[0]
    h.update(b"strings" + _len(n))
    _numpy_array(h, nulls.astype(np.bool_), where)
    _numpy_array(h, offsets, where)
    if data_buf is not None and n:
        start = int(np.frombuffer(offsets_buf, dtype=np.int64, count=1)[0])
        data = np.frombuffer(data_buf, dtype=np.uint8)[start : start + int(offsets[-1])]
        _numpy_array(h, data, where)


def _pandas_values(h: Any, series: Any, where: str) -> None:
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    _text(h, b"pddtype", str(dtype))
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        _numpy_array(h, series.to_numpy(), where)
        return
    if isinstance(dtype, pd.CategoricalDtype):
        _pandas_index(h, dtype.categories, where)
        _numpy_array(h, np.asarray(series.cat.codes), where)
        return
    values = series.to_numpy(dtype=object)
    if all(isinstance(v, str) or v is None for v in values[: min(len(values), 1000)]):
        try:
            _arrow_strings(h, values, where)
            return
        except Exception:  # mixed objects after all: fall through to the exact walk
            pass
    for i, item in enumerate(values):
        if isinstance(item, float) and math.isnan(item):
            h.update(b"NaN")
        else:
            feed(h, item, f"{where}[{i}]")


def _pandas_index(h: Any, index: Any, where: str) -> None:
    import pandas as pd

    _text(h, b"pdindex", type(index).__name__)
    names = list(index.names)
    feed(h, names, f"{where}.index.names")
    if isinstance(index, pd.RangeIndex):
        h.update(b"range" + struct.pack("<qqq", index.start, index.stop, index.step))
        return
    if isinstance(index, pd.MultiIndex):
        h.update(b"levels" + _len(index.nlevels))
        for level in range(index.nlevels):
            _pandas_values(h, index.get_level_values(level).to_series(index=None), f"{where}.index")
        return
    _pandas_values(h, index.to_series(index=None), f"{where}.index")


def _polars_series(h: Any, s: Any, where: str) -> None:
    import numpy as np
    import polars as pl

    _text(h, b"plname", s.name)
    _text(h, b"pldtype", str(s.dtype))
    h.update(b"pllen" + _len(len(s)))
    s = s.rechunk()
    if s.null_count():
        _numpy_array(h, s.is_null().to_numpy(), where)
    else:
        h.update(b"nonull")
    dtype = s.dtype
    if dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal():
        filled = s.fill_null(strategy="zero") if s.null_count() else s
        if dtype.is_temporal():
            filled = filled.to_physical()
        _numpy_array(h, filled.to_numpy(), where)
        return
    if dtype in (pl.Utf8, pl.String) or dtype == pl.Categorical:
        _arrow_strings(h, s.cast(pl.String).to_arrow(), where)
        return
    for i, item in enumerate(s.to_list()):
        feed(h, item, f"{where}[{i}]")


def feed(h: Any, value: Any, where: str) -> None:
    """Feeds the canonical encoding of `value` into `h`."""
    t = type(value)
    if value is None:
        h.update(b"N")
    elif t is bool:
        h.update(b"B1" if value else b"B0")
    elif isinstance(value, enum.Enum):
        _text(h, b"enum", f"{t.__module__}.{t.__qualname__}")
        feed(h, value.value, where)
    elif t is int or (isinstance(value, int) and not isinstance(value, bool) and t.__module__ == "builtins"):
        _text(h, b"I", str(value))
    elif t is float:
        h.update(b"Fnan" if math.isnan(value) else b"F" + struct.pack("<d", value))
    elif t is complex:
        h.update(b"C" + struct.pack("<dd", value.real, value.imag))
    elif t is str:
        _text(h, b"S", value)
    elif t in (bytes, bytearray, memoryview):
        data = bytes(value)
        h.update(b"Y" + _len(len(data)) + data)
    elif t is tuple or t is list:
        h.update((b"T" if t is tuple else b"L") + _len(len(value)))
        for i, item in enumerate(value):
            feed(h, item, f"{where}[{i}]")
    elif t is dict:
        pairs = sorted((_sub(k, f"{where} key"), _sub(v, f"{where}[{k!r}]")) for k, v in value.items())
        h.update(b"D" + _len(len(pairs)) + b"".join(k + v for k, v in pairs))
    elif t in (set, frozenset):
        items = sorted(_sub(item, f"{where} item") for item in value)
        h.update(b"E" + _len(len(items)) + b"".join(items))
    elif isinstance(value, PurePath):
        _text(h, b"P", str(value))
    elif t is _dt.datetime:
        _text(h, b"DT", value.isoformat())
    elif t is _dt.date:
        _text(h, b"DA", value.isoformat())
    elif t is _dt.time:
        _text(h, b"TI", value.isoformat())
    elif t is _dt.timedelta:
        h.update(b"TD" + struct.pack("<qqq", value.days, value.seconds, value.microseconds))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _text(h, b"dataclass", f"{t.__module__}.{t.__qualname__}")
        for field in dataclasses.fields(value):
            _text(h, b"field", field.name)
            feed(h, getattr(value, field.name), f"{where}.{field.name}")
    else:
        _feed_library(h, value, where)


def _feed_library(h: Any, value: Any, where: str) -> None:
    module = type(value).__module__.split(".")[0]
    if module == "numpy" and "numpy" in sys.modules:
        import numpy as np

        if isinstance(value, np.ndarray):
            h.update(b"ndarray")
            _numpy_array(h, value, where)
            return
        if isinstance(value, np.generic):
            h.update(b"npscalar")
            _numpy_array(h, np.asarray(value), where)
            return
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            h.update(b"pdframe" + _len(value.shape[0]) + _len(value.shape[1]))
            _pandas_index(h, value.columns, f"{where}.columns")
            _pandas_index(h, value.index, where)
            for i in range(value.shape[1]):
                _pandas_values(h, value.iloc[:, i], f"{where}[{value.columns[i]!r}]")
            return
        if isinstance(value, pd.Series):
            h.update(b"pdseries")
            feed(h, value.name, f"{where}.name")
            _pandas_index(h, value.index, where)
            _pandas_values(h, value, where)
            return
        if isinstance(value, pd.Index):
            _pandas_index(h, value, where)
            return
    if module == "polars" and "polars" in sys.modules:
        import polars as pl

        if isinstance(value, pl.DataFrame):
            h.update(b"plframe" + _len(value.height) + _len(value.width))
            for column in value.get_columns():
                _polars_series(h, column, f"{where}[{column.name!r}]")
            return
        if isinstance(value, pl.Series):
            h.update(b"plseries")
            _polars_series(h, value, where)
            return
        if isinstance(value, pl.LazyFrame):
            plan = value.serialize()
            data = plan.encode() if isinstance(plan, str) else bytes(plan)
            h.update(b"pllazy" + _len(len(data)) + data)
            return
    t = type(value)
    raise UnsupportedArgument(
        f"casher cannot hash argument {where!r} of type {t.__module__}.{t.__qualname__}; "
        f"supported: None, bool, int, float, str, bytes, tuple, list, dict, set, Path, date/datetime/timedelta, "
        f"Enum, dataclasses, numpy arrays, pandas and polars frames/series. "
        f"To leave it out of the cache key, use @cached(ignore=[{where.split('[')[0].split('.')[0]!r}])"
    )
