"""Step 1: read the raw CSV with polars, clean it, write parquet."""

from pathlib import Path

import polars as pl
from casher import cached

from pipeline.helpers import drop_refunds, normalize_names


@cached
def clean(raw: Path, out: Path) -> pl.DataFrame:
    df = pl.read_csv(raw)
    df = drop_refunds(normalize_names(df))
    print(f"clean: {df.height} rows kept")
    df.write_parquet(out)
    return df
