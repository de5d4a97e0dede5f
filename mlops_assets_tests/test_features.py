"""Feature functions, unit-tested directly; the declared lineage matches what they read."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_assets.contract import LOAN_APPLICATIONS
from mlops_assets.features.engineering import build_features, credit_score_band, loan_to_income
from mlops_assets.sources.synthetic import SyntheticLoanGenerator


def test_credit_score_bands_follow_fico_boundaries():
    scores = pd.Series([300, 579, 580, 669, 670, 739, 740, 799, 800, 850])
    assert credit_score_band(scores).tolist() == [
        "poor", "poor", "fair", "fair", "good", "good", "very_good", "very_good", "exceptional", "exceptional",
    ]  # fmt: skip


def test_loan_to_income_stays_finite_without_income():
    ratio = loan_to_income(pd.Series([10_000.0, 10_000.0]), pd.Series([0.0, 50_000.0]))
    assert ratio.tolist() == [10.0, 0.2]


def test_feature_table_satisfies_the_features_model():
    raw = SyntheticLoanGenerator(rows_per_day=200).generate(date(2026, 1, 5))
    features = build_features(raw)
    LOAN_APPLICATIONS.features_model.validate(features)
    assert list(features.columns) == LOAN_APPLICATIONS.feature_table_columns
    assert np.allclose(features["log_annual_income"], np.log1p(raw["annual_income"]))


@pytest.mark.parametrize(
    "derived", LOAN_APPLICATIONS.derived_features, ids=lambda column: column.name
)
def test_declared_lineage_is_what_the_feature_reads(derived):
    """Changing a column a derived feature does not declare leaves it unchanged; a declared one does not."""
    raw = SyntheticLoanGenerator(rows_per_day=200).generate(date(2026, 1, 5))
    original = build_features(raw)[derived.name]
    for column in LOAN_APPLICATIONS.raw_features:
        perturbed = raw.copy()
        if column.name in LOAN_APPLICATIONS.numeric_features:
            perturbed[column.name] = perturbed[column.name] * 1.7 + 31
        else:
            perturbed[column.name] = perturbed[column.name].iloc[::-1].to_numpy()
        changed = not build_features(perturbed)[derived.name].equals(original)
        assert changed == (column.name in derived.inputs), column.name
