"""Delivery shapes real data has and the synthetic example does not: gaps in integer columns, a
column empty for a whole day, one day whose rows share a generated event time.

Each runs through the platform's jobs on the loan example's history (a contract edited to the
shape), and asserts what a user sees: rows kept or quarantined with a reason, a report, a model.
"""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets import keys
from mlops_assets.ingestion.sources import FileSource
from mlops_assets_tests.conftest import Platform, edited_contracts, platform_with_history
from mlops_assets_tests.test_sensor import evaluate, report

DAY = "2026-01-08"


def loan_with(tmp_path: Path, feature_history: Path, instance, change, **env: str) -> Platform:
    """The loan example's history under a contract edited by `change(document)`."""
    folder = edited_contracts(tmp_path / "contracts", "loan_default", change)
    return platform_with_history(
        tmp_path / "home",
        feature_history,
        instance,
        "loan_default",
        MLOPS_CONTRACTS=str(folder),
        **env,
    )


def deliver(platform: Platform, tmp_path: Path, day: str, frame: pd.DataFrame):
    """Ingest `frame` as `day`'s delivery through a parquet file source."""
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    frame.to_parquet(landing / f"{day}.parquet")
    return dg.materialize(
        platform.defs.assets,
        selection=[platform.key("raw"), platform.key("rejected"), platform.key("features")],
        resources={
            **platform.defs.resources,
            "loan_default_source": FileSource(base_url=str(landing), file_format="parquet"),
        },
        partition_key=day,
        instance=platform.instance,
        raise_on_error=False,
    )


def nullable(name: str):
    def change(document: dict) -> None:
        for feature in document["features"]:
            if feature["name"] == name:
                feature["nullable"] = True

    return change


def test_gaps_in_a_nullable_integer_column_are_kept_and_a_fraction_is_quarantined(
    tmp_path, feature_history, instance
):
    platform = loan_with(tmp_path, feature_history, instance, nullable("open_accounts"))
    day = platform.load("raw", DAY)
    delivered = day.astype({"open_accounts": "float64"})
    gaps = delivered.index[::4]
    delivered.loc[gaps, "open_accounts"] = np.nan
    delivered.loc[delivered.index[1], "open_accounts"] = 2.5
    ingested = deliver(platform, tmp_path, DAY, delivered)
    assert ingested.success

    raw = platform.load("raw", DAY)
    assert str(raw["open_accounts"].dtype) == "Int64"
    assert raw["open_accounts"].isna().sum() == len(gaps)
    rejected = platform.load("rejected", DAY)
    assert rejected["rejection_reason"].tolist() == ["open_accounts: 2.5 is not a whole number"]
    features = platform.load("features", DAY)
    assert features["open_accounts"].isna().sum() == len(gaps)

    trained = platform.run("train_and_register", DAY)
    assert trained.success
    served = platform.materialize(["batch_predictions", "drift_report"], DAY)
    assert served.success
    predictions = platform.load("batch_predictions", DAY)
    assert len(predictions) == len(features) and predictions["score"].notna().all()
    report = platform.load("drift_report", DAY).set_index("column")
    assert report.loc["open_accounts", "dropped_current"] == len(gaps)


def test_a_column_empty_for_a_whole_day_is_reported_drifted_without_breaking_the_report(
    tmp_path, loan
):
    assert loan.run("train_and_register", "2026-01-07").success
    delivered = loan.load("raw", DAY).assign(employment_length_years=np.nan)
    assert deliver(loan, tmp_path, DAY, delivered).success
    assert loan.load("rejected", DAY).empty  # the column is nullable: nothing to quarantine

    served = loan.materialize(["batch_predictions", "drift_report"], DAY)
    assert served.success
    report = loan.load("drift_report", DAY).set_index("column")
    empty = report.loc["employment_length_years"]
    assert (empty["test"], bool(empty["drifted"])) == ("all_missing", True)
    features = report[report["role"] == "feature"].drop(index="employment_length_years")
    assert not features["drifted"].any()
    # every row's employment length now imputed by the median: the scores moved, and say so
    assert report.loc["prediction", "role"] == "prediction" and report.loc["prediction", "drifted"]
    [materialization] = [
        event.materialization
        for event in served.get_asset_materialization_events()
        if event.asset_key == loan.key("drift_report")
    ]
    meta = materialization.metadata
    assert "no values in the current data: employment_length_years" in meta["evidently_sample"].text
    html = Path(meta["evidently_report"].url.removeprefix("file://"))
    assert html.stat().st_size > 0  # Evidently's report of the columns that hold values


def test_a_reason_holding_a_semicolon_is_counted_as_one_reason(tmp_path, loan):
    delivered = loan.load("raw", DAY)
    delivered.loc[delivered.index[:3], "defaulted"] = 2  # neither positive nor negative
    ingested = deliver(loan, tmp_path, DAY, delivered)
    assert ingested.success

    reason = "defaulted: 2 is not a label value (positive: 1; negative: 0)"
    assert loan.load("rejected", DAY)["rejection_reason"].tolist() == [reason] * 3
    [materialization] = [
        event.materialization
        for event in ingested.get_asset_materialization_events()
        if event.asset_key == loan.key("rejected")
    ]
    counts = materialization.metadata["reasons"].data
    assert counts == {"defaulted: not a label value (positive: 1; negative: 0)": 3}


def test_one_day_whose_rows_share_a_generated_event_time_still_splits(
    tmp_path, feature_history, instance
):
    """The crash example generates every row's event time (the delivery day): a retraining on that
    one day must still hold out its latest share of rows, in an order the file's sorting cannot bias."""
    crashes = platform_with_history(tmp_path / "home", feature_history, instance, "vehicle_crashes")
    since = {
        "ops": {crashes.key("training_set").to_python_identifier(): {"config": {"since": DAY}}}
    }
    result = crashes.materialize(["training_set"], DAY, run_config=since)
    assert result.success
    training = crashes.load("training_set", DAY)
    contract = crashes.contract
    assert training[contract.event_time_column].nunique() == 1
    validation = training[training["split"] == "validation"]
    fraction = contract.spec.training.validation_fraction
    assert len(validation) == math.ceil(fraction * len(training))
    for split, rows in training.groupby("split"):
        assert rows[contract.label_column].nunique() == 2, split

    again = crashes.materialize(["training_set"], DAY, run_config=since)  # same rows, same split
    assert crashes.load("training_set", DAY)["split"].equals(training["split"]) and again.success


def test_a_retraining_the_data_could_not_train_yet_does_not_settle_drift_against_the_champion(
    tmp_path, loan, instance
):
    """The drifted day's labels have not arrived: its retraining fails for the data's shape, and
    the next drifted day retrains again instead of "already retrained against v1"."""
    unlabelled = loan.load("raw", DAY).assign(defaulted=np.nan)
    assert deliver(loan, tmp_path, DAY, unlabelled).success
    home = tmp_path / "home"
    report(instance, "loan_default", DAY, 0.5, version="1")
    first = evaluate(home, "loan_default", instance)
    [request] = first.run_requests
    failed = loan.defs.resolve_job_def(keys.training_job("loan_default")).execute_in_process(
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
    )
    assert not failed.success
    [failure] = [event for event in failed.all_events if event.is_step_failure]
    assert "0 labelled rows, fewer than training.min_labelled_rows=500" in (
        failure.step_failure_data.user_failure_data.description
    )

    report(instance, "loan_default", "2026-01-09", 0.5, version="1")
    [again] = evaluate(home, "loan_default", instance, cursor=first.cursor).run_requests
    assert again.partition_key == "2026-01-09"
