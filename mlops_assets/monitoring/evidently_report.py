"""The Evidently `DataDriftPreset` report: the HTML a person opens next to our drift scores.

evidently is imported here only (it takes ~5 s), when a report is actually built.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_assets.contract import LOAN_APPLICATIONS, DataContract


def run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract = LOAN_APPLICATIONS
) -> Any:
    """A real Evidently 0.7 `Report([DataDriftPreset()])` run over the contract's feature columns."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=contract.numeric_features,
        categorical_columns=contract.categorical_features,
    )
    return Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(
            current[contract.feature_columns], data_definition=definition
        ),
        reference_data=Dataset.from_pandas(
            reference[contract.feature_columns], data_definition=definition
        ),
    )


def evidently_column_scores(snapshot: Any) -> dict[str, tuple[str, float, float]]:
    """{column: (method display name, threshold, score)} from a report snapshot."""
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = (
                config["method"],
                float(config["threshold"]),
                float(metric["value"]),
            )
    return scores


def evidently_drift_share(snapshot: Any) -> float:
    for metric in snapshot.dict()["metrics"]:
        if metric["config"].get("type", "").endswith(":DriftedColumnsCount"):
            return float(metric["value"]["share"])
    raise ValueError("The report has no DriftedColumnsCount metric")


def bounded_sample(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most `max_rows` rows, drawn without replacement (deterministically), order kept."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()
