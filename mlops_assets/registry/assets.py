"""A contract's `registered_model_version`: every trained model registered; only one that passes
every gate becomes champion."""

import json
from typing import Any

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.frames import BOOL, TEXT, ColumnSpec, FrameSpec, Table
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.failpoints import failpoint
from mlops_assets.keys import (
    MLFLOW_RETRY_POLICY,
    REGISTERED_MODEL_VERSION,
    TRAINED_MODEL,
    TRAINING_SET,
    TRAINING_SINCE_TAG,
    TRIGGER_TAG,
    lifecycle_pool,
    retry_only_transient,
)
from mlops_assets.monitoring.metrics import (
    PrometheusMetrics,
    champion_metrics,
    registration_metrics,
)
from mlops_assets.registry.mlflow import (
    MODEL_DIGEST_TAG,
    PROMOTION_TAG,
    MlflowRegistry,
    RegisteredModel,
)
from mlops_assets.training.gates import evaluate_gates
from mlops_assets.training.model import SPLIT, VALIDATION

REGISTERED_MODEL_VERSION_CARD = FrameSpec(
    "RegisteredModelVersionCard",
    (
        ColumnSpec("model_name", TEXT),
        ColumnSpec("version", TEXT, "MLflow Model Registry version"),
        ColumnSpec("run_id", TEXT),
        ColumnSpec("model_uri", TEXT),
        ColumnSpec("champion", BOOL, "Whether `champion` points at this version after the run"),
        ColumnSpec(
            "previous_champion", TEXT, "Version `champion` pointed at before ('none' if none)"
        ),
        ColumnSpec("reason", TEXT, "Why the alias moved, or why it did not"),
    ),
    "One row: the registry version made from a trained model, and whether it became champion.",
)


def build_registry_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        key=contract.key(REGISTERED_MODEL_VERSION),
        partitions_def=partitions_def,
        dagster_type=REGISTERED_MODEL_VERSION_CARD.dagster_type(),
        ins={
            "trained_model": dg.AssetIn(contract.key(TRAINED_MODEL)),
            "training_set": dg.AssetIn(contract.key(TRAINING_SET)),
        },
        retry_policy=MLFLOW_RETRY_POLICY,
        kinds={"mlflow"},
        op_tags=k8s_op_tags("registry"),
        pool=lifecycle_pool(contract.name),
        description=f"The model in the MLflow Model Registry as {contract.model_name!r}; "
        "`champion` moves to it only if every gate passes at promotion time.",
    )
    def registered_model_version(
        context: dg.AssetExecutionContext,
        trained_model: Table,
        training_set: Table,
        mlflow: MlflowRegistry,
        metrics: PrometheusMetrics,
    ) -> dg.Output[Table]:
        import pandas as pd

        with retry_only_transient():
            registered = mlflow.model_of(contract)
            row, results = _register(
                context, contract, mlflow, registered, trained_model, training_set
            )
        version, is_champion = row["version"], row["champion"]
        exported = metrics.export(
            contract.model_name,
            "model_registration",
            registration_metrics(
                version,
                contract.task.metric,
                float(trained_model.iloc[0][contract.task.metric.name]),
                is_champion,
            ),
            context.log,
        )
        champion_now = version if is_champion else _none(row["previous_champion"])
        if champion_now is not None:
            metrics.export(
                contract.model_name, "champion", champion_metrics(champion_now), context.log
            )
        return dg.Output(
            pd.DataFrame([row]),
            metadata={
                "version": version,
                "champion": is_champion,
                "promoted": is_champion and row["previous_champion"] != version,
                "trigger": context.run.tags.get(TRIGGER_TAG, "manual"),
                "previous_champion": row["previous_champion"],
                "reason": row["reason"],
                "model_version": dg.MetadataValue.url(registered.version_url(version)),
                "gates": dg.MetadataValue.md(_gate_table(results)),
                "alias_history": dg.MetadataValue.json(registered.alias_history()[-10:]),
                "prometheus_metrics": exported,
            },
        )

    return registered_model_version


def _none(version: str) -> str | None:
    return None if version == "none" else version


def _register(
    context: dg.AssetExecutionContext,
    contract: DataContract,
    registry: MlflowRegistry,
    registered: RegisteredModel,
    trained_model: Table,
    training_set: Table,
) -> tuple[dict[str, Any], list[Any]]:
    """Register the trained model, gate it against the champion of now, move the alias if it passes."""
    card = trained_model.iloc[0]
    challenger = registry.load_model(
        card["model_uri"], card["model_sha256"], registered.trusted_types
    )
    champion, champion_model = registered.champion_and_model()
    validation = training_set[training_set[SPLIT] == VALIDATION]
    results = evaluate_gates(
        contract,
        challenger,
        validation,
        champion_model,
        str(champion.version) if champion else None,
        json.loads(card["baseline"]),
    )
    task = contract.task
    metric = task.metric
    failures = [result for result in results if not result.passed]
    tags = {
        "dagster/run_id": context.run.run_id,
        "dagster/partition": context.partition_key,
        "mlops/contract": contract.name,
        # every validation metric of the card; the gate metric's as the promotion reason shows it
        **{f"validation_{name}": f"{card[name]:g}" for name in task.card_metrics},
        f"validation_{metric.name}": f"{card[metric.name]:.4f}",
        # how much that number can be trusted: the performance policy's noise allowance
        "validation_rows": str(len(validation)),
        **{
            f"validation_{name}": f"{value:g}"
            for name, value in task.label_summary(
                task.labels(validation, contract.label_column)
            ).items()
        },
        MODEL_DIGEST_TAG: card["model_sha256"],
        # Read by drift_report: a champion trained only on data since a drift, still drifting,
        # is escalated instead of retrained.
        TRIGGER_TAG: context.run.tags.get(TRIGGER_TAG, "manual"),
        TRAINING_SINCE_TAG: context.run.tags.get(TRAINING_SINCE_TAG, ""),
        "gates_passed": str(not failures).lower(),
        "gate_failures": "; ".join(result.summary for result in failures)[:4_000] or "none",
        PROMOTION_TAG: "pending: registration did not finish; materialize this partition again",
    }
    version_info = registered.register(
        card["model_uri"], card["run_id"], card["model_id"] or None, tags
    )
    failpoint("registration.after_version")
    version, previous = str(version_info.version), str(champion.version) if champion else None
    if failures:
        reason = "not promoted: " + "; ".join(result.name for result in failures)
        registered.set_version_tags(
            version, {"not_promoted_reason": tags["gate_failures"], PROMOTION_TAG: "not promoted"}
        )
        context.log.warning(
            f"Version {version} registered without the champion alias: {tags['gate_failures']}"
        )
        is_champion = previous == version
    else:
        move = registered.move_champion(
            version,
            reason=_promotion_reason(context, f"{metric.title} {card[metric.name]:.4f}"),
            dagster_run_id=context.run.run_id,
        )
        reason, is_champion = move.reason, True
        context.log.info(f"champion: v{previous or 'none'} -> v{version} ({reason})")
    row = {
        "model_name": contract.model_name,
        "version": version,
        "run_id": card["run_id"],
        "model_uri": card["model_uri"],
        "champion": is_champion,
        "previous_champion": previous or "none",
        "reason": reason,
    }
    return row, results


def _gate_table(results: list[Any]) -> str:
    rows = [f"| {r.name} | {'pass' if r.passed else '**FAIL**'} | {r.summary} |" for r in results]
    return "\n".join(["| gate | result | numbers |", "|---|---|---|", *rows])


def _promotion_reason(context: dg.AssetExecutionContext, validation: str) -> str:
    """Why the alias moves: the gates (and the `validation` metric), plus the drift that
    triggered the run when a sensor did."""
    tags = context.run.tags
    reason = f"all gates passed (validation {validation}) in {context.job_name}"
    if tags.get(TRIGGER_TAG) == "drift":
        reason += (
            f", retrained after drift share {tags.get('mlops/drift_share')} > "
            f"{tags.get('mlops/drift_threshold')} on {tags.get('mlops/drift_partition')}"
        )
    elif tags.get(TRIGGER_TAG) == "performance":
        reason += f", retrained after live performance: {tags.get('mlops/reason', '')}"
    return reason
