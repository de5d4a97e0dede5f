"""Delivery shapes real data has and the synthetic example does not: gaps in integer columns, a
column empty for a whole day, one day whose rows share a generated event time.

Each runs through the platform's jobs on the loan example's history (a contract edited to the
shape), and asserts what a user sees: rows kept or quarantined with a reason, a report, a model.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets.ingestion.sources import FileSource
from mlops_assets_tests.conftest import Platform, edited_contracts, platform_with_history

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
    assert not report.drop(index="employment_length_years")["drifted"].any()
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
