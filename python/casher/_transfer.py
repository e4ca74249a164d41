"""Sending arguments to the traced child without copying large frames.

Polars frames pickle through their IPC serialization (a copy, in-band); sent
as Arrow instead, their buffers go out-of-band with pickle protocol 5 and
the child maps them back without a copy.
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any


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


class Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if "polars" in sys.modules:
            import polars as pl

            if type(obj) is pl.DataFrame:
                return polars_frame, (obj.to_arrow(),)
            if type(obj) is pl.Series:
                return polars_series_of_frame, (obj.to_frame().to_arrow(),)
        return NotImplemented


def dumps(value: Any, buffers: list) -> bytes:
    """Protocol 5; large buffers are appended to `buffers` instead of copied."""
    out = io.BytesIO()
    Pickler(out, protocol=5, buffer_callback=buffers.append).dump(value)
    return out.getvalue()
