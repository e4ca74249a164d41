"""Runs the two cached steps in order and prints how long each took."""

import sys
import time
from pathlib import Path

from clean import clean
from summarize import summarize

HERE = Path(__file__).resolve().parent


def timed(label, func, *args):
    start = time.perf_counter()
    result = func(*args)
    print(f"[{label}: {time.perf_counter() - start:.3f}s]", file=sys.stderr)
    return result


def main() -> None:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    timed("clean", clean, HERE / "data" / "sales.csv", out / "clean.parquet")
    summary = timed("summarize", summarize, out / "clean.parquet", out / "summary.parquet")
    print(summary.head(3).to_string(index=False))


if __name__ == "__main__":
    main()
