"""A contract's `training_set` and `trained_model` (one MLflow run), with the gates as blocking checks.

Both are partitioned by day: partition D is the model "as of D", trained on the labelled rows of the
window of daily feature partitions that ends on D.
"""

import importlib.metadata
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mlops_assets.contracts import ContractError, DataContract
from mlops_assets.contracts.frames import BOOL, FLOAT, INT, TEXT, ColumnSpec, FrameSpec, Table
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.failpoints import failpoint
from mlops_assets.keys import (
    FEATURES,
    MLFLOW_RETRY_POLICY,
    TRAINED_MODEL,
    TRAINING_SET,
    UNUSABLE_TRAINING_SET,
    lifecycle_pool,
    retry_only_transient,
)
from mlops_assets.registry.mlflow import (
    MODEL_DIGEST_TAG,
    REFERENCE_ARTIFACT,
    SKOPS_TRUSTED_TYPES,
    MlflowRegistry,
    dagster_run_ended,
    model_digest,
)
from mlops_assets.tasks import Task
from mlops_assets.training.gates import GATE_NAMES, GateResult, evaluate_gates
from mlops_assets.training.model import (
    SPLIT,
    TRAIN,
    VALIDATION,
    build_pipeline,
    features_and_label,
    predict,
    split_by_time,
)

# What a logged model needs to load and predict, pinned to the versions that trained it. Named
# rather than inferred: MLflow's inference imports the model in a subprocess (13 s a training run)
# and lists whatever the training process had imported (it listed pytest and rich).
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def model_requirements(contract: DataContract) -> list[str]:
    """The pip requirements logged with a model: `MODEL_PACKAGES`, and the distributions of the
    contract's `model.trusted_types` (a team's estimator's, e.g. lightgbm), at installed versions."""
    names = list(MODEL_PACKAGES)
    # packages_distributions() reads every installed distribution's metadata: only when needed
    installed = importlib.metadata.packages_distributions() if contract.trusted_types else {}
    for type_name in contract.trusted_types:
        names += [d for d in installed.get(type_name.split(".")[0], ()) if d not in names]
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def _require_trusted(pipeline: Any, contract: DataContract) -> None:
    """Fail before anything is logged when the fitted model holds a type skops would not load."""
    import skops.io

    held = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    untrusted = sorted(set(held) - {*SKOPS_TRUSTED_TYPES, *contract.trusted_types})
    if untrusted:
        raise ContractError(
            f"{contract.where()}: model.trusted_types: the trained {contract.spec.model.estimator} "
            f"holds types skops loads only when trusted: {untrusted}; list them there if you "
            "trust their packages"
        )


class TrainingSetConfig(dg.Config):
    since: str | None = Field(
        default=None,
        description="Only rows on or after this date (drift-triggered retraining starts at the drift)",
    )


def trained_model_card(task: Task) -> FrameSpec:
    """One row describing a trained model (its validation metrics those of the task); the model
    itself lives in MLflow (`model_uri`)."""
    return FrameSpec(
        f"{task.name.capitalize()}TrainedModelCard",  # one Dagster type per task
        (
            ColumnSpec("model_uri", TEXT, "MLflow URI of the logged model"),
            ColumnSpec("model_id", TEXT, "MLflow LoggedModel id"),
            ColumnSpec("model_sha256", TEXT, "Digest of the model's files: loading checks it"),
            ColumnSpec("run_id", TEXT, "MLflow run that trained it"),
            ColumnSpec("experiment_id", TEXT),
            ColumnSpec("as_of", TEXT, "Partition: the last day of the training window"),
            ColumnSpec("window_start", TEXT, "First day with training rows"),
            ColumnSpec("train_rows", INT, ge=1),
            ColumnSpec("validation_rows", INT, ge=1),
            *(
                ColumnSpec(name, FLOAT, f"Validation {name}", nullable=nullable, ge=ge, le=le)
                for name, (ge, le, nullable) in task.card_metrics.items()
            ),
            ColumnSpec(
                "baseline",
                TEXT,
                "The constant prediction of the training labels, the floor's reference, as JSON "
                "(their mean; their class shares, for multiclass)",
            ),
            ColumnSpec("reference_uri", TEXT, "Training features drift detection compares against"),
            ColumnSpec("gates_passed", BOOL),
        ),
        "One row describing a trained model; the model itself lives in MLflow (`model_uri`).",
    )


_GATE_DESCRIPTIONS = {
    "quality_floor": "The task's validation quality metric at least the contract's floor",
    "challenger_not_worse_than_champion": "Not worse than the current champion on the same recent labelled rows",
    "bias_gap_within_limit": "Gap in the bias metric between groups of the bias column within the limit",
}


def build_training_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    training = contract.spec.training
    window_days = training.window_days
    trained_key = contract.key(TRAINED_MODEL)

    @dg.asset(
        key=contract.key(TRAINING_SET),
        partitions_def=partitions_def,
        dagster_type=contract.dagster_types["training"],
        ins={
            "features": dg.AssetIn(
                contract.key(FEATURES),
                partition_mapping=_window_mapping(window_days),
                metadata={"allow_missing_partitions": True},
            )
        },
        metadata={
            "dagster/column_schema": contract.column_schema("training"),
            "window_days": window_days,
        },
        kinds={"pandas", "parquet"},
        code_version=contract.version,
        op_tags=k8s_op_tags("training"),
        pool=lifecycle_pool(contract.name),
        description="Labelled feature rows of the window ending on the partition, split by time.",
    )
    def training_set(
        context: dg.AssetExecutionContext, config: TrainingSetConfig, features: Any
    ) -> dg.Output[Table]:
        import pandas as pd

        failpoint("training_set")
        frames = _frames_by_day(features, context)
        if not frames:
            raise dg.Failure(
                f"No {contract.key(FEATURES).to_user_string()} partitions exist in the "
                f"{window_days}-day window ending {context.partition_key}"
            )
        combined, redelivered = _latest_delivery_wins(frames, contract)
        if redelivered:
            context.log.warning(
                f"{sum(redelivered.values())} {contract.id_column} value(s) delivered again on a "
                f"later day; the latest delivery of each is kept: {redelivered}"
            )
        if config.since:
            combined = combined[combined[contract.event_time_column] >= pd.Timestamp(config.since)]
        labelled = split_by_time(combined, training.validation_fraction, contract)
        counts = labelled[SPLIT].value_counts()
        problem = _training_set_problem(contract, labelled)
        if problem:
            raise dg.Failure(
                f"Training set for {context.partition_key} is unusable: {problem}",
                metadata={
                    "labelled_rows": len(labelled),
                    "days_loaded": len(frames),
                    UNUSABLE_TRAINING_SET: problem,
                },
                allow_retries=False,
            )
        label = contract.label_column
        return dg.Output(
            labelled.assign(**{label: labelled[label].astype(contract.label.dtype)}),
            metadata={
                **_training_set_metadata(contract, labelled, counts, frames, combined, config),
                "redelivered_ids": sum(redelivered.values()),
                "redelivered_ids_by_first_day": dg.MetadataValue.json(redelivered),
            },
        )

    @dg.asset(
        key=trained_key,
        partitions_def=partitions_def,
        dagster_type=trained_model_card(contract.task).dagster_type(),
        ins={"training_set": dg.AssetIn(contract.key(TRAINING_SET))},
        retry_policy=MLFLOW_RETRY_POLICY,
        check_specs=[
            dg.AssetCheckSpec(
                name, asset=trained_key, blocking=True, description=_GATE_DESCRIPTIONS[name]
            )
            for name in GATE_NAMES
        ],
        kinds={"sklearn", "mlflow"},
        code_version=contract.version,
        op_tags=k8s_op_tags("training"),
        pool=lifecycle_pool(contract.name),
        description=f"A {contract.spec.model.estimator} pipeline trained on the training set, "
        "logged to MLflow with its signature and the reference data drift reports compare against.",
    )
    def trained_model(
        context: dg.AssetExecutionContext, training_set: Table, mlflow: MlflowRegistry
    ):
        import pandas as pd

        with retry_only_transient():
            card, gate_results, metrics = _train_and_log(context, contract, training_set, mlflow)
        yield dg.Output(
            pd.DataFrame([card]),
            metadata={
                "mlflow_run": dg.MetadataValue.url(
                    mlflow.run_url(card["experiment_id"], card["run_id"])
                ),
                "model_uri": card["model_uri"],
                "reference_uri": card["reference_uri"],
                **{f"validation/{name}": value for name, value in metrics.items()},
                "gates_passed": card["gates_passed"],
            },
        )
        for result in gate_results:
            yield dg.AssetCheckResult(
                check_name=result.name,
                asset_key=trained_key,
                passed=result.passed,
                description=result.summary,
                metadata={"summary": result.summary, **_metadata_numbers(result)},
            )

    return [training_set, trained_model]


def _window_mapping(window_days: int) -> dg.TimeWindowPartitionMapping:
    """The `window_days` daily partitions ending on the downstream partition (fewer near the start)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-(window_days - 1),
            end_offset=0,
            allow_nonexistent_upstream_partitions=True,
        )


def _frames_by_day(features: Any, context: dg.AssetExecutionContext) -> dict[str, Table]:
    import pandas as pd

    if isinstance(features, pd.DataFrame):  # a one-day window comes back unwrapped
        return {context.partition_key: features}
    return {day: frame for day, frame in sorted((features or {}).items()) if frame is not None}


def _latest_delivery_wins(
    frames: dict[str, Table], contract: DataContract
) -> tuple[Table, dict[str, int]]:
    """The window's rows with each id once, from the latest day that delivered it.

    Ids are unique within a day (ingestion quarantines repeats), but a source may deliver a record
    again on a later day, to correct it or to add its label: the later delivery replaces the
    earlier one. Returns the rows and, per day that lost rows this way, how many.
    """
    import pandas as pd

    days = list(frames)
    combined = pd.concat(
        [frame.assign(_day=day) for day, frame in frames.items()], ignore_index=True
    )
    superseded = combined.duplicated(contract.id_column, keep="last")
    lost = combined.loc[superseded, "_day"].value_counts()
    redelivered = {day: int(lost[day]) for day in days if day in lost.index}
    kept = combined.loc[~superseded].drop(columns="_day").reset_index(drop=True)
    return kept, redelivered


def _training_set_problem(contract: DataContract, labelled: Table) -> str | None:
    """Why the labelled rows cannot train and validate a model, in the data's terms; None if they can."""
    min_rows = contract.spec.training.min_labelled_rows
    if len(labelled) < min_rows:
        return f"{len(labelled)} labelled rows, fewer than training.min_labelled_rows={min_rows}"
    return contract.task.problem(
        contract.task.labels(labelled, contract.label_column),
        labelled[SPLIT].to_numpy(),
        contract.spec.training.validation_fraction,
    )


def _training_set_metadata(
    contract: DataContract,
    labelled: Table,
    counts: Any,
    frames: dict[str, Table],
    combined: Table,
    config: TrainingSetConfig,
) -> dict[str, Any]:
    validation_times = labelled.loc[labelled[SPLIT] == VALIDATION, contract.event_time_column]
    return {
        "dagster/row_count": len(labelled),
        "window": f"{min(frames)} .. {max(frames)}",
        "window_days_requested": contract.spec.training.window_days,
        "days_loaded": len(frames),
        "since": config.since or "window start",
        "unlabelled_rows_dropped": len(combined) - len(labelled),
        "train_rows": int(counts.get(TRAIN, 0)),
        "validation_rows": int(counts.get(VALIDATION, 0)),
        "positive_rate": float(labelled[contract.label_column].astype(float).mean()),
        "validation_starts_at": str(validation_times.min()),
    }


def _signature(features: Table, probability: Any) -> Any:
    """The model signature, with integer columns declared as doubles.

    An integer column has no missing values in training, but a served request may omit one: as
    `long` MLflow would warn on every log and reject such a request; as `double` it accepts both.
    """
    from mlflow.models import infer_signature

    integers = features.select_dtypes("integer").columns
    return infer_signature(features.astype(dict.fromkeys(integers, "float64")), probability)


def _train_and_log(
    context: dg.AssetExecutionContext,
    contract: DataContract,
    training_set: Table,
    registry: MlflowRegistry,
) -> tuple[dict[str, Any], list[GateResult], dict[str, float]]:
    import mlflow
    import mlflow.artifacts
    import mlflow.sklearn

    model = contract.spec.model
    train = training_set[training_set[SPLIT] == TRAIN]
    validation = training_set[training_set[SPLIT] == VALIDATION]
    window_start = training_set[contract.event_time_column].min().date().isoformat()
    tags = {
        "dagster/run_id": context.run.run_id,
        "dagster/job": context.job_name,
        "dagster/asset": context.asset_key.to_user_string(),
        "dagster/partition": context.partition_key,
        "mlops/contract": contract.name,
        "mlops/contract_version": contract.version,
        "training_window": f"{window_start} .. {context.partition_key}",
    }
    with registry.tracked_run(
        model.experiment_name,
        f"trained_model {context.partition_key}",
        tags,
        dagster_run_ended(context.instance),
    ) as run:
        pipeline = build_pipeline(contract)
        features, labels = features_and_label(train, contract)
        pipeline.fit(features, labels)
        _require_trusted(pipeline, contract)
        _, validation_labels = features_and_label(validation, contract)
        task = contract.task
        baseline = task.baseline(labels)
        metrics = task.metrics(validation_labels, predict(pipeline, validation, contract), baseline)
        train_metrics = task.metrics(labels, predict(pipeline, train, contract), baseline)
        mlflow.log_params(
            {
                "estimator": model.estimator,
                **model.typed_params,
                "train_rows": len(train),
                "validation_rows": len(validation),
            }
        )
        mlflow.log_metrics(
            {
                **{f"validation_{k}": v for k, v in metrics.items()},
                **{f"train_{k}": v for k, v in train_metrics.items()},
            }
        )
        model_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=_signature(features.head(200), predict(pipeline, train.head(200), contract)),
            input_example=features.head(5),
            pyfunc_predict_fn=task.predict_method,
            pip_requirements=model_requirements(contract),
            skops_trusted_types=[*SKOPS_TRUSTED_TYPES, *contract.trusted_types],
        )
        with tempfile.TemporaryDirectory() as folder:
            digest = model_digest(
                Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=model_info.model_uri, dst_path=folder
                    )
                )
            )
        mlflow.set_tag(MODEL_DIGEST_TAG, digest)
        with tempfile.TemporaryDirectory() as folder:
            reference = Path(folder) / Path(REFERENCE_ARTIFACT).name
            # the features and the labels: what drift reports compare the days against
            train[
                [contract.event_time_column, *contract.feature_columns, contract.label_column]
            ].to_parquet(reference)
            mlflow.log_artifact(str(reference), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
        champion, champion_model = registry.model_of(contract).champion_and_model()
        gate_results = evaluate_gates(
            contract,
            pipeline,
            validation,
            champion_model,
            str(champion.version) if champion else None,
            baseline,
        )
        mlflow.log_metrics({f"gate_{result.name}": float(result.passed) for result in gate_results})
        mlflow.set_tags({f"gate/{result.name}": result.summary[:4_000] for result in gate_results})
    card = {
        "model_uri": model_info.model_uri,
        "model_id": model_info.model_id or "",
        "model_sha256": digest,
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "as_of": context.partition_key,
        "window_start": window_start,
        "train_rows": len(train),
        "validation_rows": len(validation),
        **{name: metrics[name] for name in contract.task.card_metrics},
        "baseline": json.dumps(baseline),
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
