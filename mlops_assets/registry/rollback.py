"""A contract's rollback job: re-point `champion` to the previous (or a named) version, recorded."""

import dagster as dg
from pydantic import Field

from mlops_assets.contracts import DataContract
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.keys import (
    MLFLOW_RETRY_POLICY,
    REGISTERED_MODEL_VERSION,
    lifecycle_pool,
    rollback_job,
    rollback_op,
)
from mlops_assets.monitoring.metrics import PrometheusMetrics, champion_metrics
from mlops_assets.registry.mlflow import MlflowRegistry, RegistryError


class RollbackConfig(dg.Config):
    to_version: str | None = Field(
        default=None,
        description="Version to make champion; default: the one before the last promotion",
    )
    reason: str = Field(description="Why: recorded with the alias move")
    if_champion_is: str | None = Field(
        default=None,
        description="Move only if this version is still the champion (the rollback sensor sets "
        "it, so a rollback decided before a newer promotion never undoes that one)",
    )


def build_rollback_job(contract: DataContract) -> dg.JobDefinition:
    @dg.op(
        name=rollback_op(contract.name),
        retry_policy=MLFLOW_RETRY_POLICY,
        tags=k8s_op_tags("registry"),
        pool=lifecycle_pool(contract.name),
    )
    def move_champion_back(
        context: dg.OpExecutionContext,
        config: RollbackConfig,
        mlflow: MlflowRegistry,
        metrics: PrometheusMetrics,
    ) -> None:
        """Move the alias, then record the move as an observation of the registry asset."""
        registered = mlflow.model_of(contract)
        if config.if_champion_is is not None:
            current = registered.champion()
            if current is None or str(current.version) != config.if_champion_is:
                context.log.info(
                    f"Not rolled back: the champion is now "
                    f"v{current.version if current else 'none'}, not v{config.if_champion_is}"
                )
                return
        try:
            move = registered.rollback(config.to_version, config.reason, context.run.run_id)
        except RegistryError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        context.log.info(
            f"champion: v{move.previous_version} -> v{move.new_version} ({move.reason})"
        )
        metrics.export(
            contract.model_name, "champion", champion_metrics(move.new_version), context.log
        )
        context.log_event(
            dg.AssetObservation(
                asset_key=contract.key(REGISTERED_MODEL_VERSION),
                metadata={
                    "event": "rollback",
                    "previous_champion": move.previous_version or "none",
                    "champion": move.new_version,
                    "reason": move.reason,
                    "moved": move.moved,
                    "model_version": dg.MetadataValue.url(registered.version_url(move.new_version)),
                },
            )
        )

    @dg.job(
        name=rollback_job(contract.name),
        description=f"Re-point the champion alias of {contract.model_name!r} to the previous or "
        "a given model version",
        tags={"mlops/contract": contract.name},
    )
    def rollback_champion() -> None:
        move_champion_back()

    return rollback_champion
