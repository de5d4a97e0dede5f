"""Names shared across stages: asset stages, jobs and sensors per contract, and retry policies.

A contract's assets live under its own key prefix (`loan_default/features`); its jobs and sensor
carry its name (`loan_default_daily_lifecycle`), so several contracts share one code location.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

# Asset stages: the last part of each asset key.
RAW = "raw"
REJECTED = "rejected"
FEATURES = "features"
TRAINING_SET = "training_set"
TRAINED_MODEL = "trained_model"
REGISTERED_MODEL_VERSION = "registered_model_version"
DRIFT_REPORT = "drift_report"
BATCH_PREDICTIONS = "batch_predictions"
MODEL_PERFORMANCE = "model_performance"
STAGES = {
    RAW: "ingestion",
    REJECTED: "ingestion",
    FEATURES: "features",
    TRAINING_SET: "training",
    TRAINED_MODEL: "training",
    REGISTERED_MODEL_VERSION: "registry",
    DRIFT_REPORT: "monitoring",
    BATCH_PREDICTIONS: "serving",
    MODEL_PERFORMANCE: "serving",
}

# Run tags the retraining sensor sets and the registry reads.
TRIGGER_TAG = "mlops/trigger"
CONTRACT_TAG = "mlops/contract"
# The first day of the data a drift-triggered retraining learns from (run and version tag).
TRAINING_SINCE_TAG = "mlops/training_since"
# The champion a sensor-launched retraining was measured against (drift reference, or served).
REFERENCE_VERSION_TAG = "mlops/reference_version"
# A sensor's new request for a retraining that failed on infrastructure: which run it repeats,
# and the how-many-th attempt at the same request it is (the first carries no tag).
RETRY_OF_TAG = "mlops/retry_of"
ATTEMPT_TAG = "mlops/attempt"


def op_name(key: dg.AssetKey) -> str:
    """The op (step) behind a single asset: its key joined by `__` (run config is keyed by it)."""
    return "__".join(key.path)


def ingestion_job(contract: str) -> str:
    return f"{contract}_ingest"


def daily_job(contract: str) -> str:
    return f"{contract}_daily_lifecycle"


def training_job(contract: str) -> str:
    return f"{contract}_train_and_register"


def rollback_job(contract: str) -> str:
    return f"{contract}_rollback_champion"


def rollback_op(contract: str) -> str:
    """The rollback job's one op (its run config is keyed by it)."""
    return f"{contract}__move_champion_back"


def rollback_sensor(contract: str) -> str:
    return f"{contract}_rollback_sensor"


def lifecycle_pool(contract: str) -> str:
    """The concurrency pool of every step of a contract's lifecycle: with `dagster.yaml`'s pool
    limit of 1 at run granularity, one run of a model's lifecycle (ingestion to registry) at a
    time, so two runs never interleave their writes of a partition or the registry."""
    return f"{contract}_lifecycle"


def late_labels_sensor(contract: str) -> str:
    return f"{contract}_late_labels_sensor"


def performance_sensor(contract: str) -> str:
    return f"{contract}_performance_retraining_sensor"


def retraining_sensor(contract: str) -> str:
    return f"{contract}_drift_retraining_sensor"


# Steps that talk to MLflow retry what can heal (a tracking server restarting): ~30 s in all.
# Everything else fails at once through `retry_only_transient`.
# Metadata key of a training_set failure caused by the data's shape (too few rows, one class):
# such a retraining settles nothing, so drift automation may try again once more data arrived.
UNUSABLE_TRAINING_SET = "unusable_training_set"
MLFLOW_RETRY_POLICY = dg.RetryPolicy(max_retries=4, delay=2, backoff=dg.Backoff.EXPONENTIAL)


# What a database says while it is locked, restarting or out of reach (SQLite, psycopg2,
# dagster-postgres once its own connection retries are spent): all heal by waiting.
_DATABASE_GONE = (
    "locked",
    "shutting down",
    "starting up",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "could not connect",
    "too many retries for db connection",
)


_TRANSIENT_NAMES = (
    "MlflowUnavailableError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "TimeoutError",
    "ReadTimeout",
    "ConnectTimeout",
    "MaxRetryError",
)


def _transient_by_name(name: str, message: str) -> bool:
    """Whether an error of class `name` saying `message` can heal by waiting: a connection that
    failed, or a database locked, restarting or out of reach."""
    if name in _TRANSIENT_NAMES:
        return True  # also requests / urllib3 errors, without importing them
    if name in ("OperationalError", "DagsterPostgresException"):
        return any(sign in message.lower() for sign in _DATABASE_GONE)
    # MLflow wraps connection failures of its HTTP client
    return name == "MlflowException" and (
        "TEMPORARILY_UNAVAILABLE" in message
        or ("API request to" in message and "failed with exception" in message)
    )


def is_transient(error: BaseException) -> bool:
    """Whether retrying can help: the tracking server unreachable, a 5xx, a database locked or
    restarting."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    name = type(error).__name__
    if name == "RestException":  # the tracking server answered: only a 5xx can heal
        return error.get_http_status_code() >= 500  # type: ignore[attr-defined]
    if name == "MlflowException" and getattr(error, "error_code", "") == "TEMPORARILY_UNAVAILABLE":
        return True
    return _transient_by_name(name, str(error))


def failed_on_infrastructure(error: SerializableErrorInfo | None) -> bool:
    """Whether a step's recorded error, or one it was raised from, can heal by waiting. Dagster
    records an error of its own (an event it could not write to a database that went away) as it
    is, a step's error after its retries as the cause of the step's."""
    while error is not None:
        if _transient_by_name(error.cls_name or "", error.message):
            return True
        error = error.cause or error.context
    return False


@contextmanager
def retry_only_transient() -> Iterator[None]:
    """Let the step's retry policy see only errors that can heal; fail the rest at once."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as error:
        if is_transient(error):
            raise
        raise dg.Failure(
            description=f"{type(error).__name__}: {error}", allow_retries=False
        ) from error
