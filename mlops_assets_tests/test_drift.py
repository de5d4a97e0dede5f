"""Our drift scores against a real Evidently 0.7 DataDriftPreset run on the same data, column by column."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.contracts import load_contract
from mlops_assets.examples import EXAMPLES_DIR
from mlops_assets.examples.loan_default_synthetic import DriftScenario, SyntheticLoanGenerator
from mlops_assets.examples.vehicle_crashes import crash_records, delivery_plan
from mlops_assets.ingestion.validation import validate_rows
from mlops_assets.monitoring.drift import (
    ALL_MISSING,
    EVIDENTLY_METHOD_NAMES,
    column_drift,
    dataset_drift,
)
from mlops_assets.monitoring.evidently_report import (
    bounded_sample,
    evidently_column_scores,
    evidently_drift_share,
    run_evidently,
)

START = date(2026, 1, 1)
LOAN = load_contract(EXAMPLES_DIR / "loan_default.yaml", {"MLOPS_HOME": "/tmp"})
CRASHES = load_contract(EXAMPLES_DIR / "vehicle_crashes.yaml", {"MLOPS_HOME": "/tmp"})


def features(scenario: DriftScenario, days: range) -> pd.DataFrame:
    generator = SyntheticLoanGenerator(
        rows_per_day=1500, scenario=scenario, scenario_start=START + timedelta(days=7)
    )
    return LOAN.build_features(
        pd.concat([generator.generate(START + timedelta(days=d)) for d in days], ignore_index=True)
    )


def crash_features(days: int, rows_per_day: int, drift_from: int | None = None) -> list:
    """Daily feature tables of the real crash records, as the pipeline would build them."""
    dates = [START + timedelta(days=d) for d in range(days)]
    drift_start = dates[drift_from] if drift_from is not None else None
    plan = delivery_plan(crash_records(), dates, rows_per_day, drift_start=drift_start)
    return [
        CRASHES.build_features(validate_rows(rows, CRASHES, day).accepted)
        for day, rows in plan.items()
    ]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return features(DriftScenario.NONE, range(4))


def assert_matches_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, contract=LOAN
) -> dict[str, str]:
    ours = dataset_drift(reference, current, contract)
    snapshot = run_evidently(reference, current, contract)
    theirs = evidently_column_scores(snapshot)
    assert set(theirs) == set(contract.drift_columns)
    for column in ours.columns:
        method, threshold, score = theirs[column.column]
        assert EVIDENTLY_METHOD_NAMES[column.test] == method, column.column
        assert column.threshold == threshold, column.column
        assert column.score == pytest.approx(score, rel=1e-9, abs=1e-12), column.column
    assert ours.share == pytest.approx(evidently_drift_share(snapshot))
    return {column.column: column.test for column in ours.columns}


@pytest.mark.parametrize("scenario", list(DriftScenario), ids=lambda s: s.value)
def test_large_reference_uses_distances_and_matches_evidently(reference, scenario):
    current = features(scenario, range(8, 9))
    tests = assert_matches_evidently(reference, current)
    assert tests["annual_income"] == "wasserstein" and tests["loan_purpose"] == "jensenshannon"


def test_small_reference_uses_hypothesis_tests_and_matches_evidently(reference):
    current = features(DriftScenario.INCOME_DROP, range(8, 9)).head(400)
    small = reference.head(900).copy()
    small["open_accounts"] = small["open_accounts"] % 4  # 4 distinct values: chi-square
    current = current.assign(open_accounts=current["open_accounts"] % 4)
    small["employment_length_years"] = (small["employment_length_years"] > 5).astype(
        float
    )  # 2 values: Z-test
    current = current.assign(
        employment_length_years=(current["employment_length_years"] > 5).astype(float)
    )
    tests = assert_matches_evidently(small, current)
    assert tests["annual_income"] == "ks"
    assert tests["open_accounts"] == "chisquare"
    assert tests["employment_length_years"] == "z"
    assert tests["home_ownership"] == "chisquare"


@pytest.mark.parametrize("reference_rows", [900, 6000], ids=["hypothesis-tests", "distances"])
def test_categorical_levels_that_appear_or_vanish_match_evidently(reference, reference_rows):
    current = features(DriftScenario.NEW_LOAN_PURPOSE, range(8, 9)).head(
        500
    )  # renewable_energy appears
    current = current[current["home_ownership"] != "OTHER"]  # a level vanishes
    ref = reference.head(reference_rows)
    assert_matches_evidently(ref, current)
    purpose = column_drift(
        "loan_purpose", ref["loan_purpose"], current["loan_purpose"], numeric=False
    )
    assert purpose.drifted


def test_missing_values_and_infinities_are_dropped_per_column_and_counted(reference):
    current = features(DriftScenario.NONE, range(8, 9))
    current.loc[current.index[:40], "annual_income"] = np.nan
    current.loc[current.index[40:50], "annual_income"] = (
        np.inf
    )  # a column with both, as Evidently cleans
    current.loc[current.index[:25], "loan_purpose"] = None
    assert_matches_evidently(reference, current)
    result = {column.column: column for column in dataset_drift(reference, current, LOAN).columns}
    assert result["annual_income"].dropped_current == 50
    assert result["annual_income"].current_rows == len(current) - 50
    assert result["loan_purpose"].dropped_current == 25


def test_infinities_alone_are_dropped_too_where_evidentlys_dataset_count_is_inconsistent(reference):
    """Evidently drops ±inf only when a column also has NaN (its check uses isnull) in the
    dataset-level count, yet always in the per-column score. We always drop them: the per-column
    scores match, and the share follows the per-column verdicts."""
    current = features(DriftScenario.NEW_LOAN_PURPOSE, range(8, 9))
    current.loc[current.index[:10], "loan_to_income"] = np.inf
    ours = dataset_drift(reference, current, LOAN)
    snapshot = run_evidently(reference, current, LOAN)
    theirs = evidently_column_scores(snapshot)
    for column in ours.columns:
        assert column.score == pytest.approx(theirs[column.column][2], rel=1e-9, abs=1e-12)
    loan_to_income = next(c for c in ours.columns if c.column == "loan_to_income")
    assert loan_to_income.drifted and loan_to_income.dropped_current == 10
    assert ours.share == pytest.approx(evidently_drift_share(snapshot) + 1 / len(ours.columns))


def test_a_feature_that_stopped_arriving_counts_as_drifted(reference):
    current = features(DriftScenario.NONE, range(8, 9)).assign(employment_length_years=np.nan)
    result = column_drift(
        "employment_length_years",
        reference["employment_length_years"],
        current["employment_length_years"],
        True,
    )
    assert (result.test, result.drifted, result.current_rows) == (ALL_MISSING, True, 0)


def test_no_drift_on_the_same_population(reference):
    assert dataset_drift(reference, features(DriftScenario.NONE, range(8, 9)), LOAN).share == 0.0


def test_bounded_sample_is_deterministic_and_bounded(reference):
    sample = bounded_sample(reference, 1000)
    assert len(sample) == 1000 and sample.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(sample, bounded_sample(reference, 1000))
    assert (
        bounded_sample(reference.head(10), 1000) is not None
        and len(bounded_sample(reference.head(10), 1000)) == 10
    )


def test_a_precomputed_reference_profile_gives_the_same_result_and_survives_caching(reference):
    import pickle

    from mlops_assets.monitoring.drift import ReferenceProfile

    current = features(DriftScenario.INCOME_DROP, range(8, 9))
    profile = pickle.loads(
        pickle.dumps(ReferenceProfile.of(reference, LOAN))
    )  # as drift_report caches it
    assert dataset_drift(profile, current, LOAN) == dataset_drift(reference, current, LOAN)
    assert dataset_drift(profile, current, LOAN).share == pytest.approx(4 / 12)


def test_real_crash_records_match_evidently_at_both_reference_sizes():
    days = crash_features(10, 300, drift_from=8)
    large = pd.concat(days[:6], ignore_index=True)  # 1,800 rows: distances
    tests = assert_matches_evidently(large, days[8], CRASHES)
    assert tests["ageOFocc"] == "wasserstein" and tests["dvcat"] == "jensenshannon"
    small = days[0]  # 300 rows: hypothesis tests, as at a few hundred rows a day
    tests = assert_matches_evidently(small, days[9], CRASHES)
    assert tests["ageOFocc"] == "ks" and tests["frontal"] == "z" and tests["dvcat"] == "chisquare"
    drifted = dataset_drift(large, days[8], CRASHES)
    assert "dvcat" in drifted.drifted_columns and drifted.share > 0.2


def test_columns_left_out_of_drift_are_not_tested(tmp_path):
    import yaml

    document = yaml.safe_load((EXAMPLES_DIR / "vehicle_crashes.yaml").read_text())
    document["drift"]["exclude"] = ["dvcat", "deploy"]
    path = tmp_path / "vehicle_crashes.yaml"
    path.write_text(yaml.safe_dump(document))
    contract = load_contract(path, {"MLOPS_HOME": "/tmp"})
    days = crash_features(9, 300, drift_from=8)
    result = dataset_drift(pd.concat(days[:6]), days[8], contract)
    assert [c.column for c in result.columns] == [
        name for name in contract.feature_columns if name not in ("dvcat", "deploy")
    ]
    assert_matches_evidently(pd.concat(days[:6]), days[8], contract)
