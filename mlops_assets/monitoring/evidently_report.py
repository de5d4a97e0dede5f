"""The Evidently `DataDriftPreset` report: the HTML a person opens next to our drift scores.

evidently is imported here only (it takes ~5 s), when a report is actually built.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_assets.contracts import DataContract


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract) -> Any:
    """A real Evidently 0.7 `Report([DataDriftPreset()])` run over the contract's drift columns
    that hold values on both sides (`columns_without_values`), or None when none does."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    empty = columns_without_values(reference, current, contract)
    columns = [name for name in contract.drift_columns if name not in empty]
    if not columns:
        return None
    definition = DataDefinition(
        numerical_columns=[name for name in contract.numeric_features if name in columns],
        categorical_columns=[name for name in contract.categorical_features if name in columns],
    )
    return Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def columns_without_values(
    reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract
) -> dict[str, str]:
    """Drift columns with no value left on a side, and which: Evidently raises on an empty
    column, so the HTML report leaves them out (the drift scores report them `all_missing`)."""
    from mlops_assets.monitoring.drift import clean_values

    empty = {}
    for name in contract.drift_columns:
        numeric = name in contract.numeric_features
        sides = [
            side
            for side, frame in (("reference", reference), ("current", current))
            if clean_values(frame[name], numeric).empty
        ]
        if sides:
            empty[name] = " and ".join(sides)
    return empty


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
