"""Step 2: read the cleaned parquet with pandas and aggregate."""

from pathlib import Path

import pandas as pd
from casher import cached

from pipeline.helpers.stats import revenue_by


@cached
def summarize(cleaned: Path, out: Path) -> pd.DataFrame:
    df = pd.read_parquet(cleaned)
    summary = revenue_by(df, "region")
    print(f"summarize: {len(summary)} regions")
    summary.to_parquet(out)
    return summary
