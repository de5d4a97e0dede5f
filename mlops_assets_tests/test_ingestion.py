"""Ingestion through Dagster: quarantine with reasons, checks, and clear failures for unreadable days.

The loan contract's ingestion, fed by a file source standing in for its synthetic one.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from mlops_assets.definitions import build_definitions
from mlops_assets.examples import EXAMPLES_DIR
from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator, SyntheticLoanSource
from mlops_assets.ingestion.sources import FileSource
from mlops_assets.io_manager import ParquetIOManager
from mlops_assets_tests.conftest import DAY, make_settings

RAW = dg.AssetKey(["loan_default", "raw"])
REJECTED = dg.AssetKey(["loan_default", "rejected"])
FEATURES = dg.AssetKey(["loan_default", "features"])


def FileLoanSource(base_url: str, file_format: str = "parquet") -> FileSource:
    return FileSource(base_url=base_url, file_format=file_format)


def stored(storage: Path, key: dg.AssetKey) -> Path:
    return storage.joinpath(*key.path, f"{DAY}.parquet")


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "assets"


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def materialize(
    tmp_path: Path, storage: Path, source, instance, **ingestion
) -> dg.ExecuteInProcessResult:
    """The loan contract's raw, rejected and features for DAY; `ingestion` edits its contract."""
    env = {}
    if ingestion:
        document = yaml.safe_load((EXAMPLES_DIR / "loan_default.yaml").read_text())
        document["ingestion"].update(ingestion)
        folder = tmp_path / "contracts"
        folder.mkdir(exist_ok=True)
        (folder / "loan_default.yaml").write_text(yaml.safe_dump(document))
        env["MLOPS_CONTRACTS"] = str(folder)
    defs = build_definitions(make_settings(tmp_path / "home", **env))
    return dg.materialize(
        defs.assets,
        selection=[RAW, REJECTED, FEATURES],
        resources={
            **defs.resources,
            "io_manager": ParquetIOManager(base_path=str(storage)),
            "loan_default_source": source,
        },
        partition_key=DAY,
        instance=instance,
        raise_on_error=False,
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()
    }


def good_rows(count: int = 100) -> pd.DataFrame:
    rows = SyntheticLoanGenerator(rows_per_day=2 * count).generate(date.fromisoformat(DAY))
    return rows.head(count).reset_index(drop=True)


def test_clean_day_materializes_raw_and_features_with_metadata(tmp_path, storage, instance):
    result = materialize(tmp_path, storage, SyntheticLoanSource(rows_per_day=300), instance)
    assert result.success
    raw = pd.read_parquet(stored(storage, RAW))
    features = pd.read_parquet(stored(storage, FEATURES))
    assert len(raw) == len(features) > 250
    event = instance.get_latest_materialization_event(RAW).asset_materialization
    assert event.partition == DAY
    assert event.metadata["dagster/row_count"].value == len(raw)
    assert event.metadata["rejected_rows"].value == 0
    assert event.metadata["source/scenario"].value == "none"
    assert "dagster/column_schema" in event.metadata
    feature_event = instance.get_latest_materialization_event(FEATURES).asset_materialization
    lineage = feature_event.metadata["dagster/column_lineage"].value
    assert {dep.column_name for dep in lineage.deps_by_column["loan_to_income"]} == {
        "loan_amount",
        "annual_income",
    }
    assert all(evaluation.passed for evaluation in check_results(result).values())


def test_bad_rows_are_quarantined_with_reasons_and_block_features(
    tmp_path, storage, landing, instance
):
    rows = good_rows(40).astype(str)
    rows.loc[0, "age"] = "forty"  # wrong type
    rows.loc[1, "credit_score"] = "1200"  # out of range
    rows.loc[2, "application_id"] = rows.loc[3, "application_id"]  # duplicate id (row 2 is kept)
    rows.loc[4, "loan_purpose"] = "vacation"  # unknown level
    rows.loc[5, "defaulted"] = "maybe"  # label neither 0 nor 1
    rows.to_csv(landing / f"{DAY}.csv", index=False)

    result = materialize(
        tmp_path, storage, FileLoanSource(base_url=str(landing), file_format="csv"), instance
    )

    rejected = pd.read_parquet(stored(storage, REJECTED))
    assert dict(zip(rejected["source_row"], rejected["rejection_reason"], strict=True)) == {
        0: "age: 'forty' is not a number",
        1: "credit_score: 1200 failed less_than_or_equal_to(850)",
        3: "application_id: duplicate of source row 2",
        4: "loan_purpose: 'vacation' failed isin(['debt_consolidation', 'credit_card', 'home_improvement', 'car', 'medical', 'small_business', 'renewable_energy'])",
        5: "defaulted: 'maybe' is not a label value (positive: 1; negative: 0)",
    }
    assert rejected.loc[0, "age"] == "forty"  # kept as delivered
    raw = pd.read_parquet(stored(storage, RAW))
    assert len(raw) == 35
    checks = check_results(result)
    assert checks["rejected_share_below_limit"].passed is False
    assert checks["rejected_share_below_limit"].metadata["rejected_share"].value == pytest.approx(
        5 / 40
    )
    assert checks["accepted_rows_match_contract"].passed
    # the blocking check stops the features of this run: nothing downstream of a bad day
    assert not (stored(storage, FEATURES)).exists()
    assert FEATURES not in {event.asset_key for event in result.get_asset_materialization_events()}


def test_rejected_share_limit_is_configurable(tmp_path, storage, landing, instance):
    rows = good_rows(40).astype(str)
    rows.loc[0, "age"] = "17"
    rows.to_csv(landing / f"{DAY}.csv", index=False)
    source = FileLoanSource(base_url=str(landing), file_format="csv")
    strict = materialize(tmp_path, storage, source, instance, max_rejected_share=0.01)
    assert not check_results(strict)["rejected_share_below_limit"].passed
    result = materialize(tmp_path, storage, source, instance, max_rejected_share=0.05)
    assert check_results(result)["rejected_share_below_limit"].passed
    assert (stored(storage, FEATURES)).exists()


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    failure = next(event for event in result.all_events if event.is_step_failure)
    return failure.step_failure_data.user_failure_data.description


def test_a_delivery_with_a_missing_column_fails_naming_it_and_keeps_the_last_good_day(
    tmp_path, storage, landing, instance
):
    source = FileLoanSource(base_url=str(landing))
    good_rows(30).to_parquet(landing / f"{DAY}.parquet")
    assert materialize(tmp_path, storage, source, instance).success
    good_raw = pd.read_parquet(stored(storage, RAW))
    good_features = pd.read_parquet(stored(storage, FEATURES))

    good_rows(10).drop(columns=["credit_score"]).to_parquet(landing / f"{DAY}.parquet")
    result = materialize(tmp_path, storage, source, instance)
    assert not result.success
    assert failure_description(result) == (
        f"Every one of the 10 rows delivered for {DAY} was rejected: missing column(s): "
        "credit_score (10). They are kept with their reasons in loan_default/rejected; "
        f"loan_default/raw keeps its last good data for {DAY}, if it had any"
    )
    rejected = pd.read_parquet(stored(storage, REJECTED))
    assert rejected["rejection_reason"].unique().tolist() == ["missing column(s): credit_score"]
    assert len(rejected) == 10
    pd.testing.assert_frame_equal(pd.read_parquet(stored(storage, RAW)), good_raw)
    pd.testing.assert_frame_equal(pd.read_parquet(stored(storage, FEATURES)), good_features)
    restarts = [event for event in result.all_events if event.event_type_value == "STEP_RESTARTED"]
    assert not restarts, "a delivery that cannot be accepted is not retried"


def test_a_header_only_delivery_fails_and_keeps_the_last_good_day(
    tmp_path, storage, landing, instance
):
    source = FileLoanSource(base_url=str(landing), file_format="csv")
    good_rows(30).to_csv(landing / f"{DAY}.csv", index=False)
    assert materialize(tmp_path, storage, source, instance).success
    good_features = pd.read_parquet(stored(storage, FEATURES))

    good_rows(0).to_csv(landing / f"{DAY}.csv", index=False)  # the header line only
    result = materialize(tmp_path, storage, source, instance)
    assert not result.success
    assert failure_description(result).startswith(
        f"The delivery for {DAY} holds no rows (a header only, or an empty table)"
    )
    assert len(pd.read_parquet(stored(storage, RAW))) == 30
    pd.testing.assert_frame_equal(pd.read_parquet(stored(storage, FEATURES)), good_features)


def test_missing_label_column_is_accepted_as_not_yet_labelled(tmp_path, storage, landing, instance):
    good_rows(10).drop(columns=["defaulted"]).to_parquet(landing / f"{DAY}.parquet")
    result = materialize(tmp_path, storage, FileLoanSource(base_url=str(landing)), instance)
    assert result.success
    raw = pd.read_parquet(stored(storage, RAW))
    assert len(raw) == 10 and raw["defaulted"].isna().all()


def test_rows_from_another_day_are_quarantined(tmp_path, storage, landing, instance):
    rows = good_rows(10)
    rows.loc[0, "applied_at"] = pd.Timestamp("2026-01-09 08:00")
    rows.to_parquet(landing / f"{DAY}.parquet")
    materialize(tmp_path, storage, FileLoanSource(base_url=str(landing)), instance)
    rejected = pd.read_parquet(stored(storage, REJECTED))
    assert rejected["rejection_reason"].tolist() == [
        f"applied_at: 2026-01-09 08:00:00 is outside partition {DAY}"
    ]


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        (f"{DAY}.csv", b"", f"{DAY}.csv is empty (0 bytes)"),
        (
            f"{DAY}.parquet",
            b"PAR1 this is not parquet PAR1",
            f"{DAY}.parquet is not a readable Parquet file",
        ),
    ],
    ids=["empty-file", "corrupt-parquet"],
)
def test_unreadable_file_fails_the_run_clearly_and_can_be_retried(
    tmp_path, storage, landing, instance, file_name, content, message
):
    (landing / file_name).write_bytes(content)
    file_format = file_name.rsplit(".", 1)[1]
    source = FileLoanSource(base_url=str(landing), file_format=file_format)
    result = materialize(tmp_path, storage, source, instance)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert message in failure.step_failure_data.error.message or message in str(
        failure.step_failure_data.user_failure_data.description
    )
    assert not stored(storage, RAW).parent.exists()  # nothing half-written
    assert (landing / file_name).read_bytes() == content  # the bad delivery is left for inspection

    # once a good file is delivered, the same partition simply runs again
    rows = good_rows(20)
    if file_format == "csv":
        rows.to_csv(landing / file_name, index=False)
    else:
        rows.to_parquet(landing / file_name)
    assert materialize(tmp_path, storage, source, instance).success
    assert len(pd.read_parquet(stored(storage, FEATURES))) == 20


def test_missing_file_names_the_expected_path(tmp_path, storage, landing, instance):
    result = materialize(tmp_path, storage, FileLoanSource(base_url=str(landing)), instance)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert (
        description == f"No source file for partition {DAY}: {landing}/{DAY}.parquet does not exist"
    )
