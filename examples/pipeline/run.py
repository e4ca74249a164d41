"""Runs the two steps in order."""

import sys
import time
from pathlib import Path

from clean import clean
from summarize import summarize

HERE = Path(__file__).resolve().parent


def main() -> None:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    clean(HERE / "data" / "sales.csv", out / "clean.parquet")
    summary = summarize(out / "clean.parquet", out / "summary.parquet")
    print(summary.head(3).to_string(index=False))
    print(f"pipeline took {time.perf_counter() - start:.3f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
