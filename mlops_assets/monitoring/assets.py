"""A contract's `drift_report`: the day's features against the champion's training data, daily."""

import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.frames import BOOL, FLOAT, INT, TEXT, ColumnSpec, FrameSpec, Table
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.io_manager import write_atomically
from mlops_assets.keys import (
    DRIFT_REPORT,
    FEATURES,
    MLFLOW_RETRY_POLICY,
    REGISTERED_MODEL_VERSION,
    TRAINING_SINCE_TAG,
    TRIGGER_TAG,
    lifecycle_pool,
    retry_only_transient,
)
from mlops_assets.monitoring.metrics import PrometheusMetrics, drift_metrics
from mlops_assets.monitoring.policy import ESCALATION, RetrainingPolicy
from mlops_assets.registry.mlflow import MlflowRegistry, RegistryError, dagster_run_ended

if TYPE_CHECKING:
    from mlops_assets.monitoring.drift import ColumnDrift, DriftResult, ReferenceProfile

DRIFT_CHECK = "drift_share_within_threshold"
ESCALATION_CHECK = "retraining_removed_drift"


DRIFT_COLUMNS = FrameSpec(
    "DriftColumns",
    (
        ColumnSpec("column", TEXT),
        ColumnSpec("kind", TEXT, isin=("numeric", "categorical")),
        ColumnSpec("test", TEXT, "wasserstein, jensenshannon, ks, chisquare, z or all_missing"),
        ColumnSpec("score", FLOAT, "Distance, or p-value for ks/chisquare/z"),
        ColumnSpec("threshold", FLOAT),
        ColumnSpec("drifted", BOOL, "The verdict drift automation uses"),
        ColumnSpec("reference_rows", INT, ge=0),
        ColumnSpec("current_rows", INT, ge=0),
        ColumnSpec("dropped_reference", INT, "Missing or infinite values dropped", ge=0),
        ColumnSpec("dropped_current", INT, ge=0),
        ColumnSpec("evidently_drifted", BOOL, "Evidently's verdict (fixed threshold alone)"),
        ColumnSpec(
            "noise_floor",
            FLOAT,
            "Score sampling alone reaches at this size (empty: not needed)",
            nullable=True,
        ),
        ColumnSpec(
            "reference_version", TEXT, "Champion model version whose training data is the reference"
        ),
        ColumnSpec(
            "role",
            TEXT,
            "feature (counted in the drift share), prediction or label (their own verdict)",
            isin=("feature", "prediction", "label"),
        ),
    ),
    "One row per drift column: the test Evidently would pick, its score and verdict; then the "
    "champion's predictions and the delivered labels against its training rows'.",
)

# Label drift is tested once the day holds at least this many labels (they arrive late).
MIN_LABELS_FOR_DRIFT = 30


class DriftReportConfig(dg.Config):
    max_report_rows: int = Field(
        default=20_000,
        description="Rows per side in the Evidently HTML report (a uniform sample above this); "
        "the drift scores always use every row",
    )
    html_report: bool = Field(
        default=True,
        description="Write the Evidently HTML report; false skips it (the scores, verdicts and "
        "metadata are the same), e.g. for a backfill of many days",
    )


def build_drift_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition, reports_url: str
) -> dg.AssetsDefinition:
    key = contract.key(DRIFT_REPORT)
    policy = RetrainingPolicy.of(contract)

    @dg.asset(
        key=key,
        partitions_def=partitions_def,
        dagster_type=DRIFT_COLUMNS.dagster_type(),
        ins={"features": dg.AssetIn(contract.key(FEATURES))},
        deps=[champion_dependency(contract)],
        retry_policy=MLFLOW_RETRY_POLICY,
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=key,
                description=f"Drifted-column share at most {policy.drift_threshold} (warning)",
            ),
            dg.AssetCheckSpec(
                ESCALATION_CHECK,
                asset=key,
                description="Fails (warning) when the data still drifts against a champion "
                "trained only on data since a drift: retraining again would not help",
            ),
        ],
        kinds={"evidently", "pandas", "mlflow"},
        code_version=contract.version,
        op_tags=k8s_op_tags("monitoring"),
        pool=lifecycle_pool(contract.name),
        description="The day's features against the champion's training data: Evidently's "
        "default tests per column, the drifted share, and the Evidently HTML report.",
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        config: DriftReportConfig,
        features: Table,
        mlflow: MlflowRegistry,
        metrics: PrometheusMetrics,
    ):
        from mlops_assets.monitoring.drift import DriftResult, dataset_drift

        registered = mlflow.model_of(contract)
        champion = champion_or_fail(registered.require_champion)
        version = str(champion.version)
        with retry_only_transient():
            reference = mlflow.load_reference(champion.run_id)
            profile = _reference_profile(contract, mlflow, champion, reference, context.log)
            noise = _noise_floors(contract, mlflow, champion, profile)
            known = len(noise.floors)
            result = dataset_drift(profile, features, contract, noise)
            if len(noise.floors) > known:  # a new size or column was simulated
                _save_noise_floors(contract, mlflow, champion, noise)
            model = registered.load_version(champion)
            result = DriftResult(
                result.columns + _outcome_drift(contract, model, reference, features)
            )
            report_path, sampled = (
                _save_evidently_html(
                    contract,
                    reference,
                    features,
                    config.max_report_rows,
                    f"{reports_url}/{contract.name}/drift_report/{context.partition_key}.html",
                )
                if config.html_report
                else (None, "no HTML report (html_report: false)")
            )
            mlflow_run = _log_to_mlflow(contract, mlflow, context, result, version, report_path)
        table = result.to_frame().assign(reference_version=version)
        share = result.share
        trained_since = champion.tags.get(TRAINING_SINCE_TAG, "")
        post_drift = champion.tags.get(TRIGGER_TAG) == "drift" and bool(trained_since)
        persists = post_drift and share > policy.drift_threshold
        exported = metrics.export(
            contract.model_name,
            "drift_report",
            drift_metrics(context.partition_key, result, policy.drift_threshold, persists),
            context.log,
        )

        yield dg.Output(
            table,
            metadata={
                "drift_share": dg.MetadataValue.float(share),
                "drifted_columns": len(result.drifted_columns),
                "threshold": policy.drift_threshold,
                "verdicts": contract.spec.drift.verdicts,
                "evidently_drift_share": result.evidently_share,
                "held_back_as_noise": dg.MetadataValue.md(_held_back(result)),
                "reference_version": version,
                "reference_trained_since": trained_since or "window start",
                "persists_after_retraining": persists,
                "reference_run_id": champion.run_id,
                "reference_rows": len(reference),
                "current_rows": len(features),
                "columns": _column_table(result),
                "top_drifted": dg.MetadataValue.md(_top_drifted(result)),
                "dropped_missing_or_infinite": dg.MetadataValue.json(
                    {c.column: c.dropped_current for c in result.columns if c.dropped_current}
                ),
                **(
                    {"evidently_report": dg.MetadataValue.url(_as_url(report_path))}
                    if report_path
                    else {}
                ),
                "mlflow_run": dg.MetadataValue.url(
                    mlflow.run_url(mlflow_run.experiment_id, mlflow_run.run_id)
                ),
                "evidently_sample": sampled,
                **_outcome_metadata(result),
                "model_version": dg.MetadataValue.url(registered.version_url(version)),
                "prometheus_metrics": exported,
                "dagster/row_count": len(table),
            },
        )
        yield dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            asset_key=key,
            passed=share <= policy.drift_threshold,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"drift share {share:.3f} vs threshold {policy.drift_threshold}",
            metadata={"drift_share": share, "threshold": policy.drift_threshold},
        )
        yield dg.AssetCheckResult(
            check_name=ESCALATION_CHECK,
            asset_key=key,
            passed=not persists,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"{ESCALATION}: drift share {share:.3f} > {policy.drift_threshold} against "
                f"champion v{version}, trained only on data since {trained_since}"
                if persists
                else "no drift persisting after a drift-triggered retraining"
            ),
            metadata={"drift_share": share, "reference_trained_since": trained_since or "none"},
        )
        if persists:
            context.log.warning(
                f"{contract.name}: {ESCALATION} (v{version} was trained on data since "
                f"{trained_since}; drift share {share:.3f}); the sensor will not retrain on it"
            )

    return drift_report


def _outcome_drift(
    contract: DataContract, model: Any, reference: Table, features: Table
) -> list["ColumnDrift"]:
    """The champion's predictions on the day against its predictions on its training rows, and
    the day's labels (once `MIN_LABELS_FOR_DRIFT` have arrived) against the training labels
    (references stored before labels were kept in them have no label row)."""
    from mlops_assets.monitoring.drift import LABEL, PREDICTION, outcome_drift
    from mlops_assets.training.model import predict

    task, label = contract.task, contract.label_column
    current, numeric = task.drift_prediction(predict(model, features, contract))
    trained, _ = task.drift_prediction(predict(model, reference, contract))
    rows = [outcome_drift(PREDICTION, PREDICTION, trained, current, numeric)]
    if label in reference and features[label].notna().sum() >= MIN_LABELS_FOR_DRIFT:
        (current_labels, numeric), (trained_labels, _) = (
            task.drift_label(features[label]),
            task.drift_label(reference[label]),
        )
        rows.append(outcome_drift(label, LABEL, trained_labels, current_labels, numeric))
    return rows


def _outcome_metadata(result: "DriftResult") -> dict[str, Any]:
    """`prediction_drift` and `label_drift`: score, test and verdict (label: not yet, until
    enough labels arrived)."""
    from mlops_assets.monitoring.drift import LABEL, PREDICTION

    metadata: dict[str, Any] = {}
    for role in (PREDICTION, LABEL):
        row = result.outcome(role)
        metadata[f"{role}_drifted"] = row.drifted if row else None
        metadata[f"{role}_drift"] = (
            f"{row.test} {row.score:.4f} (threshold {row.threshold}): "
            f"{'drifted' if row.drifted else 'no drift'}"
            if row
            else f"not tested: fewer than {MIN_LABELS_FOR_DRIFT} labels delivered yet"
        )
    return metadata


def _noise_path(contract: DataContract, registry: MlflowRegistry, champion: Any) -> Path:
    return (
        Path(registry.cache_dir) / "references" / f"{champion.run_id}.{contract.version}.noise.json"
    )


def _noise_floors(
    contract: DataContract, registry: MlflowRegistry, champion: Any, profile: "ReferenceProfile"
):
    """The champion's noise floors computed so far (they depend only on its reference and size)."""
    import json

    from mlops_assets.monitoring.drift import NoiseFloors

    path = _noise_path(contract, registry, champion)
    try:
        floors = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:  # truncated or corrupted: computed again
        floors = {}
    return NoiseFloors.for_contract(profile, contract, floors)


def _save_noise_floors(
    contract: DataContract, registry: MlflowRegistry, champion: Any, noise: Any
) -> None:
    import json

    from upath import UPath

    write_atomically(
        UPath(_noise_path(contract, registry, champion)), json.dumps(noise.floors).encode()
    )


def _held_back(result: "DriftResult") -> str:
    held = result.held_back_columns
    if not held:
        return "None: every column Evidently calls drifted is beyond sampling noise."
    rows = [
        f"| {c.column} | {c.test} | {c.score:.4f} | {c.noise_floor:.4f} | {c.current_rows} |"
        for c in held
    ]
    return "\n".join(
        [
            f"**{len(held)} column(s) Evidently calls drifted are within sampling noise at this "
            "size, so they do not count** (the Evidently HTML report still shows them drifted):",
            "",
            "| column | test | score | noise floor | rows |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def champion_dependency(contract: DataContract) -> dg.AssetDep:
    """Assets that use "the champion" depend on the latest registration: in a run that also
    trains, they run after the registry step, and the UI shows where their model comes from."""
    return dg.AssetDep(
        contract.key(REGISTERED_MODEL_VERSION), partition_mapping=dg.LastPartitionMapping()
    )


def champion_or_fail(lookup: Callable[[], Any]) -> Any:
    """Run a champion lookup; no champion yet is a clear, non-retried failure of the step."""
    try:
        return lookup()
    except RegistryError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error


def _reference_profile(
    contract: DataContract, registry: MlflowRegistry, champion: Any, reference: Table, log: Any
) -> "ReferenceProfile":
    """The champion's reference summarised once per model version (sorted columns, counts), cached."""
    from upath import UPath

    from mlops_assets.monitoring.drift import ReferenceProfile

    cached = (
        Path(registry.cache_dir)
        / "references"
        / f"{champion.run_id}.{contract.version}.profile.pickle"
    )
    if cached.exists():
        try:
            with cached.open("rb") as file:
                return pickle.load(file)  # written below by this platform, never user input
        except Exception as error:  # truncated or corrupted: a cache is rebuilt, never trusted
            log.warning(f"Rebuilding the unreadable reference profile cache {cached}: {error!r}")
    profile = ReferenceProfile.of(reference, contract)
    write_atomically(UPath(cached), pickle.dumps(profile))
    return profile


def _save_evidently_html(
    contract: DataContract, reference: Table, current: Table, max_rows: int, url: str
) -> tuple[str | None, str]:
    """The HTML report at `url` and what it covers; None when no column can be reported."""
    from upath import UPath

    from mlops_assets.monitoring.drift import ALL_MISSING
    from mlops_assets.monitoring.evidently_report import (
        bounded_sample,
        columns_without_values,
        run_evidently,
    )

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
    empty = columns_without_values(reference_sample, current_sample, contract)
    if empty:
        sampled += (
            "; left out, no values in the "
            + ", ".join(f"{side} data: {name}" for name, side in empty.items())
            + f" (scored {ALL_MISSING}, drifted)"
        )
    snapshot = run_evidently(reference_sample, current_sample, contract)
    if snapshot is None:
        return None, f"no HTML report: no drift column holds values ({sampled})"
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "report.html"
        snapshot.save_html(str(local))
        write_atomically(UPath(url), local.read_bytes())
    return url, sampled


def _log_to_mlflow(
    contract: DataContract,
    registry: MlflowRegistry,
    context: dg.AssetExecutionContext,
    result: "DriftResult",
    version: str,
    report: str | None,
) -> Any:
    """One MLflow run per drift report: the share, per-column scores and the HTML artifact."""
    import mlflow

    tags = {
        "dagster/run_id": context.run.run_id,
        "dagster/asset": context.asset_key.to_user_string(),
        "dagster/partition": context.partition_key,
        "mlops/contract": contract.name,
        "reference_version": version,
    }
    with registry.tracked_run(
        contract.spec.model.experiment_name,
        f"drift_report {context.partition_key}",
        tags,
        dagster_run_ended(context.instance),
    ) as run:
        mlflow.log_metrics(
            {
                "drift_share": result.share,
                **{f"drift_score_{c.column}": c.score for c in result.columns},
            }
        )
        if report and Path(report).exists():
            mlflow.log_artifact(report, artifact_path="drift_report")
    return run.info


def _as_url(location: str) -> str:
    """A report location as a link: `file://` for a local path, an object-store URL as it is."""
    return location if "://" in location else Path(location).resolve().as_uri()


def _column_table(result: "DriftResult") -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "column": c.column,
                    "test": c.test,
                    "score": round(c.score, 6),
                    "threshold": c.threshold,
                    "noise_floor": None if c.noise_floor is None else round(c.noise_floor, 6),
                    "evidently_drifted": c.evidently_drifted,
                    "drifted": c.drifted,
                    "current_rows": c.current_rows,
                    "role": c.role,
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
                dg.TableColumn("noise_floor", "float"),
                dg.TableColumn("evidently_drifted", "bool"),
                dg.TableColumn("drifted", "bool"),
                dg.TableColumn("current_rows", "int"),
                dg.TableColumn("role", "string"),
            ]
        ),
    )


def _top_drifted(result: "DriftResult") -> str:
    drifted = [c for c in result.features if c.drifted]
    if not drifted:
        return f"No drifted columns ({len(result.features)} tested)."
    drifted.sort(key=lambda c: -c.score if c.test in ("wasserstein", "jensenshannon") else c.score)
    rows = [f"| {c.column} | {c.test} | {c.score:.4f} | {c.threshold} |" for c in drifted[:5]]
    return "\n".join(
        [
            f"**{len(drifted)} of {len(result.features)} columns drifted**",
            "",
            "| column | test | score | threshold |",
            "|---|---|---|---|",
            *rows,
        ]
    )
