"""Platform settings: the one place that reads the environment, when the Definitions are built.

Every variable has a default for the embedded laptop setup; a bad value fails the code location
load with a message naming the variable. `docs/configuration.md` lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mlops_assets.sources.synthetic import DriftScenario

SOURCES = ("synthetic", "files")
DEPLOYMENTS = ("local", "k8s")


class SettingsError(ValueError):
    """An environment variable has a value the platform cannot use."""


@dataclass(frozen=True)
class PlatformSettings:
    deployment: str
    home: Path
    storage_url: str
    partitions_start: str
    source: str
    source_url: str | None
    source_format: str
    seed: int
    rows_per_day: int
    drift_scenario: str
    drift_start: str | None
    invalid_row_share: float
    label_delay_days: int
    as_of: str | None
    mlflow_tracking_uri: str
    mlflow_artifact_root: str | None
    mlflow_experiment: str
    mlflow_ui_url: str
    model_name: str
    training_window_days: int
    gate_overrides: dict[str, float | str]
    reports_url: str
    drift_threshold: float
    retrain_consecutive: int
    retrain_cooldown_hours: float
    sensor_interval_seconds: int
    retraining_sensor_running: bool
    pushgateway_url: str | None
    metrics_dir: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PlatformSettings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MLOPS_HOME", ".mlops_home")).expanduser().resolve()
        deployment = _choice(env, "MLOPS_DEPLOYMENT", "local", DEPLOYMENTS)
        storage_url = env.get("MLOPS_STORAGE_URL", str(home / "assets"))
        settings = cls(
            deployment=deployment,
            home=home,
            storage_url=storage_url,
            partitions_start=_date(env, "MLOPS_PARTITIONS_START", "2026-01-01"),
            source=_choice(env, "MLOPS_SOURCE", "synthetic", SOURCES),
            source_url=env.get("MLOPS_SOURCE_URL"),
            source_format=_choice(env, "MLOPS_SOURCE_FORMAT", "parquet", ("parquet", "csv")),
            seed=_number(env, "MLOPS_SYNTHETIC_SEED", "7", int),
            rows_per_day=_number(env, "MLOPS_SYNTHETIC_ROWS_PER_DAY", "2000", int),
            drift_scenario=_choice(
                env, "MLOPS_DRIFT_SCENARIO", "none", tuple(member.value for member in DriftScenario)
            ),
            drift_start=_date(env, "MLOPS_DRIFT_START", None),
            invalid_row_share=_number(env, "MLOPS_SYNTHETIC_INVALID_ROW_SHARE", "0", float),
            label_delay_days=_number(env, "MLOPS_LABEL_DELAY_DAYS", "0", int),
            as_of=_date(env, "MLOPS_AS_OF", None),
            mlflow_tracking_uri=env.get(
                "MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
            ),
            # Only a local store needs to be told where artifacts go; a tracking server decides itself.
            mlflow_artifact_root=env.get("MLOPS_MLFLOW_ARTIFACT_ROOT")
            or (None if "MLFLOW_TRACKING_URI" in env else (home / "mlflow" / "artifacts").as_uri()),
            mlflow_experiment=env.get("MLOPS_MLFLOW_EXPERIMENT", "loan-default"),
            mlflow_ui_url=env.get("MLOPS_MLFLOW_UI_URL", "")
            or _default_ui_url(env.get("MLFLOW_TRACKING_URI")),
            model_name=env.get("MLOPS_MODEL_NAME", "loan-default-classifier"),
            training_window_days=_number(env, "MLOPS_TRAINING_WINDOW_DAYS", "30", int),
            gate_overrides=_gate_overrides(env),
            reports_url=env.get(
                "MLOPS_REPORTS_URL",
                # On Kubernetes a pod's disk goes with the pod: reports live next to the assets.
                f"{storage_url.rstrip('/')}/reports"
                if deployment == "k8s"
                else str(home / "reports"),
            ),
            drift_threshold=_number(env, "MLOPS_DRIFT_THRESHOLD", "0.2", float),
            retrain_consecutive=_number(env, "MLOPS_RETRAIN_CONSECUTIVE", "1", int),
            retrain_cooldown_hours=_number(env, "MLOPS_RETRAIN_COOLDOWN_HOURS", "0", float),
            sensor_interval_seconds=_number(env, "MLOPS_SENSOR_INTERVAL_SECONDS", "30", int),
            retraining_sensor_running=_choice(
                env, "MLOPS_RETRAINING_SENSOR", "stopped", ("running", "stopped")
            )
            == "running",
            pushgateway_url=env.get("PROMETHEUS_PUSHGATEWAY_URL") or None,
            metrics_dir=env.get("MLOPS_METRICS_DIR", str(home / "metrics")),
        )
        if deployment == "k8s":
            _check_k8s(env)
        if settings.source == "files" and not settings.source_url:
            raise SettingsError(
                "MLOPS_SOURCE=files needs MLOPS_SOURCE_URL (a folder or fsspec URL)"
            )
        if not 0 < settings.drift_threshold < 1:
            raise SettingsError(
                "MLOPS_DRIFT_THRESHOLD must be between 0 and 1 (a share of columns)"
            )
        if settings.retrain_consecutive < 1:
            raise SettingsError("MLOPS_RETRAIN_CONSECUTIVE must be at least 1")
        if settings.training_window_days < 1:
            raise SettingsError("MLOPS_TRAINING_WINDOW_DAYS must be at least 1")
        if settings.drift_scenario != "none" and not settings.drift_start:
            raise SettingsError(
                f"MLOPS_DRIFT_SCENARIO={settings.drift_scenario} needs MLOPS_DRIFT_START (YYYY-MM-DD)"
            )
        return settings


def _check_k8s(env: Mapping[str, str]) -> None:
    """The Kubernetes profile: every step runs in its own pod, so nothing may live on pod disks."""
    storage = env.get("MLOPS_STORAGE_URL", "")
    if "://" not in storage or storage.startswith("file://"):
        raise SettingsError(
            "MLOPS_DEPLOYMENT=k8s needs MLOPS_STORAGE_URL on an object store shared by all step "
            f"pods (for example s3://mlops/assets); got {storage or 'nothing'!r}"
        )
    tracking = env.get("MLFLOW_TRACKING_URI", "")
    if not tracking.startswith(("http://", "https://")):
        raise SettingsError(
            "MLOPS_DEPLOYMENT=k8s needs MLFLOW_TRACKING_URI pointing at an MLflow tracking server "
            f"(http://...); got {tracking or 'nothing'!r}"
        )


# MLOPS_GATE_<FIELD> overrides a field of `ModelGates`; unset ones keep the documented default.
_GATE_VARIABLES = {
    "MLOPS_GATE_MIN_ROC_AUC": ("min_roc_auc", float),
    "MLOPS_GATE_MIN_ABSOLUTE_CHANGE": ("min_absolute_change", float),
    "MLOPS_GATE_MIN_RELATIVE_CHANGE": ("min_relative_change", float),
    "MLOPS_GATE_BIAS_COLUMN": ("bias_column", str),
    "MLOPS_GATE_BIAS_METRIC": ("bias_metric", str),
    "MLOPS_GATE_MAX_BIAS_GAP": ("max_bias_gap", float),
    "MLOPS_GATE_DECISION_THRESHOLD": ("decision_threshold", float),
}


def _gate_overrides(env: Mapping[str, str]) -> dict[str, float | str]:
    overrides: dict[str, float | str] = {}
    for variable, (field, kind) in _GATE_VARIABLES.items():
        if variable in env:
            overrides[field] = (
                _number(env, variable, env[variable], kind) if kind is float else env[variable]
            )
    return overrides


def _default_ui_url(tracking_uri: str | None) -> str:
    """A tracking server serves its own UI; a local store is browsed with `mlflow ui` on port 5000."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return "http://127.0.0.1:5000"


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, default)
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
    return value


def _date(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(name, default)
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def _number(env: Mapping[str, str], name: str, default: str, kind: type[int] | type[float]):
    value = env.get(name, default)
    try:
        return kind(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a valid {kind.__name__}") from None
