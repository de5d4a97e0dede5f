"""Derived features, as plain functions of the raw table (unit-tested; the asset only wires them).

Each derived column here is declared in the contract with the raw columns it reads, which is the
column lineage the UI shows. Add a feature by declaring it there and computing it here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.contract import CREDIT_SCORE_BANDS, LOAN_APPLICATIONS, DataContract

INCOME_FLOOR = 1_000.0  # keeps the ratio finite for applicants who declare (almost) no income
CREDIT_SCORE_BAND_UPPER_BOUNDS = (579, 669, 739, 799)  # FICO bands: poor, fair, good, very good


def loan_to_income(loan_amount: pd.Series, annual_income: pd.Series) -> pd.Series:
    return loan_amount / np.maximum(annual_income, INCOME_FLOOR)


def log_annual_income(annual_income: pd.Series) -> pd.Series:
    return np.log1p(annual_income)


def credit_score_band(credit_score: pd.Series) -> pd.Series:
    bins = (-np.inf, *CREDIT_SCORE_BAND_UPPER_BOUNDS, np.inf)
    return pd.cut(credit_score, bins=bins, labels=CREDIT_SCORE_BANDS).astype(object)


def build_features(raw: pd.DataFrame, contract: DataContract = LOAN_APPLICATIONS) -> pd.DataFrame:
    """The feature table: every raw column passed through plus the derived features, contract order."""
    features = raw.copy()
    features["loan_to_income"] = loan_to_income(raw["loan_amount"], raw["annual_income"])
    features["log_annual_income"] = log_annual_income(raw["annual_income"])
    features["credit_score_band"] = credit_score_band(raw["credit_score"])
    return features[contract.feature_table_columns].reset_index(drop=True)
