"""The `rollback_champion` job: re-point `champion` to the previous (or a named) version, recorded."""

import dagster as dg
from pydantic import Field

from mlops_assets.deployment import k8s_op_tags
from mlops_assets.mlflow_resources import ModelRegistry, RegistryError
from mlops_assets.monitoring.metrics import PrometheusMetrics, champion_metrics
from mlops_assets.registry.assets import REGISTERED_MODEL_VERSION
from mlops_assets.training.assets import MLFLOW_RETRY_POLICY

ROLLBACK_JOB = "rollback_champion"


class RollbackConfig(dg.Config):
    to_version: str | None = Field(
        default=None,
        description="Version to make champion; default: the one before the last promotion",
    )
    reason: str = Field(description="Why: recorded with the alias move")


@dg.op(retry_policy=MLFLOW_RETRY_POLICY, tags=k8s_op_tags("registry"))
def move_champion_back(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    model_registry: ModelRegistry,
    metrics: PrometheusMetrics,
) -> None:
    """Move the alias, then record the move as an observation of `registered_model_version`."""
    try:
        move = model_registry.rollback(config.to_version, config.reason, context.run.run_id)
    except RegistryError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    context.log.info(f"champion: v{move.previous_version} -> v{move.new_version} ({move.reason})")
    metrics.export("champion", champion_metrics(move.new_version), context.log)
    context.log_event(
        dg.AssetObservation(
            asset_key=REGISTERED_MODEL_VERSION,
            metadata={
                "event": "rollback",
                "previous_champion": move.previous_version or "none",
                "champion": move.new_version,
                "reason": move.reason,
                "moved": move.moved,
                "model_version": dg.MetadataValue.url(model_registry.version_url(move.new_version)),
            },
        )
    )


@dg.job(
    name=ROLLBACK_JOB,
    description="Re-point the champion alias to the previous or a given model version",
)
def rollback_champion() -> None:
    move_champion_back()
