"""Assemble the code location: assets, checks, jobs and resources chosen from the settings."""

from __future__ import annotations

import dagster as dg

from mlops_assets.features.assets import build_feature_assets
from mlops_assets.ingestion.assets import build_ingestion_assets
from mlops_assets.io_manager import ParquetIOManager
from mlops_assets.mlflow_resources import ModelRegistry, mlflow_tracking_resource
from mlops_assets.monitoring.assets import build_monitoring_assets
from mlops_assets.monitoring.metrics import PrometheusMetrics
from mlops_assets.monitoring.policy import RetrainingPolicy
from mlops_assets.monitoring.sensors import build_retraining_sensor
from mlops_assets.registry.assets import build_registry_assets
from mlops_assets.registry.rollback import rollback_champion
from mlops_assets.settings import PlatformSettings
from mlops_assets.sources import FileLoanSource, LoanApplicationSource, SyntheticLoanSource
from mlops_assets.training.assets import build_training_assets
from mlops_assets.training.gates import ModelGates

INGESTION_JOB = "ingest_loan_applications_job"
DAILY_JOB = "daily_lifecycle_job"
TRAINING_JOB = "train_and_register_job"


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
        "mlflow": mlflow_tracking_resource.configured(
            {
                "experiment_name": settings.mlflow_experiment,
                "mlflow_tracking_uri": settings.mlflow_tracking_uri,
                "artifact_location": settings.mlflow_artifact_root,
                "extra_tags": {"platform": "mlops_assets"},
            }
        ),
        "model_registry": ModelRegistry(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            ui_url=settings.mlflow_ui_url,
            cache_dir=str(settings.home / "cache"),
        ),
        "gates": ModelGates(**settings.gate_overrides),
        "metrics": PrometheusMetrics(
            model_name=settings.model_name,
            pushgateway_url=settings.pushgateway_url,
            textfile_dir=settings.metrics_dir,
        ),
        "retraining_policy": RetrainingPolicy(
            drift_threshold=settings.drift_threshold,
            consecutive_partitions=settings.retrain_consecutive,
            cooldown_hours=settings.retrain_cooldown_hours,
        ),
    }


# Who answers for each group, shown on every asset in the UI; change to your teams (or emails).
GROUP_OWNERS = {
    "ingestion": ["team:data-engineering"],
    "features": ["team:data-engineering"],
    "training": ["team:ml-engineering"],
    "registry": ["team:ml-engineering"],
    "monitoring": ["team:ml-platform"],
    "serving": ["team:ml-platform"],
}


def _with_owners(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec.replace_attributes(owners=GROUP_OWNERS.get(spec.group_name or "", []))


def _executor(settings: PlatformSettings) -> dg.ExecutorDefinition | None:
    """One pod per step on Kubernetes (sensor-launched retraining included); else Dagster's default."""
    if settings.deployment != "k8s":
        return None
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def build_definitions(settings: PlatformSettings | None = None) -> dg.Definitions:
    """Everything the code location serves, for the given (default: environment) settings."""
    settings = settings or PlatformSettings.from_env()
    daily = dg.DailyPartitionsDefinition(start_date=settings.partitions_start)
    ingestion = build_ingestion_assets(daily)
    features = build_feature_assets(daily)
    training = build_training_assets(daily, settings.training_window_days)
    registry = build_registry_assets(daily)
    monitoring = build_monitoring_assets(daily, settings.reports_url)
    ingestion_job = dg.define_asset_job(
        INGESTION_JOB,
        selection=dg.AssetSelection.groups("ingestion", "features"),
        description="Ingest, validate and featurize one day of loan applications.",
    )
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.groups("ingestion", "features", "monitoring", "serving"),
        description="A day's applications: ingest, featurize, check drift, score, measure served model.",
    )
    training_job = dg.define_asset_job(
        TRAINING_JOB,
        selection=dg.AssetSelection.groups("training", "registry"),
        description="Train on the window ending on the partition, gate, register and maybe promote.",
    )
    assets = dg.map_asset_specs(
        _with_owners, [ingestion, features, *training, registry, *monitoring]
    )
    return dg.Definitions(
        executor=_executor(settings),
        assets=assets,
        jobs=[ingestion_job, daily_job, training_job, rollback_champion],
        sensors=[
            build_retraining_sensor(
                training_job,
                interval_seconds=settings.sensor_interval_seconds,
                running=settings.retraining_sensor_running,
                window_days=settings.training_window_days,
            )
        ],
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
