from .cleaning import normalize_names, drop_refunds
from .stats import revenue_by

__all__ = ["normalize_names", "drop_refunds", "revenue_by"]
