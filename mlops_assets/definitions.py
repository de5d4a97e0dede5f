"""Assemble the code location: one lifecycle per contract file, plus the shared resources."""

from __future__ import annotations

import dagster as dg

from mlops_assets.io_manager import ParquetIOManager
from mlops_assets.lifecycle import build_lifecycle
from mlops_assets.monitoring.metrics import PrometheusMetrics
from mlops_assets.registry.mlflow import MlflowRegistry
from mlops_assets.settings import PlatformSettings


def build_resources(settings: PlatformSettings) -> dict[str, object]:
    """The resources every contract shares: asset storage, MLflow, metrics."""
    return {
        "io_manager": ParquetIOManager(base_path=settings.storage_url),
        "mlflow": MlflowRegistry(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
            ui_url=settings.mlflow_ui_url,
            cache_dir=str(settings.home / "cache"),
        ),
        "metrics": PrometheusMetrics(
            pushgateway_url=settings.pushgateway_url, textfile_dir=settings.metrics_dir
        ),
    }


def _executor(settings: PlatformSettings) -> dg.ExecutorDefinition:
    """One pod per step on Kubernetes (sensor-launched retraining included). Locally every step
    runs in the run's own process by default: a step process would pay the imports of Dagster,
    MLflow and scikit-learn again (seconds each) for steps that run one after another anyway."""
    if settings.executor == "k8s_job":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor
    return dg.in_process_executor


def build_definitions(settings: PlatformSettings | None = None) -> dg.Definitions:
    """Everything the code location serves, for the given (default: environment) settings."""
    settings = settings or PlatformSettings.from_env()
    lifecycles = [build_lifecycle(contract, settings) for contract in settings.load_contracts()]
    shared = dg.Definitions(executor=_executor(settings), resources=build_resources(settings))
    return dg.Definitions.merge(*lifecycles, shared)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
