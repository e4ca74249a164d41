"""Canonical hashing of data: numpy, pandas, polars and pyarrow values.

Numeric buffers are hashed from memory; Arrow data (pyarrow, polars, and
pandas' Arrow-backed and `str` columns) through the Arrow C data interface
by the native walker (no per-element Python loop, chunking and string
layout do not count); object arrays element by element in native code
(every element: no sampling). The library is only imported when the value
comes from it.
"""

from __future__ import annotations

import sys
from typing import Any

from casher import _hashing
from casher._hashing import _feed, _len, _tag, _text


def feed(h: Any, value: Any, where: str, stack: list) -> bool:
    """Feeds `value` if it is a data value; False when it is not one."""
    module = type(value).__module__.split(".")[0]
    if module == "numpy" and "numpy" in sys.modules:
        return _numpy_value(h, value, where)
    if module == "pandas" and "pandas" in sys.modules:
        return _pandas_value(h, value, where, stack)
    if module == "polars" and "polars" in sys.modules:
        return _polars_value(h, value, where, stack)
    if module == "pyarrow" and "pyarrow" in sys.modules:
        import pyarrow as pa

        if isinstance(value, (pa.Table, pa.RecordBatch, pa.Array, pa.ChunkedArray)):
            _text(h, b"pyarrow", type(value).__name__)
            _arrow(h, value, where, metadata=True)
            return True
    if "numpy" in sys.modules:
        import numpy as np

        if isinstance(value, np.ndarray):  # a subclass from elsewhere
            _text(h, b"ndarray-subclass", _hashing._qualname(type(value)))
            numpy_array(h, np.asarray(value), where)
            _feed(h, getattr(value, "__dict__", None), f"{where}.__dict__", stack)
            return True
    return False


# -- numpy ---------------------------------------------------------------


def _numpy_value(h: Any, value: Any, where: str) -> bool:
    import numpy as np

    if type(value) is np.ndarray or type(value) is np.memmap:
        _tag(h, b"ndarray")
        numpy_array(h, value, where)
        return True
    if isinstance(value, np.ma.MaskedArray):
        _tag(h, b"masked")
        numpy_array(h, value.data, where)
        numpy_array(h, np.ma.getmaskarray(value), f"{where}.mask")
        numpy_array(h, np.asarray(value.fill_value), f"{where}.fill_value")
        return True
    if isinstance(value, np.ndarray):
        _text(h, b"ndarray-subclass", _hashing._qualname(type(value)))
        numpy_array(h, np.asarray(value), where)
        return True
    if isinstance(value, np.generic):
        _tag(h, b"npscalar")
        numpy_array(h, np.asarray(value), where)
        return True
    if isinstance(value, np.dtype):
        _text(h, b"npdtype", repr(value))
        return True
    return False


def numpy_array(h: Any, arr: Any, where: str) -> None:
    import numpy as np

    dtype = arr.dtype
    _text(h, b"dtype", dtype.str if dtype.fields is None else repr(dtype))
    h.update(_len(arr.ndim) + b"".join(_len(d) for d in arr.shape))
    if dtype.fields is not None:
        # Field by field: padding bytes between fields are not values.
        for name in dtype.names:
            numpy_array(h, arr[name], f"{where}[{name!r}]")
        return
    contiguous = np.ascontiguousarray(arr)
    address = contiguous.__array_interface__["data"][0] if contiguous.size else 0
    if dtype.hasobject:
        _tag(h, b"objects")
        h.update_objects(address, contiguous.size, lambda item: _hashing.sub_digest(item, f"{where}[...]"))
        return
    # Floats are hashed by their bits: NaNs with different payloads differ,
    # which can only cause a miss, never a wrong hit, and saves a full pass.
    h.update_memory(address, contiguous.nbytes)


# -- pyarrow -------------------------------------------------------------


def _arrow(h: Any, value: Any, where: str, metadata: bool) -> None:
    why = h.update_arrow(value, metadata)
    if why is None:
        return
    # A layout the native walker does not know (unions, run-end encoded):
    # exactly, element by element.
    _text(h, b"arrow-elements", str(value.type if hasattr(value, "type") else value.schema))
    items = value.to_pylist() if hasattr(value, "to_pylist") else value.to_list()
    _feed(h, items, where, [])


# -- pandas --------------------------------------------------------------


def _pandas_value(h: Any, value: Any, where: str, stack: list) -> bool:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        _tag(h, b"pdframe")
        h.update(_len(value.shape[0]) + _len(value.shape[1]))
        pandas_index(h, value.columns, f"{where}.columns")
        pandas_index(h, value.index, f"{where}.index")
        for i in range(value.shape[1]):
            pandas_values(h, value.iloc[:, i], f"{where}[{value.columns[i]!r}]")
        _feed(h, value.attrs or None, f"{where}.attrs", stack)
        _feed(h, value.flags.allows_duplicate_labels, where, stack)
        return True
    if isinstance(value, pd.Series):
        _tag(h, b"pdseries")
        _feed(h, value.name, f"{where}.name", stack)
        pandas_index(h, value.index, f"{where}.index")
        pandas_values(h, value, where)
        _feed(h, value.attrs or None, f"{where}.attrs", stack)
        return True
    if isinstance(value, pd.Index):
        pandas_index(h, value, where)
        return True
    if isinstance(value, pd.api.extensions.ExtensionArray):
        _tag(h, b"pdarray")
        pandas_values(h, pd.Series(value, copy=False), where)
        return True
    return False


def pandas_index(h: Any, index: Any, where: str) -> None:
    import pandas as pd

    _text(h, b"pdindex", type(index).__name__)
    _feed(h, list(index.names), f"{where}.names", [])
    if isinstance(index, pd.RangeIndex):
        _feed(h, (index.start, index.stop, index.step), where, [])
        return
    if isinstance(index, pd.MultiIndex):
        h.update(_len(index.nlevels))
        for level in range(index.nlevels):
            pandas_values(h, index.get_level_values(level), f"{where}.levels[{level}]")
        return
    _feed(h, getattr(index, "freqstr", None), f"{where}.freq", [])
    pandas_values(h, index, where)


def _dtype(h: Any, dtype: Any) -> None:
    _text(h, b"pddtype", f"{type(dtype).__module__}.{type(dtype).__qualname__}:{dtype}")
    for attr in ("storage", "na_value", "tz", "ordered", "closed"):
        if hasattr(dtype, attr):
            _text(h, attr.encode(), repr(getattr(dtype, attr)))


def pandas_values(h: Any, values: Any, where: str) -> None:
    """A Series' or an Index's values, by what their dtype stores."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    _dtype(h, dtype)
    arr = values.array
    if isinstance(dtype, np.dtype):
        numpy_array(h, values.to_numpy(copy=False), where)
    elif isinstance(dtype, pd.CategoricalDtype):
        pandas_index(h, dtype.categories, f"{where}.categories")
        numpy_array(h, np.asarray(arr.codes), where)
    elif isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        numpy_array(h, np.asarray(arr.asi8), where)
    elif isinstance(dtype, pd.IntervalDtype):
        numpy_array(h, np.asarray(arr.isna()), f"{where}.isna")
        pandas_index(h, arr.left, f"{where}.left")
        pandas_index(h, arr.right, f"{where}.right")
    elif isinstance(dtype, pd.SparseDtype):
        numpy_array(h, np.asarray(arr.to_dense()), where)
    elif hasattr(arr, "_data") and hasattr(arr, "_mask"):  # nullable: Int64, Float64, boolean
        mask = np.asarray(arr._mask)
        data = np.asarray(arr._data)
        if mask.any():
            data = data.copy()
            data[mask] = 0  # what lies under NA is not a value
        numpy_array(h, mask, f"{where}.mask")
        numpy_array(h, data, where)
    elif hasattr(arr, "__arrow_array__") and getattr(dtype, "storage", "pyarrow") == "pyarrow":
        _arrow(h, arr.__arrow_array__(), where, metadata=True)
    else:  # the Python-storage `string` dtype and other extension arrays
        numpy_array(h, np.asarray(arr, dtype=object), where)


# -- polars --------------------------------------------------------------


def _polars_value(h: Any, value: Any, where: str, stack: list) -> bool:
    import polars as pl

    if isinstance(value, pl.DataFrame):
        _tag(h, b"plframe")
        h.update(_len(value.height) + _len(value.width))
        for column in value.get_columns():
            _polars_series(h, column, f"{where}[{column.name!r}]")
        return True
    if isinstance(value, pl.Series):
        _tag(h, b"plseries")
        _polars_series(h, value, where)
        return True
    if isinstance(value, (pl.LazyFrame, pl.Expr)):
        plan = value.serialize() if isinstance(value, pl.LazyFrame) else value.meta.serialize()
        data = plan.encode() if isinstance(plan, str) else bytes(plan)
        _text(h, b"pllazy", type(value).__name__)
        h.update(_len(len(data)) + data)
        return True
    if isinstance(value, pl.DataType) or (isinstance(value, type) and issubclass(value, pl.DataType)):
        _text(h, b"pldtype", repr(value))
        return True
    return False


def _polars_series(h: Any, s: Any, where: str) -> None:
    import polars as pl

    _text(h, b"plname", s.name)
    _text(h, b"pldtype", repr(s.dtype))
    h.update(_len(len(s)))
    if s.dtype == pl.Object:
        _feed(h, s.to_list(), where, [])
        return
    # polars' own Arrow metadata (categorical ids) is process-local: the
    # dtype above says what it means.
    _arrow(h, s, where, metadata=False)
