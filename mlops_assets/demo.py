"""The main job: run the lifecycle for a few days on the embedded default and print what happened.

`make demo` runs it with `DAGSTER_HOME` and `MLOPS_HOME` under the repository, so every run is
recorded in the local instance and shows up in `dagster dev` afterwards. Exits non-zero unless
every step of the story happened.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from mlops_assets.definitions import INGESTION_JOB, TRAINING_JOB, build_definitions
from mlops_assets.settings import PlatformSettings


@dataclass
class DayOutcome:
    day: str
    success: bool
    row_counts: dict[str, int]
    failed_checks: list[str]


def run_ingestion(
    defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str], log_level: str = "WARNING"
) -> list[DayOutcome]:
    """Materialize ingestion and features for each day, in order, recording runs in `instance`."""
    job = defs.resolve_job_def(INGESTION_JOB)
    outcomes = []
    for day in days:
        result = job.execute_in_process(
            partition_key=day,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        row_counts = {
            materialization.asset_key.to_user_string(): int(
                materialization.metadata["dagster/row_count"].value
            )
            for materialization in result.asset_materializations_for_node(
                "ingest_loan_applications"
            )
            + result.asset_materializations_for_node("loan_features")
        }
        failed = [
            f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            for evaluation in result.get_asset_check_evaluations()
            if not evaluation.passed
        ]
        outcomes.append(DayOutcome(day, result.success, row_counts, failed))
    return outcomes


@dataclass
class TrainingOutcome:
    day: str
    success: bool
    metadata: dict[str, object]
    failed_gates: list[str]


def run_training(
    defs: dg.Definitions, instance: dg.DagsterInstance, day: str, log_level: str = "WARNING"
) -> TrainingOutcome:
    """Train on the window ending on `day`, gate, register, and promote if every gate passes."""
    result = defs.resolve_job_def(TRAINING_JOB).execute_in_process(
        partition_key=day,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    metadata: dict[str, object] = {}
    for node in ("trained_model", "registered_model_version"):
        for materialization in result.asset_materializations_for_node(node):
            metadata |= {key: value.value for key, value in materialization.metadata.items()}
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    return TrainingOutcome(day, result.success, metadata, failed)


def print_summary(outcomes: list[DayOutcome], settings: PlatformSettings) -> None:
    print("\nday         run  raw    rejected  features  failed checks")
    for outcome in outcomes:
        counts = outcome.row_counts
        print(
            f"{outcome.day}  {'ok ' if outcome.success else 'FAIL'} "
            f"{counts.get('raw_loan_applications', 0):>6} {counts.get('rejected_loan_applications', 0):>9}"
            f" {counts.get('loan_features', 0):>9}  {', '.join(outcome.failed_checks) or '-'}"
        )
    print(f"\nAsset files:     {settings.storage_url}")
    print(f"MLflow:          {settings.mlflow_tracking_uri}")
    print(f"Dagster home:    {os.environ.get('DAGSTER_HOME')}")
    print("Look around:     make dev   (Dagster UI on http://127.0.0.1:3000)")
    print(f"                 make mlflow-ui   (MLflow UI on {settings.mlflow_ui_url})")


def print_training(outcome: TrainingOutcome) -> None:
    meta = outcome.metadata
    print(f"\nmodel as of {outcome.day}: {'ok' if outcome.success else 'FAILED'}")
    if "validation/roc_auc" in meta:
        print(
            f"  validation ROC AUC {meta['validation/roc_auc']:.4f}  (MLflow run {meta['mlflow_run']})"
        )
    if "version" in meta:
        print(
            f"  registry version {meta['version']}: champion={meta['champion']} ({meta['reason']})"
        )
    if outcome.failed_gates:
        print(f"  failed gates: {', '.join(outcome.failed_gates)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=5, help="how many daily partitions to run")
    parser.add_argument("--start", help="first day (default: MLOPS_PARTITIONS_START)")
    parser.add_argument("--verbose", action="store_true", help="show every Dagster event")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        parser.error("DAGSTER_HOME is not set: run through `make demo`, or export it to a folder")
    settings = PlatformSettings.from_env()
    start = date.fromisoformat(args.start or settings.partitions_start)
    days = [(start + timedelta(days=offset)).isoformat() for offset in range(args.days)]
    defs = build_definitions(settings)
    log_level = "DEBUG" if args.verbose else "WARNING"
    with dg.DagsterInstance.get() as instance:
        outcomes = run_ingestion(defs, instance, days, log_level)
        training = run_training(defs, instance, days[-1], log_level)
    print_summary(outcomes, settings)
    print_training(training)
    happened = all(outcome.success for outcome in outcomes) and training.success
    return 0 if happened and training.metadata.get("champion") else 1


if __name__ == "__main__":
    sys.exit(main())
