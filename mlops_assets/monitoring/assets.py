"""`drift_report` (monitoring) and `batch_predictions` / `model_performance` (serving), all daily."""

import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from pydantic import Field

from mlops_assets.contract import LOAN_APPLICATIONS, pandera_dagster_type
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.io_manager import write_atomically
from mlops_assets.mlflow_resources import ModelRegistry, RegistryError
from mlops_assets.monitoring.drift import DriftResult, ReferenceProfile, dataset_drift
from mlops_assets.monitoring.metrics import (
    PrometheusMetrics,
    drift_metrics,
    performance_metrics,
    prediction_metrics,
)
from mlops_assets.monitoring.policy import RetrainingPolicy
from mlops_assets.training.assets import FEATURES, MLFLOW_RETRY_POLICY
from mlops_assets.training.gates import ModelGates
from mlops_assets.training.model import classification_metrics, default_probability

DRIFT_REPORT = dg.AssetKey("drift_report")
BATCH_PREDICTIONS = dg.AssetKey("batch_predictions")
MODEL_PERFORMANCE = dg.AssetKey("model_performance")
DRIFT_CHECK = "drift_share_within_threshold"


class DriftColumns(pa.DataFrameModel):
    """One row per feature column: the test Evidently would pick, its score and verdict."""

    column: Series[str]
    kind: Series[str] = pa.Field(isin=["numeric", "categorical"])
    test: Series[str] = pa.Field(
        description="wasserstein, jensenshannon, ks, chisquare, z or all_missing"
    )
    score: Series[float] = pa.Field(description="Distance, or p-value for ks/chisquare/z")
    threshold: Series[float]
    drifted: Series[bool]
    reference_rows: Series[int] = pa.Field(ge=0)
    current_rows: Series[int] = pa.Field(ge=0)
    dropped_reference: Series[int] = pa.Field(
        ge=0, description="Missing or infinite values dropped"
    )
    dropped_current: Series[int] = pa.Field(ge=0)
    reference_version: Series[str] = pa.Field(
        description="Champion model version whose training data is the reference"
    )

    class Config:
        title = "DriftColumns"
        strict = True
        coerce = True


class BatchPredictions(pa.DataFrameModel):
    application_id: Series[str] = pa.Field(unique=True)
    applied_at: Series[pd.Timestamp]
    default_probability: Series[float] = pa.Field(ge=0, le=1)
    decision: Series[str] = pa.Field(isin=["approve", "decline"])
    model_version: Series[str] = pa.Field(description="Registry version that scored the row")

    class Config:
        title = "BatchPredictions"
        strict = True
        coerce = True


class ModelPerformance(pa.DataFrameModel):
    model_version: Series[str]
    scored_rows: Series[int] = pa.Field(ge=0)
    labelled_rows: Series[int] = pa.Field(ge=0)
    roc_auc: Series[float] = pa.Field(nullable=True)
    pr_auc: Series[float] = pa.Field(nullable=True)
    brier: Series[float] = pa.Field(nullable=True)
    log_loss: Series[float] = pa.Field(nullable=True)
    default_rate: Series[float] = pa.Field(nullable=True)

    class Config:
        title = "ModelPerformance"
        strict = True
        coerce = True


class DriftReportConfig(dg.Config):
    max_report_rows: int = Field(
        default=20_000,
        description="Rows per side in the Evidently HTML report (a uniform sample above this); "
        "the drift scores always use every row",
    )


def build_monitoring_assets(partitions_def: dg.PartitionsDefinition, reports_url: str) -> list[Any]:
    @dg.asset(
        partitions_def=partitions_def,
        group_name="monitoring",
        dagster_type=pandera_dagster_type(DriftColumns),
        ins={"features": dg.AssetIn(FEATURES)},
        retry_policy=MLFLOW_RETRY_POLICY,
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=DRIFT_REPORT,
                description="Drifted-column share within the retraining policy's threshold (warning)",
            )
        ],
        kinds={"evidently", "pandas", "mlflow"},
        op_tags=k8s_op_tags("monitoring"),
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        config: DriftReportConfig,
        features: pd.DataFrame,
        model_registry: ModelRegistry,
        retraining_policy: RetrainingPolicy,
        metrics: PrometheusMetrics,
        mlflow: dg.ResourceParam[Any],
    ):
        """The day's features against the champion's training data: Evidently's tests, per column."""
        champion = _champion_or_fail(model_registry.require_champion)
        version = str(champion.version)
        reference = model_registry.load_reference(champion)
        result = dataset_drift(_reference_profile(model_registry, champion, reference), features)
        report_path, sampled = _save_evidently_html(
            reference,
            features,
            config.max_report_rows,
            f"{reports_url}/drift_report/{context.partition_key}.html",
        )
        mlflow_run = _log_to_mlflow(mlflow, context, result, version, report_path)
        table = result.to_frame().assign(reference_version=version)
        share = result.share
        exported = metrics.export(
            "drift_report",
            drift_metrics(context.partition_key, result, retraining_policy.drift_threshold),
            context.log,
        )
        yield dg.Output(
            table,
            metadata={
                "drift_share": dg.MetadataValue.float(share),
                "drifted_columns": len(result.drifted_columns),
                "threshold": retraining_policy.drift_threshold,
                "reference_version": version,
                "reference_run_id": champion.run_id,
                "reference_rows": len(reference),
                "current_rows": len(features),
                "columns": _column_table(result),
                "top_drifted": dg.MetadataValue.md(_top_drifted(result)),
                "dropped_missing_or_infinite": dg.MetadataValue.json(
                    {c.column: c.dropped_current for c in result.columns if c.dropped_current}
                ),
                "evidently_report": dg.MetadataValue.url(_as_url(report_path)),
                "mlflow_run": dg.MetadataValue.url(
                    model_registry.run_url(mlflow_run.experiment_id, mlflow_run.run_id)
                ),
                "evidently_sample": sampled,
                "model_version": dg.MetadataValue.url(model_registry.version_url(version)),
                "prometheus_metrics": exported,
                "dagster/row_count": len(table),
            },
        )
        yield dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            asset_key=DRIFT_REPORT,
            passed=share <= retraining_policy.drift_threshold,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"drift share {share:.3f} vs threshold {retraining_policy.drift_threshold}",
            metadata={"drift_share": share, "threshold": retraining_policy.drift_threshold},
        )

    @dg.asset(
        partitions_def=partitions_def,
        group_name="serving",
        dagster_type=pandera_dagster_type(BatchPredictions),
        ins={"features": dg.AssetIn(FEATURES)},
        retry_policy=MLFLOW_RETRY_POLICY,
        kinds={"sklearn", "mlflow", "pandas"},
        op_tags=k8s_op_tags("serving"),
    )
    def batch_predictions(
        context: dg.AssetExecutionContext,
        features: pd.DataFrame,
        model_registry: ModelRegistry,
        gates: ModelGates,
        metrics: PrometheusMetrics,
    ) -> dg.Output[pd.DataFrame]:
        """Every application of the day scored by the current champion, with the version that scored it."""
        champion, model = _champion_or_fail(model_registry.load_champion)
        probability = default_probability(model, features)
        declined = probability >= gates.decision_threshold
        predictions = pd.DataFrame(
            {
                LOAN_APPLICATIONS.id_column: features[LOAN_APPLICATIONS.id_column].to_numpy(),
                LOAN_APPLICATIONS.event_time_column: features[
                    LOAN_APPLICATIONS.event_time_column
                ].to_numpy(),
                "default_probability": probability,
                "decision": pd.Series(declined).map({True: "decline", False: "approve"}).to_numpy(),
                "model_version": str(champion.version),
            }
        )
        mean_probability = float(probability.mean()) if len(probability) else float("nan")
        decline_rate = float(declined.mean()) if len(declined) else float("nan")
        exported = metrics.export(
            "batch_predictions",
            prediction_metrics(
                context.partition_key,
                str(champion.version),
                len(predictions),
                mean_probability,
                decline_rate,
            ),
            context.log,
        )
        return dg.Output(
            predictions,
            metadata={
                "model_version": str(champion.version),
                "dagster/row_count": len(predictions),
                "mean_default_probability": mean_probability,
                "decline_rate": decline_rate,
                "decision_threshold": gates.decision_threshold,
                "prometheus_metrics": exported,
            },
        )

    @dg.asset(
        partitions_def=partitions_def,
        group_name="serving",
        dagster_type=pandera_dagster_type(ModelPerformance),
        ins={"batch_predictions": dg.AssetIn(BATCH_PREDICTIONS), "features": dg.AssetIn(FEATURES)},
        kinds={"pandas"},
        op_tags=k8s_op_tags("serving"),
    )
    def model_performance(
        context: dg.AssetExecutionContext,
        batch_predictions: pd.DataFrame,
        features: pd.DataFrame,
        metrics: PrometheusMetrics,
    ) -> dg.Output[pd.DataFrame]:
        """How well what was served did, once labels exist; re-materialize when late labels arrive."""
        label = LOAN_APPLICATIONS.label_column
        joined = batch_predictions.merge(
            features[[LOAN_APPLICATIONS.id_column, label]],
            on=LOAN_APPLICATIONS.id_column,
            how="left",
        )
        labelled = joined[joined[label].notna()]
        versions = ", ".join(sorted(batch_predictions["model_version"].unique())) or "none"
        scores = (
            classification_metrics(
                labelled[label].astype(int).to_numpy(), labelled["default_probability"].to_numpy()
            )
            if len(labelled)
            else dict.fromkeys(
                ("roc_auc", "pr_auc", "brier", "log_loss", "positive_rate"), float("nan")
            )
        )
        row = {
            "model_version": versions,
            "scored_rows": len(joined),
            "labelled_rows": len(labelled),
            "roc_auc": scores["roc_auc"],
            "pr_auc": scores["pr_auc"],
            "brier": scores["brier"],
            "log_loss": scores["log_loss"],
            "default_rate": scores["positive_rate"],
        }
        status = (
            "labels available"
            if len(labelled)
            else "labels not yet available: re-materialize later"
        )
        exported = metrics.export(
            "model_performance",
            performance_metrics(versions, len(labelled), row["roc_auc"]),
            context.log,
        )
        return dg.Output(
            pd.DataFrame([row]),
            metadata={
                "status": status,
                "prometheus_metrics": exported,
                "model_version": versions,
                "labelled_rows": len(labelled),
                **{
                    name: dg.MetadataValue.float(float(row[name]))
                    for name in ("roc_auc", "pr_auc", "brier")
                },
            },
        )

    return [drift_report, batch_predictions, model_performance]


def _reference_profile(
    model_registry: ModelRegistry, champion: Any, reference: pd.DataFrame
) -> ReferenceProfile:
    """The champion's reference summarised once per model version (sorted columns, counts), cached."""
    from upath import UPath

    cached = Path(model_registry.cache_dir) / "references" / f"{champion.run_id}.profile.pickle"
    if cached.exists():
        with cached.open("rb") as file:
            return pickle.load(file)  # written below by this platform, never user input
    profile = ReferenceProfile.of(reference)
    write_atomically(UPath(cached), pickle.dumps(profile))
    return profile


def _champion_or_fail(lookup: Callable[[], Any]) -> Any:
    """Run a champion lookup; no champion yet is a clear, non-retried failure of the step."""
    try:
        return lookup()
    except RegistryError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error


def _save_evidently_html(
    reference: pd.DataFrame, current: pd.DataFrame, max_rows: int, url: str
) -> tuple[str, str]:
    from upath import UPath

    from mlops_assets.monitoring.evidently_report import bounded_sample, run_evidently

    reference_sample, current_sample = (
        bounded_sample(reference, max_rows),
        bounded_sample(current, max_rows),
    )
    sampled = (
        f"report on {len(reference_sample)} of {len(reference)} reference and {len(current_sample)} of "
        f"{len(current)} current rows"
        if len(reference_sample) < len(reference) or len(current_sample) < len(current)
        else "report on all rows"
    )
    snapshot = run_evidently(reference_sample, current_sample)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "report.html"
        snapshot.save_html(str(local))
        write_atomically(UPath(url), local.read_bytes())
    return url, sampled


def _log_to_mlflow(
    tracking: Any, context: dg.AssetExecutionContext, result: DriftResult, version: str, report: str
) -> Any:
    """One MLflow run per drift report: the share, per-column scores and the HTML artifact."""
    run = tracking.active_run().info
    try:
        tracking.set_tags(
            {
                "mlflow.runName": f"drift_report {context.partition_key}",
                "dagster/run_id": context.run.run_id,
                "dagster/asset": DRIFT_REPORT.to_user_string(),
                "dagster/partition": context.partition_key,
                "reference_version": version,
            }
        )
        tracking.log_metrics(
            {
                "drift_share": result.share,
                **{f"drift_score_{c.column}": c.score for c in result.columns},
            }
        )
        if Path(report).exists():
            tracking.log_artifact(report, artifact_path="drift_report")
    except BaseException:
        tracking.end_run(status="FAILED")
        raise
    tracking.end_run()
    return run


def _as_url(location: str) -> str:
    """A report location as a link: `file://` for a local path, an object-store URL as it is."""
    return location if "://" in location else Path(location).resolve().as_uri()


def _column_table(result: DriftResult) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "column": c.column,
                    "test": c.test,
                    "score": round(c.score, 6),
                    "threshold": c.threshold,
                    "drifted": c.drifted,
                    "current_rows": c.current_rows,
                }
            )
            for c in result.columns
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("column", "string"),
                dg.TableColumn("test", "string"),
                dg.TableColumn("score", "float"),
                dg.TableColumn("threshold", "float"),
                dg.TableColumn("drifted", "bool"),
                dg.TableColumn("current_rows", "int"),
            ]
        ),
    )


def _top_drifted(result: DriftResult) -> str:
    drifted = [c for c in result.columns if c.drifted]
    if not drifted:
        return f"No drifted columns ({len(result.columns)} tested)."
    drifted.sort(key=lambda c: -c.score if c.test in ("wasserstein", "jensenshannon") else c.score)
    rows = [f"| {c.column} | {c.test} | {c.score:.4f} | {c.threshold} |" for c in drifted[:5]]
    return "\n".join(
        [
            f"**{len(drifted)} of {len(result.columns)} columns drifted**",
            "",
            "| column | test | score | threshold |",
            "|---|---|---|---|",
            *rows,
        ]
    )
