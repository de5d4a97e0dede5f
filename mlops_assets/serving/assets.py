"""A contract's `batch_predictions` and `model_performance`: what the champion served, and how well."""

from typing import Any

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.frames import FLOAT, INT, TEXT, ColumnSpec, FrameSpec, Table
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.keys import (
    BATCH_PREDICTIONS,
    FEATURES,
    MLFLOW_RETRY_POLICY,
    MODEL_PERFORMANCE,
    lifecycle_pool,
    retry_only_transient,
)
from mlops_assets.monitoring.assets import champion_dependency, champion_or_fail
from mlops_assets.monitoring.metrics import (
    PrometheusMetrics,
    performance_metrics,
    prediction_metrics,
)
from mlops_assets.registry.mlflow import MlflowRegistry, RegisteredModel, RegistryError
from mlops_assets.tasks import Task
from mlops_assets.training.model import predict


def model_performance_card(task: Task) -> FrameSpec:
    """One row: how well the day's served scores did on the rows labelled so far, in the
    task's metrics (and the gate metric of the previous champion scoring in shadow)."""
    return FrameSpec(
        f"{task.name.capitalize()}ModelPerformance",  # one Dagster type per task
        (
            ColumnSpec("model_version", TEXT),
            ColumnSpec("scored_rows", INT, ge=0),
            ColumnSpec("labelled_rows", INT, ge=0),
            *(ColumnSpec(name, FLOAT, nullable=True) for name in task.served_metrics),
            ColumnSpec(
                "shadow_version", TEXT, "The previous champion, scoring in shadow", nullable=True
            ),
            ColumnSpec(
                f"shadow_{task.metric.name}",
                FLOAT,
                f"Its {task.metric.title} on the same labelled rows",
                nullable=True,
            ),
        ),
        "One row: how well the day's served scores did, on the rows labelled so far.",
    )


def build_serving_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    threshold = contract.spec.model.decision_threshold
    metric = contract.task.metric.name

    @dg.asset(
        key=contract.key(BATCH_PREDICTIONS),
        partitions_def=partitions_def,
        dagster_type=contract.dagster_types["predictions"],
        ins={"features": dg.AssetIn(contract.key(FEATURES))},
        deps=[champion_dependency(contract)],
        retry_policy=MLFLOW_RETRY_POLICY,
        kinds={"sklearn", "mlflow", "pandas"},
        code_version=contract.version,
        op_tags=k8s_op_tags("serving"),
        pool=lifecycle_pool(contract.name),
        metadata={"dagster/column_schema": contract.column_schema("predictions")},
        description=f"Every {contract.spec.entity} of the day scored by the current champion "
        f"({contract.task.score_description}), with the version that scored it.",
    )
    def batch_predictions(
        context: dg.AssetExecutionContext,
        features: Table,
        mlflow: MlflowRegistry,
        metrics: PrometheusMetrics,
    ) -> dg.Output[Table]:
        registered = mlflow.model_of(contract)
        with retry_only_transient():
            champion, model = champion_or_fail(registered.load_champion)
            shadow = _shadow(contract, registered, champion, context)
        predictions, summary = score(contract, model, features, str(champion.version), shadow)
        exported = metrics.export(
            contract.model_name,
            "batch_predictions",
            prediction_metrics(
                context.partition_key,
                str(champion.version),
                len(predictions),
                summary["mean_score"],
                summary.get("positive_rate", float("nan")),
            ),
            context.log,
        )
        return dg.Output(
            predictions,
            metadata={
                "model_version": str(champion.version),
                "shadow_version": shadow[0] if shadow else "none",
                # what the performance policy compares the served metric with, on how many rows
                f"champion_validation_{metric}": float(
                    champion.tags.get(f"validation_{metric}", "nan")
                ),
                **{
                    f"champion_{name}": _tag_number(champion.tags.get(name, "0"))
                    for name in contract.task.validation_counts
                },
                "dagster/row_count": len(predictions),
                **summary,
                "decision_threshold": threshold,
                "prometheus_metrics": exported,
            },
        )

    @dg.asset(
        key=contract.key(MODEL_PERFORMANCE),
        partitions_def=partitions_def,
        dagster_type=model_performance_card(contract.task).dagster_type(),
        ins={
            "batch_predictions": dg.AssetIn(contract.key(BATCH_PREDICTIONS)),
            "features": dg.AssetIn(contract.key(FEATURES)),
        },
        kinds={"pandas"},
        op_tags=k8s_op_tags("serving"),
        pool=lifecycle_pool(contract.name),
        automation_condition=when_labels_arrive(),
        description="How well what was served did, on the rows labelled so far; materialized "
        "again by itself when a day's features are (late labels arrive by re-ingestion).",
    )
    def model_performance(
        context: dg.AssetExecutionContext,
        batch_predictions: Table,
        features: Table,
        metrics: PrometheusMetrics,
    ) -> dg.Output[Table]:
        import pandas as pd

        row = served_performance(contract, batch_predictions, features)
        mean_score_labelled, live = row.pop("mean_score_labelled"), row.pop("live")
        champion = _champion_validation(context, contract, contract.key(BATCH_PREDICTIONS))
        exported = metrics.export(
            contract.model_name,
            "model_performance",
            performance_metrics(
                row["model_version"],
                row["labelled_rows"],
                contract.task.metric,
                row[metric],
                row["shadow_version"],
                row[f"shadow_{metric}"],
                champion[f"champion_validation_{metric}"],
            ),
            context.log,
        )
        return dg.Output(
            pd.DataFrame([row]),
            metadata={
                "status": "labels available"
                if row["labelled_rows"]
                else "labels not yet available: re-materialize later",
                "prometheus_metrics": exported,
                "model_version": row["model_version"],
                "labelled_rows": row["labelled_rows"],
                **{
                    name: dg.MetadataValue.float(float(row[name]))
                    for name in contract.task.served_metrics
                    if name != "positive_rate"
                },
                "mean_score_labelled": dg.MetadataValue.float(mean_score_labelled),
                # read by the performance sensor's noise and calibration rules (`Task.live_summary`)
                **{name: dg.MetadataValue.float(value) for name, value in live.items()},
                # read by the rollback sensor: the previous champion on the same rows
                "shadow_version": row["shadow_version"] or "none",
                f"shadow_{metric}": dg.MetadataValue.float(float(row[f"shadow_{metric}"])),
                f"champion_validation_{metric}": dg.MetadataValue.float(
                    champion.pop(f"champion_validation_{metric}")
                ),
                **champion,
            },
        )

    return [batch_predictions, model_performance]


def _shadow(
    contract: DataContract,
    registered: RegisteredModel,
    champion: Any,
    context: dg.AssetExecutionContext,
) -> tuple[str, Any] | None:
    """The previous champion and its model while the new one is watched after its promotion.

    A shadow that cannot be loaded (deleted, or failing its digest check) is skipped with a
    warning: it never stops the champion's scores."""
    performance = contract.spec.performance
    if performance is None or not performance.watch_days:
        return None
    version = registered.shadow_of(champion, context.partition_key, performance.watch_days)
    if version is None:
        return None
    try:
        return version, registered.load_version(registered.require_version(version))
    except RegistryError as error:
        context.log.warning(f"No shadow scores from v{version}: {error}")
        return None


def _champion_validation(
    context: dg.AssetExecutionContext, contract: DataContract, scored: dg.AssetKey
) -> dict:
    """The validation gate metric (and its row and positive counts) of the champion that
    scored this partition, from the scoring's metadata."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=scored, asset_partitions=[context.partition_key]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    metadata = materialization.metadata if materialization else {}

    def value(name: str, default: float) -> float:
        return float(metadata[name].value) if name in metadata else default

    validation = f"champion_validation_{contract.task.metric.name}"
    return {
        validation: value(validation, float("nan")),
        **{
            f"champion_{name}": int(value(f"champion_{name}", 0))
            for name in contract.task.validation_counts
        },
    }


def when_labels_arrive() -> dg.AutomationCondition:
    """Materialize a partition again, any day, once a dependency (the day's features, delivered
    again with late labels) has been updated since; never while one is missing or in progress."""
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("when labels arrive")


def score(
    contract: DataContract,
    model: Any,
    features: Table,
    version: str,
    shadow: tuple[str, Any] | None = None,
) -> tuple[Table, dict[str, float]]:
    """A day's rows scored by `model`: id, event time, score, decision, version, and the
    `shadow` (version, model) scores beside them; and a summary."""
    import numpy as np
    import pandas as pd

    task, threshold = contract.task, contract.spec.model.decision_threshold
    scores = predict(model, features, contract)
    shadow_scores = (
        predict(shadow[1], features, contract) if shadow else np.full_like(scores, np.nan)
    )
    predictions = pd.DataFrame(
        {
            contract.id_column: features[contract.id_column].to_numpy(),
            contract.event_time_column: features[contract.event_time_column].to_numpy(),
            **task.prediction_columns(scores, "score"),
            **task.decisions(scores, threshold),
            "model_version": version,
            **task.prediction_columns(shadow_scores, "shadow_score"),
            "shadow_version": pd.Series(
                [shadow[0] if shadow else None] * len(features), dtype=object
            ).to_numpy(),
        }
    )
    return predictions, task.prediction_summary(scores, threshold)


def served_performance(
    contract: DataContract, predictions: Table, features: Table
) -> dict[str, Any]:
    """Metrics of the served scores on the rows whose labels are known now."""
    label = contract.label_column
    joined = predictions.merge(
        features[[contract.id_column, label]], on=contract.id_column, how="left"
    )
    labelled = joined[joined[label].notna()]
    versions = ", ".join(sorted(predictions["model_version"].unique())) or "none"
    shadowed = (
        labelled[labelled["shadow_score"].notna()] if "shadow_score" in labelled else labelled[:0]
    )
    task, metric = contract.task, contract.task.metric.name
    shadow_score = (
        task.metrics(task.labels(shadowed, label), task.stored_scores(shadowed, "shadow_score"))[
            metric
        ]
        if len(shadowed)
        else float("nan")
    )
    labels, served = task.labels(labelled, label), task.stored_scores(labelled, "score")
    nan = float("nan")
    scores = (
        task.metrics(labels, served) if len(labelled) else dict.fromkeys(task.served_metrics, nan)
    )
    live = task.live_summary(labels, served) if len(labelled) else {}
    return {
        "model_version": versions,
        "mean_score_labelled": float(labelled["score"].mean()) if len(labelled) else float("nan"),
        "scored_rows": len(joined),
        "labelled_rows": len(labelled),
        **{name: scores[name] for name in task.served_metrics},
        "shadow_version": ", ".join(sorted(shadowed["shadow_version"].unique())) or None,
        f"shadow_{metric}": shadow_score,
        "live": {name: live.get(name, nan) for name in task.live_numbers},
    }


def _tag_number(text: str) -> int | float:
    """A registry tag's number: a count stays an integer."""
    number = float(text)
    return int(number) if number.is_integer() and "." not in text else number
