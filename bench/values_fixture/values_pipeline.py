"""The 4-step string-column pipeline and the 400 MB array step of
bench/values_bench.py (a module, so the traced child can import it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from casher import cached


def clean(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(name=df["name"].str.strip().str.lower(), city=df["city"].fillna("unknown"))


def features(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(name_len=df["name"].str.len(), is_big=df["city"].str.startswith("c1"))


def select(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["name_len"] > 4].reset_index(drop=True)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("city", as_index=False).agg(n=("name", "size"), mean_len=("name_len", "mean"))


STEPS = [clean, features, select, summarize]
CACHED = [cached(step) for step in STEPS]


def run(df: pd.DataFrame, steps) -> pd.DataFrame:
    for step in steps:
        df = step(df)
    return df


def big_array(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.random(n)


cached_big_array = cached(big_array)
