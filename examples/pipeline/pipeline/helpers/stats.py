import pandas as pd


def revenue_by(df: pd.DataFrame, key: str) -> pd.DataFrame:
    out = df.groupby(key, as_index=False)["amount"].sum()
    return out.sort_values("amount", ascending=False, ignore_index=True)
