"""Sending arguments to the traced child without copying large frames.

Polars frames pickle through their IPC serialization (a copy, in-band); sent
as Arrow instead, their buffers go out-of-band with pickle protocol 5 and
the child maps them back without a copy.
"""

from __future__ import annotations

import functools
import io
import pickle
import sys
from typing import Any, Callable


def polars_frame(table: Any) -> Any:
    import polars as pl

    return pl.from_arrow(table)


def polars_series(name: str, array: Any) -> Any:
    """Kept for pickles written before `polars_series_of_frame`."""
    import polars as pl

    return pl.from_arrow(array).alias(name)


def polars_series_of_frame(table: Any) -> Any:
    # Through a one-column table: a bare Arrow array loses what polars keeps
    # in the field's metadata (an Enum would come back as a Categorical).
    import polars as pl

    return pl.from_arrow(table).to_series(0)


def _polars(obj: Any) -> Any:
    if "polars" in sys.modules:
        import polars as pl

        if type(obj) is pl.DataFrame:
            return polars_frame, (obj.to_arrow(),)
        if type(obj) is pl.Series:
            return polars_series_of_frame, (obj.to_frame().to_arrow(),)
    return NotImplemented


class Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        return _polars(obj)


@functools.cache
def cloud_pickler_class(override: Callable[[Any], Any] = _polars) -> type:
    """cloudpickle's pickler, asking `override` first (a reduction, or
    NotImplemented for cloudpickle's own): polars frames as above by
    default."""
    import cloudpickle

    class CloudPickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            found = override(obj)
            return super().reducer_override(obj) if found is NotImplemented else found

    return CloudPickler


def cloud_pickler(*args: Any, **kwargs: Any) -> Any:
    """cloudpickle's pickler, with polars frames sent as above."""
    return cloud_pickler_class()(*args, **kwargs)


def dumps(value: Any, buffers: list, by_value: bool = False, main_there: bool = False) -> bytes:
    """Protocol 5; large buffers are appended to `buffers` instead of copied.
    A value that names the caller's `__main__` (a function or an instance of
    a class defined in the script) goes with cloudpickle, by value, unless
    the child has the caller's `__main__` too (`main_there`: the function is
    defined there). Everything does when `by_value` (a function sent by
    value)."""
    out = io.BytesIO()
    if not by_value:
        Pickler(out, protocol=5, buffer_callback=buffers.append).dump(value)
        data = out.getvalue()
        if main_there or b"__main__" not in data:
            return data
        out, buffers[:] = io.BytesIO(), []
    cloud_pickler(out, protocol=5, buffer_callback=buffers.append).dump(value)
    return out.getvalue()
