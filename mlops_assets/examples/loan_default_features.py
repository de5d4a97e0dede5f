"""The loan example's derived features, as plain functions of raw columns (unit-tested).

`loan_default.yaml` names each function with the raw columns it reads, in the order they are
passed: that declaration is also the column lineage the UI shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


INCOME_FLOOR = 1_000.0  # keeps the ratio finite for applicants who declare (almost) no income
CREDIT_SCORE_BANDS = ("poor", "fair", "good", "very_good", "exceptional")
CREDIT_SCORE_BAND_UPPER_BOUNDS = (579, 669, 739, 799)  # FICO bands: poor, fair, good, very good


def loan_to_income(loan_amount: pd.Series, annual_income: pd.Series) -> pd.Series:
    import numpy as np

    return loan_amount / np.maximum(annual_income, INCOME_FLOOR)


def log_annual_income(annual_income: pd.Series) -> pd.Series:
    import numpy as np

    return np.log1p(annual_income)


def credit_score_band(credit_score: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    bins = (-np.inf, *CREDIT_SCORE_BAND_UPPER_BOUNDS, np.inf)
    return pd.cut(credit_score, bins=bins, labels=CREDIT_SCORE_BANDS).astype(object)
