"""One contract's whole lifecycle as Dagster definitions: its assets, checks, jobs, sensor, schedule
and source. `definitions.py` merges one of these per contract file.

Every asset key starts with the contract's name (`loan_default/features`) and every asset is in
the contract's group, so the UI shows one lineage per model; the stage (ingestion, features,
training, registry, monitoring, serving) is a tag and decides the owners.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.features.assets import build_feature_assets
from mlops_assets.ingestion.assets import build_ingestion_assets, source_key
from mlops_assets.ingestion.sources import DataSource, FileSource
from mlops_assets.keys import (
    CONTRACT_TAG,
    STAGES,
    daily_job,
    ingestion_job,
    late_labels_sensor,
    training_job,
)
from mlops_assets.monitoring.assets import build_drift_assets
from mlops_assets.monitoring.sensors import (
    build_performance_sensor,
    build_retraining_sensor,
    build_rollback_sensor,
)
from mlops_assets.registry.assets import build_registry_assets
from mlops_assets.registry.rollback import build_rollback_job
from mlops_assets.serving.assets import build_serving_assets
from mlops_assets.settings import SOURCE_OVERRIDES, PlatformSettings, SettingsError
from mlops_assets.training.assets import build_training_assets

# Who answers for each stage, shown on every asset in the UI; change to your teams (or emails).
STAGE_OWNERS = {
    "ingestion": ["team:data-engineering"],
    "features": ["team:data-engineering"],
    "training": ["team:ml-engineering"],
    "registry": ["team:ml-engineering"],
    "monitoring": ["team:ml-platform"],
    "serving": ["team:ml-platform"],
}


def build_source(contract: DataContract, settings: PlatformSettings) -> DataSource:
    """The contract's source resource: a folder of files, or its own `DataSource` class.

    MLOPS_SYNTHETIC_* and the other source variables set the fields of a `python` source that
    has them (the loan example's synthetic source); a bad value fails the load.
    """
    spec = contract.spec.source
    if spec.kind == "files":
        if settings.deployment == "k8s" and "://" not in spec.url:
            raise SettingsError(
                f"{contract.where()}: source.url: {spec.url!r} is a pod's own disk under "
                "MLOPS_DEPLOYMENT=k8s; deliver the files to an object store (s3://...)"
            )
        return FileSource(
            base_url=spec.url, file_format=spec.format, storage_options=spec.storage_options
        )
    module_name, _, class_name = spec.resource.partition(":")
    import importlib

    try:
        source_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise SettingsError(f"{contract.where()}: source.resource: {error}") from None
    if not (isinstance(source_class, type) and issubclass(source_class, DataSource)):
        raise SettingsError(
            f"{contract.where()}: source.resource: {spec.resource} is not a DataSource subclass"
        )
    fields = source_class.model_fields
    overrides = {name: value for name, value in settings.source_overrides.items() if name in fields}
    try:
        return source_class(**{**spec.config, **overrides})
    except Exception as error:  # pydantic's ValidationError or the source's own check
        variables = [
            f"{variable}={settings.environ[variable]}"
            for variable, (name, _) in SOURCE_OVERRIDES.items()
            if name in overrides
        ]
        raise SettingsError(
            f"{contract.where()}: source.config"
            + (f" with {', '.join(variables)}" if variables else "")
            + f": {error}"
        ) from None


def build_lifecycle(contract: DataContract, settings: PlatformSettings) -> dg.Definitions:
    """Assets, checks, jobs, sensor, schedule and source of one contract."""
    daily = dg.DailyPartitionsDefinition(start_date=settings.partitions_start)
    assets: list[Any] = [
        build_ingestion_assets(contract, daily),
        build_feature_assets(contract, daily),
        *build_training_assets(contract, daily),
        build_registry_assets(contract, daily),
        build_drift_assets(contract, daily, settings.reports_url),
        *build_serving_assets(contract, daily),
    ]
    assets = dg.map_asset_specs(lambda spec: _in_group(contract, spec), assets)
    group = dg.AssetSelection.groups(contract.name)
    stages = {stage: group & dg.AssetSelection.tag("stage", stage) for stage in STAGE_OWNERS}
    tags = {CONTRACT_TAG: contract.name}
    ingest = dg.define_asset_job(
        ingestion_job(contract.name),
        selection=stages["ingestion"] | stages["features"],
        description=f"Ingest, validate and featurize one day of {contract.name}.",
        tags=tags,
    )
    daily_lifecycle = dg.define_asset_job(
        daily_job(contract.name),
        selection=stages["ingestion"]
        | stages["features"]
        | stages["monitoring"]
        | stages["serving"],
        description=f"A day of {contract.name}: ingest, featurize, check drift, score, measure.",
        tags=tags,
    )
    train = dg.define_asset_job(
        training_job(contract.name),
        selection=stages["training"] | stages["registry"],
        description=f"Train {contract.model_name} on the window ending on the partition, gate, "
        "register and maybe promote.",
        tags=tags,
    )
    rollback = build_rollback_job(contract)
    return dg.Definitions(
        assets=assets,
        jobs=[ingest, daily_lifecycle, train, rollback],
        sensors=[
            sensor
            for build, job, running in (
                (build_retraining_sensor, train, settings.retraining_sensor_running),
                (build_performance_sensor, train, settings.performance_sensor_running),
                (build_rollback_sensor, rollback, settings.retraining_sensor_running),
            )
            if (
                sensor := build(
                    contract,
                    job,
                    interval_seconds=settings.sensor_interval_seconds,
                    running=running,
                )
            )
            is not None
        ]
        + [
            # Late labels: a day's model_performance again once its features are delivered again.
            dg.AutomationConditionSensorDefinition(
                late_labels_sensor(contract.name),
                target=group & dg.AssetSelection.tag("stage", "serving"),
                minimum_interval_seconds=settings.sensor_interval_seconds,
                default_status=dg.DefaultSensorStatus.RUNNING
                if settings.retraining_sensor_running
                else dg.DefaultSensorStatus.STOPPED,
                description="Materializes model_performance of any day again once the day's "
                "features were updated since (its labels arrived).",
            )
        ],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                ingest,
                name=f"{contract.name}_ingest_schedule",
                hour_of_day=1,
                default_status=dg.DefaultScheduleStatus.STOPPED,
            )
        ],
        resources={source_key(contract): build_source(contract, settings)},
    )


def _in_group(contract: DataContract, spec: dg.AssetSpec) -> dg.AssetSpec:
    stage = STAGES[spec.key.path[-1]]
    return spec.replace_attributes(
        group_name=contract.name,
        owners=STAGE_OWNERS[stage],
        tags={**spec.tags, "stage": stage},
    )
