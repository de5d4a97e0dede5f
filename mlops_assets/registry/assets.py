"""`registered_model_version`: register every trained model; only one that passes every gate becomes champion."""

from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from mlops_assets.contract import pandera_dagster_type
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.mlflow_resources import ModelRegistry
from mlops_assets.monitoring.metrics import (
    PrometheusMetrics,
    champion_metrics,
    registration_metrics,
)
from mlops_assets.training.assets import MLFLOW_RETRY_POLICY, TRAINED_MODEL, TRAINING_SET
from mlops_assets.training.gates import ModelGates
from mlops_assets.training.model import SPLIT, VALIDATION

REGISTERED_MODEL_VERSION = dg.AssetKey("registered_model_version")


class RegisteredModelVersionCard(pa.DataFrameModel):
    """One row: the registry version made from a trained model, and whether it became champion."""

    model_name: Series[str]
    version: Series[str] = pa.Field(description="MLflow Model Registry version")
    run_id: Series[str]
    model_uri: Series[str]
    champion: Series[bool] = pa.Field(
        description="Whether `champion` points at this version after the run"
    )
    previous_champion: Series[str] = pa.Field(
        description="Version `champion` pointed at before ('none' if none)"
    )
    reason: Series[str] = pa.Field(description="Why the alias moved, or why it did not")

    class Config:
        title = "RegisteredModelVersionCard"
        strict = True
        coerce = True


def build_registry_assets(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=partitions_def,
        group_name="registry",
        dagster_type=pandera_dagster_type(RegisteredModelVersionCard),
        ins={"trained_model": dg.AssetIn(TRAINED_MODEL), "training_set": dg.AssetIn(TRAINING_SET)},
        retry_policy=MLFLOW_RETRY_POLICY,
        kinds={"mlflow"},
        op_tags=k8s_op_tags("registry"),
    )
    def registered_model_version(
        context: dg.AssetExecutionContext,
        trained_model: pd.DataFrame,
        training_set: pd.DataFrame,
        model_registry: ModelRegistry,
        gates: ModelGates,
        metrics: PrometheusMetrics,
    ) -> dg.Output[pd.DataFrame]:
        """The model in the MLflow Model Registry; `champion` moves to it only if every gate passes now."""
        card = trained_model.iloc[0]
        challenger = model_registry.load_model(card["model_uri"])
        champion, champion_model = model_registry.champion_and_model()
        validation = training_set[training_set[SPLIT] == VALIDATION]
        results = gates.evaluate(
            challenger, validation, champion_model, str(champion.version) if champion else None
        )
        failures = [result for result in results if not result.passed]
        tags = {
            "dagster/run_id": context.run.run_id,
            "dagster/partition": context.partition_key,
            "validation_roc_auc": f"{card['roc_auc']:.4f}",
            "gates_passed": str(not failures).lower(),
            "gate_failures": "; ".join(result.summary for result in failures)[:4_000] or "none",
        }
        registered = model_registry.register(
            card["model_uri"], card["run_id"], card["model_id"] or None, tags
        )
        version, previous = str(registered.version), str(champion.version) if champion else None
        if failures:
            reason = "not promoted: " + "; ".join(result.name for result in failures)
            model_registry.set_version_tags(version, {"not_promoted_reason": tags["gate_failures"]})
            context.log.warning(
                f"Version {version} registered without the champion alias: {tags['gate_failures']}"
            )
            is_champion = previous == version
        else:
            move = model_registry.move_champion(
                version,
                reason=_promotion_reason(context, card["roc_auc"]),
                dagster_run_id=context.run.run_id,
            )
            reason, is_champion = move.reason, True
            context.log.info(f"champion: v{previous or 'none'} -> v{version} ({reason})")
        exported = metrics.export(
            "model_registration",
            registration_metrics(version, float(card["roc_auc"]), is_champion),
            context.log,
        )
        champion_now = version if is_champion else previous
        if champion_now is not None:
            metrics.export("champion", champion_metrics(champion_now), context.log)
        row = {
            "model_name": model_registry.model_name,
            "version": version,
            "run_id": card["run_id"],
            "model_uri": card["model_uri"],
            "champion": is_champion,
            "previous_champion": previous or "none",
            "reason": reason,
        }
        return dg.Output(
            pd.DataFrame([row]),
            metadata={
                "version": version,
                "champion": is_champion,
                "previous_champion": previous or "none",
                "reason": reason,
                "model_version": dg.MetadataValue.url(model_registry.version_url(version)),
                "gates": dg.MetadataValue.md(_gate_table(results)),
                "alias_history": dg.MetadataValue.json(model_registry.alias_history()[-10:]),
                "prometheus_metrics": exported,
            },
        )

    return registered_model_version


def _gate_table(results: list[Any]) -> str:
    rows = [f"| {r.name} | {'pass' if r.passed else '**FAIL**'} | {r.summary} |" for r in results]
    return "\n".join(["| gate | result | numbers |", "|---|---|---|", *rows])


def _promotion_reason(context: dg.AssetExecutionContext, roc_auc: float) -> str:
    """Why the alias moves: the gates, plus the drift that triggered the run when a sensor did."""
    tags = context.run.tags
    reason = f"all gates passed (validation ROC AUC {roc_auc:.4f}) in {context.job_name}"
    if tags.get("mlops/trigger") == "drift":
        reason += (
            f", retrained after drift share {tags.get('mlops/drift_share')} > "
            f"{tags.get('mlops/drift_threshold')} on {tags.get('mlops/drift_partition')}"
        )
    return reason
