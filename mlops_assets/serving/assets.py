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
from mlops_assets.registry.mlflow import MlflowRegistry
from mlops_assets.training.model import classification_metrics, positive_probability

MODEL_PERFORMANCE_CARD = FrameSpec(
    "ModelPerformance",
    (
        ColumnSpec("model_version", TEXT),
        ColumnSpec("scored_rows", INT, ge=0),
        ColumnSpec("labelled_rows", INT, ge=0),
        *(
            ColumnSpec(name, FLOAT, nullable=True)
            for name in ("roc_auc", "pr_auc", "brier", "log_loss", "positive_rate")
        ),
    ),
    "One row: how well the day's served scores did, on the rows labelled so far.",
)


def build_serving_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    threshold = contract.spec.model.decision_threshold

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
        description=f"Every {contract.spec.entity} of the day scored by the current champion, "
        f"with the version that scored it; `positive` when the score is >= {threshold}.",
    )
    def batch_predictions(
        context: dg.AssetExecutionContext,
        features: Table,
        mlflow: MlflowRegistry,
        metrics: PrometheusMetrics,
    ) -> dg.Output[Table]:
        registered = mlflow.model(contract.model_name)
        with retry_only_transient():
            champion, model = champion_or_fail(registered.load_champion)
        predictions, summary = score(contract, model, features, str(champion.version))
        exported = metrics.export(
            contract.model_name,
            "batch_predictions",
            prediction_metrics(
                context.partition_key,
                str(champion.version),
                len(predictions),
                summary["mean_score"],
                summary["positive_rate"],
            ),
            context.log,
        )
        return dg.Output(
            predictions,
            metadata={
                "model_version": str(champion.version),
                # what the performance policy compares the served ROC AUC with
                "champion_validation_roc_auc": float(
                    champion.tags.get("validation_roc_auc", "nan")
                ),
                "dagster/row_count": len(predictions),
                **summary,
                "decision_threshold": threshold,
                "prometheus_metrics": exported,
            },
        )

    @dg.asset(
        key=contract.key(MODEL_PERFORMANCE),
        partitions_def=partitions_def,
        dagster_type=MODEL_PERFORMANCE_CARD.dagster_type(),
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
        mean_score_labelled = row.pop("mean_score_labelled")
        champion_auc = _champion_validation_auc(context, contract.key(BATCH_PREDICTIONS))
        exported = metrics.export(
            contract.model_name,
            "model_performance",
            performance_metrics(row["model_version"], row["labelled_rows"], row["roc_auc"]),
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
                    for name in ("roc_auc", "pr_auc", "brier")
                },
                "mean_score_labelled": dg.MetadataValue.float(mean_score_labelled),
                "observed_positive_rate": dg.MetadataValue.float(float(row["positive_rate"])),
                "champion_validation_roc_auc": dg.MetadataValue.float(champion_auc),
            },
        )

    return [batch_predictions, model_performance]


def _champion_validation_auc(context: dg.AssetExecutionContext, scored: dg.AssetKey) -> float:
    """The validation ROC AUC of the champion that scored this partition (from its metadata)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=scored, asset_partitions=[context.partition_key]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    value = materialization.metadata.get("champion_validation_roc_auc") if materialization else None
    return float(value.value) if value is not None else float("nan")


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
    contract: DataContract, model: Any, features: Table, version: str
) -> tuple[Table, dict[str, float]]:
    """A day's rows scored by `model`: id, event time, score, decision, version; and a summary."""
    import pandas as pd

    probability = positive_probability(model, features, contract)
    flagged = probability >= contract.spec.model.decision_threshold
    predictions = pd.DataFrame(
        {
            contract.id_column: features[contract.id_column].to_numpy(),
            contract.event_time_column: features[contract.event_time_column].to_numpy(),
            "score": probability,
            "decision": pd.Series(flagged).map({True: "positive", False: "negative"}).to_numpy(),
            "model_version": version,
        }
    )
    summary = {
        "mean_score": float(probability.mean()) if len(probability) else float("nan"),
        "positive_rate": float(flagged.mean()) if len(flagged) else float("nan"),
    }
    return predictions, summary


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
    scores = (
        classification_metrics(labelled[label].astype(int).to_numpy(), labelled["score"].to_numpy())
        if len(labelled)
        else dict.fromkeys(
            ("roc_auc", "pr_auc", "brier", "log_loss", "positive_rate"), float("nan")
        )
    )
    return {
        "model_version": versions,
        "mean_score_labelled": float(labelled["score"].mean()) if len(labelled) else float("nan"),
        "scored_rows": len(joined),
        "labelled_rows": len(labelled),
        **{name: scores[name] for name in ("roc_auc", "pr_auc", "brier", "log_loss")},
        "positive_rate": scores["positive_rate"],
    }
