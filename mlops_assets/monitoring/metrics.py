"""Prometheus metrics of the lifecycle, exported with `prometheus_client` by the assets that know them.

Pushed to a Pushgateway when PROMETHEUS_PUSHGATEWAY_URL is set, otherwise written in the text
exposition format to `<MLOPS_METRICS_DIR>/<group>.prom` (the folder node_exporter's textfile
collector reads). Each asset owns one group and replaces it whole on every export, so a metric
always holds the latest value. The names here are the ones `alerting.py` writes rules against.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from mlops_assets.monitoring.drift import DriftResult
    from mlops_assets.tasks import Metric as TaskMetric

DRIFT_SHARE = "mlops_drift_share"
DRIFT_THRESHOLD = "mlops_drift_threshold"
DRIFTED_COLUMNS = "mlops_drift_drifted_columns"
DRIFT_COLUMN_SCORE = "mlops_drift_column_score"
DRIFT_COLUMN_DRIFTED = "mlops_drift_column_drifted"
DRIFT_PARTITION = "mlops_drift_report_partition_timestamp_seconds"
DRIFT_EXPORTED = "mlops_drift_report_timestamp_seconds"
DRIFT_PERSISTS = "mlops_drift_persists_after_retraining"
CHAMPION_VERSION = "mlops_champion_version"
CHAMPION_MOVED = "mlops_champion_moved_timestamp_seconds"
REGISTERED_VERSION = "mlops_model_registered_version"
REGISTERED_VALIDATION = "mlops_model_registered_validation_"  # + the task's gate metric
REGISTERED_PROMOTED = "mlops_model_registered_promoted"
PREDICTIONS = "mlops_batch_predictions_rows"
PREDICTION_MEAN = "mlops_batch_predictions_mean_score"
POSITIVE_RATE = "mlops_batch_predictions_positive_rate"
PREDICTION_PARTITION = "mlops_batch_predictions_partition_timestamp_seconds"
SERVED = "mlops_model_"  # + the task's gate metric (`served_metric`)
LABELLED_ROWS = "mlops_model_labelled_rows"


@dataclass(frozen=True)
class Metric:
    """One gauge sample; every metric also carries `model` (the registered model name)."""

    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


class PrometheusMetrics(dg.ConfigurableResource):
    """Where lifecycle metrics go: a Pushgateway, or text files (PROMETHEUS_PUSHGATEWAY_URL, MLOPS_METRICS_DIR)."""

    pushgateway_url: str | None = Field(
        default=None, description="Push here (job `mlops_assets`) instead of writing files"
    )
    textfile_dir: str = Field(description="Folder of `<group>.prom` files when not pushing")
    job: str = Field(default="mlops_assets", description="Pushgateway job label")

    def export(
        self, model: str, group: str, metrics: Iterable[Metric], log: dg.DagsterLogManager
    ) -> str:
        """Replace `model`'s `group` of metrics; a failed push is logged, never fails the step.

        Returns where the metrics went (or why they did not), for the asset's metadata.
        """
        from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

        registry = CollectorRegistry()
        gauges: dict[str, Gauge] = {}
        for metric in metrics:
            labels = {"model": model, **metric.labels}
            if metric.name not in gauges:
                gauges[metric.name] = Gauge(
                    metric.name, metric.help, sorted(labels), registry=registry
                )
            gauges[metric.name].labels(**labels).set(metric.value)
        if self.pushgateway_url:
            grouping = {"model": model, "group": group}
            try:
                push_to_gateway(
                    self.pushgateway_url,
                    job=self.job,
                    grouping_key=grouping,
                    registry=registry,
                    timeout=10,
                )
            except OSError as error:
                log.warning(
                    f"Prometheus metrics of {group} not pushed to {self.pushgateway_url}: {error}"
                )
                return f"push to {self.pushgateway_url} failed: {error}"
            return f"pushed to {self.pushgateway_url} (job={self.job}, group={group})"
        path = Path(self.textfile_dir) / f"{model}.{group}.prom"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)  # writes a temporary file, then renames it
        return str(path)


def partition_timestamp(partition_key: str) -> float:
    """A daily partition key as the Unix time of its start (UTC), so dashboards can show the day."""
    return datetime.fromisoformat(partition_key).replace(tzinfo=UTC).timestamp()


def drift_metrics(
    partition_key: str, result: DriftResult, threshold: float, persists: bool = False
) -> list[Metric]:
    """A drift report: share, threshold, each column's test, score and verdict, and whether the
    drift persists against a champion trained only on data since an earlier drift."""
    return [
        Metric(
            DRIFT_PERSISTS,
            "1 if the data still drifts against a champion trained only on data since a drift",
            float(persists),
        ),
        Metric(
            DRIFT_SHARE, "Share of feature columns drifted in the latest drift report", result.share
        ),
        Metric(DRIFT_THRESHOLD, "Drift share above which retraining is due", threshold),
        Metric(
            DRIFTED_COLUMNS,
            "Drifted columns in the latest drift report",
            len(result.drifted_columns),
        ),
        *(
            Metric(
                DRIFT_COLUMN_SCORE,
                "Per-column drift score (distance, or p-value for ks/chisquare/z)",
                c.score,
                {"column": c.column, "test": c.test},
            )
            for c in result.columns
        ),
        *(
            Metric(
                DRIFT_COLUMN_DRIFTED,
                "1 if the column drifted",
                float(c.drifted),
                {"column": c.column},
            )
            for c in result.columns
        ),
        Metric(
            DRIFT_PARTITION,
            "Day (partition start) of the latest drift report",
            partition_timestamp(partition_key),
        ),
        Metric(DRIFT_EXPORTED, "When the latest drift report was exported", time.time()),
    ]


def champion_metrics(version: str) -> list[Metric]:
    return [
        Metric(CHAMPION_VERSION, "Registry version the champion alias points at", float(version)),
        Metric(CHAMPION_MOVED, "When the champion alias was last set or confirmed", time.time()),
    ]


def registration_metrics(
    version: str, metric: TaskMetric, value: float, promoted: bool
) -> list[Metric]:
    """The latest registered version, its validation value of the task's gate `metric`
    (`mlops_model_registered_validation_roc_auc`, `..._rmse`), and whether it is champion."""
    return [
        Metric(REGISTERED_VERSION, "Latest registered model version", float(version)),
        Metric(
            f"{REGISTERED_VALIDATION}{metric.name}",
            f"Validation {metric.title} of the latest registered version",
            value,
        ),
        Metric(
            REGISTERED_PROMOTED,
            "1 if the latest registered version is champion",
            float(promoted),
        ),
    ]


def prediction_metrics(
    partition_key: str, model_version: str, rows: int, mean_score: float, positive_rate: float
) -> list[Metric]:
    labels = {"model_version": model_version}
    return [
        Metric(PREDICTIONS, "Rows scored in the latest batch", rows, labels),
        Metric(
            PREDICTION_MEAN,
            "Mean score (P(positive class)) of the latest batch",
            mean_score,
            labels,
        ),
        Metric(
            POSITIVE_RATE,
            "Share of the latest batch decided positive (score >= decision threshold)",
            positive_rate,
            labels,
        ),
        Metric(
            PREDICTION_PARTITION,
            "Day (partition start) of the latest batch",
            partition_timestamp(partition_key),
            labels,
        ),
    ]


def served_metric(metric: TaskMetric, shadow: bool = False) -> str:
    """The Prometheus name of the served model's (or its shadow's) gate metric:
    `mlops_model_roc_auc`, `mlops_model_shadow_rmse`."""
    return f"{SERVED}{'shadow_' if shadow else ''}{metric.name}"


def served_validation_metric(metric: TaskMetric) -> str:
    """The Prometheus name of the served model's own validation value of the gate metric, with
    the same labels as `served_metric`: `mlops_model_validation_rmse`."""
    return f"{SERVED}validation_{metric.name}"


def performance_metrics(
    model_version: str,
    labelled_rows: int,
    metric: TaskMetric,
    value: float,
    shadow_version: str | None = None,
    shadow_value: float = float("nan"),
    validation_value: float = float("nan"),
) -> list[Metric]:
    """Served-model quality on the task's gate `metric`, only once labels exist (no sample
    rather than a NaN), beside the served model's own `validation_value` of it (what an alert
    compares an error metric with); the previous champion's on the same rows while it scores
    in shadow."""
    labels = {"model_version": model_version}
    metrics = [
        Metric(
            LABELLED_ROWS,
            f"Labelled rows behind the served model's {metric.title}",
            labelled_rows,
            labels,
        )
    ]
    if labelled_rows and not math.isnan(value):
        metrics.append(
            Metric(
                served_metric(metric),
                f"{metric.title} of the served model on labelled rows",
                value,
                labels,
            )
        )
        if not math.isnan(validation_value):
            metrics.append(
                Metric(
                    served_validation_metric(metric),
                    f"Validation {metric.title} of the served model (its registration)",
                    validation_value,
                    labels,
                )
            )
    if shadow_version and not math.isnan(shadow_value):
        metrics.append(
            Metric(
                served_metric(metric, shadow=True),
                f"{metric.title} of the previous champion, scoring in shadow, on the same rows",
                shadow_value,
                {**labels, "shadow_version": shadow_version},
            )
        )
    return metrics
