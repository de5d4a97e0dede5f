"""The synthetic source: deterministic, learnable, and drifting exactly as each scenario says."""

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.examples.loan_default_synthetic import (
    DriftScenario,
    SyntheticLoanGenerator,
    SyntheticLoanSource,
)
from mlops_assets.ingestion.validation import validate_rows
from mlops_assets_tests.conftest import LOAN

DAY = date(2026, 1, 10)
START = date(2026, 1, 8)


def test_same_partition_and_seed_give_identical_rows():
    first = SyntheticLoanSource(seed=3).load_day(DAY).rows
    again = SyntheticLoanSource(seed=3).load_day(DAY).rows
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(SyntheticLoanSource(seed=4).load_day(DAY).rows)
    assert not first.equals(SyntheticLoanSource(seed=3).load_day(date(2026, 1, 11)).rows)


def test_generated_rows_satisfy_the_contract_and_fall_on_their_day():
    rows = SyntheticLoanGenerator().generate(DAY)
    result = validate_rows(rows, LOAN, DAY)
    assert result.rejected.empty
    assert 1_800 < len(result.accepted) < 2_200
    assert rows["application_id"].is_unique


def test_labels_follow_the_exposed_true_probability():
    generator = SyntheticLoanGenerator(rows_per_day=5_000)
    rows = pd.concat([generator.generate(date(2026, 1, day)) for day in range(1, 9)])
    probability = generator.true_default_probability(rows)
    labels = rows["defaulted"].astype(int)
    assert abs(labels.mean() - probability.mean()) < 0.01
    assert 0.08 < labels.mean() < 0.25  # a realistic default rate
    oracle_auc = roc_auc_score(labels, probability)
    assert 0.72 < oracle_auc < 0.85  # learnable but not trivial


def _before_and_after(
    scenario: DriftScenario,
) -> tuple[pd.DataFrame, pd.DataFrame, SyntheticLoanGenerator]:
    generator = SyntheticLoanGenerator(scenario=scenario, scenario_start=START)
    baseline = SyntheticLoanGenerator()
    before = generator.generate(date(2026, 1, 7))
    # the scenario is inactive before its start date
    pd.testing.assert_frame_equal(before, baseline.generate(date(2026, 1, 7)))
    return baseline.generate(DAY), generator.generate(DAY), generator


def test_income_drop_lowers_income_and_raises_debt_to_income_only():
    baseline, drifted, _ = _before_and_after(DriftScenario.INCOME_DROP)
    assert drifted["annual_income"].mean() == pytest.approx(
        baseline["annual_income"].mean() * 0.65, rel=0.01
    )
    assert drifted["debt_to_income"].mean() > baseline["debt_to_income"].mean() * 1.4
    pd.testing.assert_series_equal(drifted["credit_score"], baseline["credit_score"])


def test_credit_score_shift_lowers_scores():
    baseline, drifted, _ = _before_and_after(DriftScenario.CREDIT_SCORE_SHIFT)
    assert baseline["credit_score"].mean() - drifted["credit_score"].mean() == pytest.approx(
        70, abs=3
    )
    pd.testing.assert_series_equal(drifted["annual_income"], baseline["annual_income"])


def test_new_loan_purpose_appears_only_after_launch():
    baseline, drifted, _ = _before_and_after(DriftScenario.NEW_LOAN_PURPOSE)
    assert (baseline["loan_purpose"] == "renewable_energy").sum() == 0
    share = (drifted["loan_purpose"] == "renewable_energy").mean()
    assert 0.3 < share < 0.4


def test_concept_change_keeps_features_but_raises_default_risk():
    baseline, drifted, generator = _before_and_after(DriftScenario.CONCEPT_CHANGE)
    features = LOAN.raw_columns[:-1]
    pd.testing.assert_frame_equal(drifted[features], baseline[features])
    assert (
        generator.true_default_probability(drifted).mean()
        > 1.4 * SyntheticLoanGenerator().true_default_probability(baseline).mean()
    )


def test_labels_arrive_late_relative_to_as_of():
    generator = SyntheticLoanGenerator(label_delay_days=3, as_of=date(2026, 1, 10))
    assert generator.generate(date(2026, 1, 7))["defaulted"].notna().all()
    assert generator.generate(date(2026, 1, 8))["defaulted"].isna().all()


def test_invalid_rows_are_injected_for_quarantine_to_catch():
    rows = SyntheticLoanGenerator(invalid_row_share=0.01).generate(DAY)
    result = validate_rows(rows, LOAN, DAY)
    assert len(result.rejected) == pytest.approx(0.01 * len(rows), abs=2)
    assert set(result.reason_counts()) == {
        "age: failed greater_than_or_equal_to(18)",
        "credit_score: failed less_than_or_equal_to(850)",
        "loan_purpose: failed isin(contract levels)",
        "application_id: duplicate",
    }


def test_bad_scenario_settings_name_the_problem():
    with pytest.raises(
        ValueError, match="Unknown drift scenario 'recession'; choose one of: none, income_drop"
    ):
        SyntheticLoanSource(scenario="recession").load_day(DAY)
    with pytest.raises(ValueError, match="needs a scenario_start"):
        SyntheticLoanSource(scenario="income_drop").load_day(DAY)


def test_lineage_names_seed_and_scenario():
    lineage = (
        SyntheticLoanSource(scenario="income_drop", scenario_start="2026-01-08")
        .load_day(DAY)
        .lineage
    )
    assert lineage["source/scenario"] == "income_drop"
    assert lineage["source/scenario_active"] is True
    assert np.isfinite(lineage["source/seed"])
