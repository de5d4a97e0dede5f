"""`training_set` and `trained_model` (one MLflow run each), with the promotion gates as blocking checks.

Both are partitioned by day: partition D is the model "as of D", trained on the labelled rows of the
window of daily feature partitions that ends on D.
"""

import tempfile
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from pydantic import Field

from mlops_assets.contract import LOAN_APPLICATIONS, pandera_dagster_type
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.mlflow_resources import REFERENCE_ARTIFACT, ModelRegistry
from mlops_assets.training.gates import GATE_NAMES, GateResult, ModelGates
from mlops_assets.training.model import (
    SPLIT,
    TRAIN,
    VALIDATION,
    build_pipeline,
    classification_metrics,
    default_probability,
    features_and_label,
    split_by_time,
)

FEATURES = dg.AssetKey("loan_features")
TRAINING_SET = dg.AssetKey("training_set")
TRAINED_MODEL = dg.AssetKey("trained_model")
# MLflow stores scikit-learn models with skops, which loads only types it is told to trust; these
# are the ones our pipeline adds to skops' defaults (both written by this code, never user input).
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]
# Steps that talk to MLflow retry: a tracking server restarting must not fail the run.
MLFLOW_RETRY_POLICY = dg.RetryPolicy(
    max_retries=4, delay=2, backoff=dg.Backoff.EXPONENTIAL
)  # ~30 s in all


class TrainingSetConfig(dg.Config):
    validation_fraction: float = Field(
        default=0.2, description="Latest share of labelled rows held out"
    )
    min_labelled_rows: int = Field(
        default=500, description="Fewer labelled rows in the window fail the run"
    )
    since: str | None = Field(
        default=None,
        description="Only rows on or after this date (drift-triggered retraining starts at the drift)",
    )


class TrainingConfig(dg.Config):
    """Hyperparameters of the HistGradientBoostingClassifier (fixed seed: same data, same model)."""

    learning_rate: float = Field(default=0.03, description="Shrinkage per boosting iteration")
    max_iter: int = Field(default=300, description="Boosting iterations")
    max_depth: int | None = Field(default=3, description="Depth of each tree")
    min_samples_leaf: int = Field(default=80, description="Minimum rows per leaf")
    l2_regularization: float = Field(default=1.0, description="L2 penalty on leaf values")
    random_state: int = Field(default=7, description="Seed")


class TrainedModelCard(pa.DataFrameModel):
    """One row describing a trained model; the model itself lives in MLflow (`model_uri`)."""

    model_uri: Series[str] = pa.Field(description="MLflow URI of the logged model")
    model_id: Series[str] = pa.Field(description="MLflow LoggedModel id")
    run_id: Series[str] = pa.Field(description="MLflow run that trained it")
    experiment_id: Series[str]
    as_of: Series[str] = pa.Field(description="Partition: the last day of the training window")
    window_start: Series[str] = pa.Field(description="First day with training rows")
    train_rows: Series[int] = pa.Field(ge=1)
    validation_rows: Series[int] = pa.Field(ge=1)
    roc_auc: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    pr_auc: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    brier: Series[float] = pa.Field(ge=0, le=1)
    log_loss: Series[float] = pa.Field(ge=0)
    reference_uri: Series[str] = pa.Field(
        description="Training features drift detection compares against"
    )
    gates_passed: Series[bool]

    class Config:
        title = "TrainedModelCard"
        strict = True
        coerce = True


def build_training_assets(partitions_def: dg.PartitionsDefinition, window_days: int) -> list[Any]:
    @dg.asset(
        partitions_def=partitions_def,
        group_name="training",
        dagster_type=LOAN_APPLICATIONS.training_dagster_type,
        ins={
            "features": dg.AssetIn(
                FEATURES,
                partition_mapping=_window_mapping(window_days),
                metadata={"allow_missing_partitions": True},
            )
        },
        metadata={
            "dagster/column_schema": LOAN_APPLICATIONS.column_schema("training"),
            "window_days": window_days,
        },
        kinds={"pandas", "parquet"},
        code_version=LOAN_APPLICATIONS.version,
        op_tags=k8s_op_tags("training"),
    )
    def training_set(
        context: dg.AssetExecutionContext, config: TrainingSetConfig, features: Any
    ) -> dg.Output[pd.DataFrame]:
        """Labelled feature rows of the window ending on the partition, split by time."""
        frames = _frames_by_day(features, context)
        if not frames:
            raise dg.Failure(
                f"No loan_features partitions exist in the {window_days}-day window ending {context.partition_key}"
            )
        combined = pd.concat(frames.values(), ignore_index=True)
        if config.since:
            combined = combined[
                combined[LOAN_APPLICATIONS.event_time_column] >= pd.Timestamp(config.since)
            ]
        labelled = split_by_time(combined, config.validation_fraction)
        counts = labelled[SPLIT].value_counts()
        problem = _training_set_problem(labelled, counts, config.min_labelled_rows)
        if problem:
            raise dg.Failure(
                f"Training set for {context.partition_key} is unusable: {problem}",
                metadata={"labelled_rows": len(labelled), "days_loaded": len(frames)},
            )
        label = labelled[LOAN_APPLICATIONS.label_column].astype(float)
        return dg.Output(
            labelled.assign(
                **{
                    LOAN_APPLICATIONS.label_column: labelled[LOAN_APPLICATIONS.label_column].astype(
                        "Int8"
                    )
                }
            ),
            metadata={
                "dagster/row_count": len(labelled),
                "window": f"{min(frames)} .. {max(frames)}",
                "window_days_requested": window_days,
                "days_loaded": len(frames),
                "since": config.since or "window start",
                "unlabelled_rows_dropped": len(combined) - len(labelled),
                "train_rows": int(counts.get(TRAIN, 0)),
                "validation_rows": int(counts.get(VALIDATION, 0)),
                "label_rate": float(label.mean()),
                "validation_starts_at": str(
                    labelled.loc[
                        labelled[SPLIT] == VALIDATION, LOAN_APPLICATIONS.event_time_column
                    ].min()
                ),
            },
        )

    @dg.asset(
        partitions_def=partitions_def,
        group_name="training",
        dagster_type=pandera_dagster_type(TrainedModelCard),
        retry_policy=MLFLOW_RETRY_POLICY,
        check_specs=[
            dg.AssetCheckSpec(
                name, asset=TRAINED_MODEL, blocking=True, description=_GATE_DESCRIPTIONS[name]
            )
            for name in GATE_NAMES
        ],
        kinds={"sklearn", "mlflow"},
        op_tags=k8s_op_tags("training"),
    )
    def trained_model(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        training_set: pd.DataFrame,
        model_registry: ModelRegistry,
        gates: ModelGates,
        mlflow: dg.ResourceParam[Any],
    ):
        """A scikit-learn pipeline trained on the training set and logged to MLflow with its reference data."""
        tracking = mlflow
        try:
            card, gate_results, metrics = _train_and_log(
                context, tracking, config, training_set, model_registry, gates
            )
        except BaseException:
            tracking.end_run(status="FAILED")
            raise
        tracking.end_run()
        run_url = model_registry.run_url(card["experiment_id"], card["run_id"])
        yield dg.Output(
            pd.DataFrame([card]),
            metadata={
                "mlflow_run": dg.MetadataValue.url(run_url),
                "model_uri": card["model_uri"],
                "reference_uri": card["reference_uri"],
                **{f"validation/{name}": value for name, value in metrics.items()},
                "gates_passed": card["gates_passed"],
            },
        )
        for result in gate_results:
            yield dg.AssetCheckResult(
                check_name=result.name,
                asset_key=TRAINED_MODEL,
                passed=result.passed,
                description=result.summary,
                metadata={"summary": result.summary, **_metadata_numbers(result)},
            )

    return [training_set, trained_model]


_GATE_DESCRIPTIONS = {
    "quality_floor": "Validation ROC AUC at least the configured floor",
    "challenger_not_worse_than_champion": "Not worse than the current champion on the same recent labelled rows",
    "bias_gap_within_limit": "Gap in the bias metric between groups of the bias column within the limit",
}


def _window_mapping(window_days: int) -> dg.TimeWindowPartitionMapping:
    """The `window_days` daily partitions ending on the downstream partition (fewer near the start)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-(window_days - 1),
            end_offset=0,
            allow_nonexistent_upstream_partitions=True,
        )


def _frames_by_day(features: Any, context: dg.AssetExecutionContext) -> dict[str, pd.DataFrame]:
    if isinstance(features, pd.DataFrame):  # a one-day window comes back unwrapped
        return {context.partition_key: features}
    return {day: frame for day, frame in sorted((features or {}).items()) if frame is not None}


def _training_set_problem(labelled: pd.DataFrame, counts: pd.Series, min_rows: int) -> str | None:
    if len(labelled) < min_rows:
        return f"{len(labelled)} labelled rows, fewer than min_labelled_rows={min_rows}"
    for split in (TRAIN, VALIDATION):
        labels = labelled.loc[labelled[SPLIT] == split, LOAN_APPLICATIONS.label_column]
        if counts.get(split, 0) == 0 or labels.nunique() < 2:
            return f"the {split} split needs rows of both classes"
    return None


def _train_and_log(
    context: dg.AssetExecutionContext,
    tracking: Any,
    config: TrainingConfig,
    training_set: pd.DataFrame,
    model_registry: ModelRegistry,
    gates: ModelGates,
) -> tuple[dict[str, Any], list[GateResult], dict[str, float]]:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    run = tracking.active_run()  # starts the MLflow run first: an unreachable server fails fast
    train = training_set[training_set[SPLIT] == TRAIN]
    validation = training_set[training_set[SPLIT] == VALIDATION]
    params = config.model_dump()
    pipeline = build_pipeline(params)
    features, labels = features_and_label(train)
    pipeline.fit(features, labels)
    _, validation_labels = features_and_label(validation)
    metrics = classification_metrics(validation_labels, default_probability(pipeline, validation))
    train_metrics = classification_metrics(labels, default_probability(pipeline, train))

    event_time = training_set[LOAN_APPLICATIONS.event_time_column]
    window_start = event_time.min().date().isoformat()
    tracking.set_tags(
        {
            "mlflow.runName": f"trained_model {context.partition_key}",
            "dagster/run_id": context.run.run_id,
            "dagster/job": context.job_name,
            "dagster/asset": TRAINED_MODEL.to_user_string(),
            "dagster/partition": context.partition_key,
            "training_window": f"{window_start} .. {context.partition_key}",
        }
    )
    tracking.log_params({**params, "train_rows": len(train), "validation_rows": len(validation)})
    tracking.log_metrics(
        {
            **{f"validation_{k}": v for k, v in metrics.items()},
            **{f"train_{k}": v for k, v in train_metrics.items()},
        }
    )
    model_info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(
            features.head(200), default_probability(pipeline, train.head(200))
        ),
        input_example=features.head(5),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / Path(REFERENCE_ARTIFACT).name
        train[[LOAN_APPLICATIONS.event_time_column, *LOAN_APPLICATIONS.feature_columns]].to_parquet(
            reference
        )
        tracking.log_artifact(str(reference), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))

    champion, champion_model = model_registry.champion_and_model()
    gate_results = gates.evaluate(
        pipeline, validation, champion_model, str(champion.version) if champion else None
    )
    tracking.log_metrics({f"gate_{result.name}": float(result.passed) for result in gate_results})
    tracking.set_tags({f"gate/{result.name}": result.summary[:4_000] for result in gate_results})
    card = {
        "model_uri": model_info.model_uri,
        "model_id": model_info.model_id or "",
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "as_of": context.partition_key,
        "window_start": window_start,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "roc_auc": metrics["roc_auc"],
        "pr_auc": metrics["pr_auc"],
        "brier": metrics["brier"],
        "log_loss": metrics["log_loss"],
        "reference_uri": f"{run.info.artifact_uri.rstrip('/')}/{REFERENCE_ARTIFACT}",
        "gates_passed": all(result.passed for result in gate_results),
    }
    return card, gate_results, metrics


def _metadata_numbers(result: GateResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, value in result.numbers.items():
        if isinstance(value, dict):
            metadata[key] = dg.MetadataValue.json(value)
        elif value is not None:
            metadata[key] = value
    return metadata
