"""Feature functions, unit-tested directly; the declared lineage matches what they read."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_assets.examples.loan_default_features import credit_score_band, loan_to_income
from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator
from mlops_assets_tests.conftest import LOAN


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
    features = LOAN.build_features(raw)
    LOAN.features_model.validate(features)
    assert list(features.columns) == LOAN.feature_table_columns
    assert np.allclose(features["log_annual_income"], np.log1p(raw["annual_income"]))


@pytest.mark.parametrize("derived", LOAN.derived_features, ids=lambda column: column.name)
def test_declared_lineage_is_what_the_feature_reads(derived):
    """Changing a column a derived feature does not declare leaves it unchanged; a declared one does not."""
    raw = SyntheticLoanGenerator(rows_per_day=200).generate(date(2026, 1, 5))
    original = LOAN.build_features(raw)[derived.name]
    for column in LOAN.raw_features:
        perturbed = raw.copy()
        if column.name in LOAN.numeric_features:
            perturbed[column.name] = perturbed[column.name] * 1.7 + 31
        else:
            perturbed[column.name] = perturbed[column.name].iloc[::-1].to_numpy()
        changed = not LOAN.build_features(perturbed)[derived.name].equals(original)
        assert changed == (column.name in derived.inputs), column.name
