import polars as pl


def normalize_names(df: pl.DataFrame) -> pl.DataFrame:
    """Lower-case, strip and de-duplicate whitespace in the region names."""
    return df.with_columns(
        pl.col("region").str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")
    )


def drop_refunds(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("amount") > 0)
