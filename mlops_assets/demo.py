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

from mlops_assets.definitions import INGESTION_JOB, build_definitions
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
    print(f"Dagster home:    {os.environ.get('DAGSTER_HOME')}")
    print("Look around:     make dev   (then open http://127.0.0.1:3000)")


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
    with dg.DagsterInstance.get() as instance:
        outcomes = run_ingestion(defs, instance, days, "DEBUG" if args.verbose else "WARNING")
    print_summary(outcomes, settings)
    return 0 if all(outcome.success for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
