"""Platform settings: the one place that reads the environment, when the Definitions are built.

Deployment settings (storage, tracking URI, profile, where the contracts are) come only from here.
Per-model settings live in each contract file; a few variables override them for every contract,
and the synthetic loan source takes its knobs from MLOPS_SYNTHETIC_* (docs/configuration.md).
A bad value fails the code location load with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

DEPLOYMENTS = ("local", "k8s")
# How a run executes its steps locally: all in the run's process, or one process per step.
LOCAL_EXECUTORS = ("in_process", "multiprocess")


class SettingsError(ValueError):
    """An environment variable has a value the platform cannot use."""


# Variables that override a contract field in every loaded contract: variable -> (field, type).
CONTRACT_OVERRIDES: dict[str, tuple[str, type]] = {
    "MLOPS_DRIFT_THRESHOLD": ("drift.threshold", float),
    "MLOPS_RETRAIN_CONSECUTIVE": ("drift.consecutive", int),
    "MLOPS_RETRAIN_COOLDOWN_HOURS": ("drift.cooldown_hours", float),
    "MLOPS_RETRAIN_MIN_ROWS": ("drift.min_rows_since", int),
    "MLOPS_TRAINING_WINDOW_DAYS": ("training.window_days", int),
    "MLOPS_GATE_MIN_ROC_AUC": ("gates.min_roc_auc", float),
    "MLOPS_GATE_MIN_ABSOLUTE_CHANGE": ("gates.min_absolute_change", float),
    "MLOPS_GATE_MIN_RELATIVE_CHANGE": ("gates.min_relative_change", float),
    "MLOPS_GATE_MAX_BIAS_GAP": ("gates.bias.max_gap", float),
}
# Variables that set a field of every `python` source that has it (the synthetic loan source).
SOURCE_OVERRIDES: dict[str, tuple[str, type]] = {
    "MLOPS_SYNTHETIC_SEED": ("seed", int),
    "MLOPS_SYNTHETIC_ROWS_PER_DAY": ("rows_per_day", int),
    "MLOPS_SYNTHETIC_INVALID_ROW_SHARE": ("invalid_row_share", float),
    "MLOPS_DRIFT_SCENARIO": ("scenario", str),
    "MLOPS_DRIFT_START": ("scenario_start", date),
    "MLOPS_DRIFT_END": ("scenario_end", date),
    "MLOPS_DRIFT_EVERY": ("scenario_every", int),
    "MLOPS_LABEL_DELAY_DAYS": ("label_delay_days", int),
    "MLOPS_AS_OF": ("as_of", date),
}


@dataclass(frozen=True)
class PlatformSettings:
    deployment: str
    executor: str
    home: Path
    contracts_path: Path
    storage_url: str
    partitions_start: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str | None
    mlflow_ui_url: str
    reports_url: str
    sensor_interval_seconds: int
    retraining_sensor_running: bool
    performance_sensor_running: bool
    pushgateway_url: str | None
    metrics_dir: str
    contract_overrides: dict[str, tuple[Any, str]] = field(default_factory=dict)
    source_overrides: dict[str, Any] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PlatformSettings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("MLOPS_HOME", ".mlops_home")).expanduser().resolve()
        deployment = _choice(env, "MLOPS_DEPLOYMENT", "local", DEPLOYMENTS)
        storage_url = env.get("MLOPS_STORAGE_URL", str(home / "assets"))
        executor = (
            "k8s_job"
            if deployment == "k8s"
            else _choice(env, "MLOPS_EXECUTOR", "in_process", LOCAL_EXECUTORS)
        )
        _move_credentials_out_of_tracking_uri(env)
        if deployment == "k8s":
            _check_k8s(env)
        tracking_uri = env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        if "://" not in tracking_uri or not tracking_uri.startswith(
            ("http://", "https://", "sqlite:///", "postgresql", "mysql", "file://", "databricks")
        ):
            raise SettingsError(
                f"MLFLOW_TRACKING_URI={tracking_uri!r} is not a tracking URI "
                "(http(s)://host:port, sqlite:///path, postgresql://...)"
            )
        interval = _number(env, "MLOPS_SENSOR_INTERVAL_SECONDS", "30", int)
        automation = _choice(env, "MLOPS_RETRAINING_SENSOR", "stopped", ("running", "stopped"))
        if interval < 1:
            raise SettingsError("MLOPS_SENSOR_INTERVAL_SECONDS must be at least 1")
        from mlops_assets.examples import EXAMPLES_DIR

        return cls(
            deployment=deployment,
            executor=executor,
            home=home,
            contracts_path=Path(env.get("MLOPS_CONTRACTS") or EXAMPLES_DIR).expanduser().resolve(),
            storage_url=storage_url,
            partitions_start=_date(env, "MLOPS_PARTITIONS_START", "2026-01-01") or "2026-01-01",
            mlflow_tracking_uri=tracking_uri,
            # Only a local store needs to be told where artifacts go; a tracking server decides.
            mlflow_artifact_root=env.get("MLOPS_MLFLOW_ARTIFACT_ROOT")
            or (None if "MLFLOW_TRACKING_URI" in env else (home / "mlflow" / "artifacts").as_uri()),
            mlflow_ui_url=env.get("MLOPS_MLFLOW_UI_URL", "")
            or _default_ui_url(env.get("MLFLOW_TRACKING_URI")),
            reports_url=env.get(
                "MLOPS_REPORTS_URL",
                # On Kubernetes a pod's disk goes with the pod: reports live next to the assets.
                f"{storage_url.rstrip('/')}/reports"
                if deployment == "k8s"
                else str(home / "reports"),
            ),
            sensor_interval_seconds=interval,
            retraining_sensor_running=automation == "running",
            # Off on its own only when asked: it follows the other sensors by default.
            performance_sensor_running=_choice(
                env, "MLOPS_PERFORMANCE_SENSOR", automation, ("running", "stopped")
            )
            == "running",
            pushgateway_url=env.get("PROMETHEUS_PUSHGATEWAY_URL") or None,
            metrics_dir=env.get("MLOPS_METRICS_DIR", str(home / "metrics")),
            contract_overrides={
                dotted: (_number(env, variable, env[variable], kind), variable)
                for variable, (dotted, kind) in CONTRACT_OVERRIDES.items()
                if env.get(variable, "") != ""
            },
            source_overrides={
                name: (
                    _date(env, variable, None)
                    if kind is date
                    else env[variable]
                    if kind is str
                    else _number(env, variable, env[variable], kind)
                )
                for variable, (name, kind) in SOURCE_OVERRIDES.items()
                if env.get(variable, "") != ""
            },
            environ={**env, "MLOPS_HOME": str(home)},
        )

    def load_contracts(self) -> list[Any]:
        """The contracts of MLOPS_CONTRACTS, validated, with the environment's overrides applied."""
        from mlops_assets.contracts import load_contracts

        return load_contracts(self.contracts_path, self.environ, self.contract_overrides)


def _move_credentials_out_of_tracking_uri(env: dict[str, str]) -> None:
    """Take `user:password@` out of MLFLOW_TRACKING_URI and give it to MLflow the way it reads
    credentials, MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (unless those are set).

    The URI is shown on the Dagster UI's resource page, in logs and by `serving serve`; the two
    variables are shown nowhere. They are set in this process's environment, which every MLflow
    call here and every process started from here (the model server) reads.
    """
    from urllib.parse import urlsplit, urlunsplit

    uri = env.get("MLFLOW_TRACKING_URI", "")
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    env["MLFLOW_TRACKING_URI"] = urlunsplit(parts._replace(netloc=host))
    for name, value in (
        ("MLFLOW_TRACKING_USERNAME", unquote(username)),
        ("MLFLOW_TRACKING_PASSWORD", unquote(password)),
    ):
        if value and not env.get(name):
            env[name] = value
            os.environ[name] = value


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


def _number(env: Mapping[str, str], name: str, default: str, kind: type) -> Any:
    value = env.get(name, default)
    try:
        return kind(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a valid {kind.__name__}") from None
