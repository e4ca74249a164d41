"""Functions benchmarked by bench/cached_bench.py (a module, so that the
traced child can import them)."""

from casher import cached


def _identity(x):
    return x


@cached
def small(x: int) -> int:
    return x + 1


@cached
def frame_sum(df) -> float:
    return float(df.to_numpy().sum()) if hasattr(df, "to_numpy") else 0.0


@cached
def passthrough(df):
    return df.shape


@cached
def shape_of(df):
    """Does no work: the miss cost measured is that of casher alone."""
    return df.shape
