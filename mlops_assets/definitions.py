"""Assemble the code location: assets, checks, jobs and resources chosen from the settings."""

from __future__ import annotations

import dagster as dg

from mlops_assets.features.assets import build_feature_assets
from mlops_assets.ingestion.assets import build_ingestion_assets
from mlops_assets.io_manager import ParquetIOManager
from mlops_assets.settings import PlatformSettings
from mlops_assets.sources import FileLoanSource, LoanApplicationSource, SyntheticLoanSource

INGESTION_JOB = "ingest_loan_applications_job"


def build_source(settings: PlatformSettings) -> LoanApplicationSource:
    if settings.source == "files":
        assert settings.source_url is not None
        return FileLoanSource(base_url=settings.source_url, file_format=settings.source_format)
    return SyntheticLoanSource(
        seed=settings.seed,
        rows_per_day=settings.rows_per_day,
        scenario=settings.drift_scenario,
        scenario_start=settings.drift_start,
        invalid_row_share=settings.invalid_row_share,
        label_delay_days=settings.label_delay_days,
        as_of=settings.as_of,
    )


def build_resources(settings: PlatformSettings) -> dict[str, object]:
    return {
        "io_manager": ParquetIOManager(base_path=settings.storage_url),
        "loan_source": build_source(settings),
    }


def build_definitions(settings: PlatformSettings | None = None) -> dg.Definitions:
    """Everything the code location serves, for the given (default: environment) settings."""
    settings = settings or PlatformSettings.from_env()
    daily = dg.DailyPartitionsDefinition(start_date=settings.partitions_start)
    ingestion = build_ingestion_assets(daily)
    features = build_feature_assets(daily)
    ingestion_job = dg.define_asset_job(
        INGESTION_JOB,
        selection=dg.AssetSelection.groups("ingestion", "features"),
        description="Ingest, validate and featurize one day of loan applications.",
    )
    return dg.Definitions(
        assets=[ingestion, features],
        jobs=[ingestion_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                ingestion_job, hour_of_day=1, default_status=dg.DefaultScheduleStatus.STOPPED
            )
        ],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
