"""Prometheus alert rules and a Grafana dashboard per model, generated from the loaded contracts.

The drift threshold and consecutive count come from the very `RetrainingPolicy` each contract's
retraining sensor uses, and the AUC floor from the contract's gates, so an alert and the
retraining it announces can never disagree; for an error metric (regression RMSE, multiclass log
loss) the served value is compared with the served model's own validation value, by the
contract's `performance.margin`. One rule group per model; one dashboard with a row of
panels per model. Run `python -m mlops_assets.monitoring.alerting --out deploy/monitoring`
(`make monitoring-files`) with the same environment as the code location.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.schema import PerformanceSettings
from mlops_assets.keys import performance_sensor, retraining_sensor
from mlops_assets.monitoring import metrics as m
from mlops_assets.monitoring.policy import ESCALATION, RetrainingPolicy
from mlops_assets.settings import PlatformSettings

RULES_FILE = "alert-rules.yml"
DASHBOARD_FILE = "grafana-dashboard.json"
# Drift reports are daily partitions: N consecutive drifted reports = drifted for N-1 more days.
PARTITION_HOURS = 24
STALE_AFTER_HOURS = 2 * PARTITION_HOURS


def consecutive_as_for(consecutive_partitions: int) -> str:
    """The sensor's consecutive count as a Prometheus `for:` over the latest-report gauge."""
    hours = (consecutive_partitions - 1) * PARTITION_HOURS
    return f"{hours}h" if hours else "0s"


def alert_rules(contracts: list[DataContract]) -> dict[str, Any]:
    """A Prometheus rule file (as a dict): one rule group per contract's model."""
    return {"groups": [_rule_group(contract) for contract in contracts]}


def _rule_group(contract: DataContract) -> dict[str, Any]:
    policy = RetrainingPolicy.of(contract)
    model = contract.model_name
    selector = f'{{model="{model}"}}'
    threshold = policy.drift_threshold
    consecutive = policy.consecutive_partitions
    return {
        "name": f"mlops_assets:{model}",
        "rules": [
            {
                "alert": "MlopsDriftAboveThreshold",
                "expr": f"{m.DRIFT_SHARE}{selector} > {threshold}",
                "for": consecutive_as_for(consecutive),
                "labels": {"severity": "warning", "model": model},
                "annotations": {
                    "summary": f"{model}: drift share {{{{ $value }}}} above {threshold}",
                    "description": (
                        f"The drifted-column share has been above {threshold} in "
                        f"{consecutive} consecutive daily drift report(s). "
                        f"{retraining_sensor(contract.name)} launches retraining "
                        "at this point "
                        "when it is running."
                    ),
                },
            },
            {
                "alert": "MlopsDriftPersistsAfterRetraining",
                "expr": f"{m.DRIFT_PERSISTS}{selector} > 0",
                "for": "0s",
                "labels": {"severity": "critical", "model": model},
                "annotations": {
                    "summary": f"{model}: {ESCALATION}",
                    "description": (
                        "The data still drifts against a champion trained only on data since "
                        "the drift, so another retraining would learn the same data again; "
                        f"{retraining_sensor(contract.name)} does not retrain on it. Check the "
                        "source (a broken feed, a unit change) before training on it."
                    ),
                },
            },
            *_floor_rules(contract, selector),
            {
                "alert": "MlopsNoChampion",
                "expr": f"absent({m.CHAMPION_VERSION}{selector})",
                "for": "1h",
                "labels": {"severity": "warning", "model": model},
                "annotations": {
                    "summary": f"{model}: no champion version exported",
                    "description": "No registration or rollback has reported a champion; "
                    "batch scoring and drift reports fail until one exists.",
                },
            },
            {
                "alert": "MlopsDriftReportStale",
                "expr": f"time() - {m.DRIFT_EXPORTED}{selector} > {STALE_AFTER_HOURS * 3600}",
                "for": "10m",
                "labels": {"severity": "warning", "model": model},
                "annotations": {
                    "summary": f"{model}: no drift report for {STALE_AFTER_HOURS}h",
                    "description": "The daily lifecycle job has not produced a drift "
                    "report; drift would go unnoticed.",
                },
            },
        ],
    }


def _floor_rules(contract: DataContract, selector: str) -> list[dict[str, Any]]:
    """The served model doing worse than it may: below the promotion floor where the floor is
    in the served metric's unit (binary ROC AUC); otherwise (an error: RMSE, log loss, whose
    floor is relative to a constant predictor) above its own validation value by more than
    `performance.margin` of it, the margin the performance sensor retrains beyond."""
    floor = contract.task.served_floor(contract.spec.gates)
    metric, model = contract.task.metric, contract.model_name
    if floor is None:
        if metric.higher_is_better:
            return []
        margin = (contract.spec.performance or PerformanceSettings()).margin
        served, validation = m.served_metric(metric), m.served_validation_metric(metric)
        return [
            {
                "alert": "MlopsServedErrorAboveValidation",
                "expr": f"{served}{selector} > on(model, model_version) "
                f"{1 + margin:g} * {validation}{selector}",
                "for": "0s",
                "labels": {"severity": "warning", "model": model},
                "annotations": {
                    "summary": f"{model} v{{{{ $labels.model_version }}}}: served {metric.title} "
                    f"{{{{ $value }}}} more than {margin:.0%} above its validation value",
                    "description": "Labels show the served model's error beyond the margin "
                    f"of `performance.margin`; {performance_sensor(contract.name)} retrains "
                    "once the gap also exceeds 3 standard errors over its labelled days.",
                },
            }
        ]
    return [
        {
            "alert": "MlopsServedModelAucBelowFloor",
            "expr": f"{m.served_metric(metric)}{selector} < {floor}",
            "for": "0s",
            "labels": {"severity": "critical", "model": model},
            "annotations": {
                "summary": f"{model} v{{{{ $labels.model_version }}}}: served {metric.title} "
                f"{{{{ $value }}}} below the promotion floor {floor}",
                "description": "Labels show the served model doing worse than any "
                f"challenger is allowed to; consider the {contract.name}_rollback_champion job.",
            },
        }
    ]


def grafana_dashboard(contracts: list[DataContract]) -> dict[str, Any]:
    """One Grafana dashboard: a row of panels per model, threshold lines from its contract."""
    panels: list[dict[str, Any]] = []
    for index, contract in enumerate(contracts):
        panels += _model_panels(contract, top=index * 23)
    return {
        "title": "mlops_assets: models",
        "uid": "mlops-assets-models",
        "tags": ["mlops_assets", "dagster", "mlflow"],
        "schemaVersion": 39,
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def _model_panels(contract: DataContract, top: int) -> list[dict[str, Any]]:
    policy = RetrainingPolicy.of(contract)
    metric, floor = contract.task.metric, contract.task.served_floor(contract.spec.gates)
    model = contract.model_name
    selector = f'{{model="{model}"}}'

    def panel(
        title: str,
        exprs: list[tuple[str, str]],
        position: tuple[int, int, int, int],
        kind: str = "timeseries",
        red_from: float | None = None,
        red_below: float | None = None,
        unit: str = "none",
    ) -> dict[str, Any]:
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        if red_from is not None:
            steps.append({"color": "red", "value": red_from})
        if red_below is not None:
            steps = [{"color": "red", "value": None}, {"color": "green", "value": red_below}]
        x, y, w, h = position
        y += top + 1
        return {
            "type": kind,
            "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [
                {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(exprs)
            ],
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "thresholds": {"mode": "absolute", "steps": steps},
                    "custom": {"thresholdsStyle": {"mode": "line"}} if kind == "timeseries" else {},
                },
                "overrides": [],
            },
        }

    return [
        {
            "type": "row",
            "title": model,
            "collapsed": False,
            "gridPos": {"x": 0, "y": top, "w": 24, "h": 1},
            "panels": [],
        },
        panel(
            f"Drift share (retrain above {policy.drift_threshold}, "
            f"{policy.consecutive_partitions} consecutive day(s))",
            [(f"{m.DRIFT_SHARE}{selector}", "drift share")],
            (0, 0, 12, 8),
            red_from=policy.drift_threshold,
            unit="percentunit",
        ),
        panel(
            "Per-column drift score",
            [(f"{m.DRIFT_COLUMN_SCORE}{selector}", "{{column}} ({{test}})")],
            (12, 0, 12, 8),
        ),
        panel(
            "Champion version",
            [(f"{m.CHAMPION_VERSION}{selector}", "champion")],
            (0, 8, 6, 6),
            kind="stat",
        ),
        panel(
            "Latest registered version (1 = became champion)",
            [
                (f"{m.REGISTERED_VERSION}{selector}", "version"),
                (f"{m.REGISTERED_PROMOTED}{selector}", "promoted"),
            ],
            (6, 8, 6, 6),
            kind="stat",
        ),
        panel(
            f"Served model {metric.title}" + (f" (floor {floor})" if floor is not None else ""),
            [
                (f"{m.served_metric(metric)}{selector}", "v{{model_version}}"),
                (
                    f"{m.served_validation_metric(metric)}{selector}",
                    "v{{model_version}} validation",
                ),
            ],
            (12, 8, 12, 6),
            red_below=floor,
        ),
        panel(
            "Rows scored per batch",
            [(f"{m.PREDICTIONS}{selector}", "v{{model_version}}")],
            (0, 14, 12, 8),
        ),
        panel(
            "Mean score and positive-decision rate",
            [
                (f"{m.PREDICTION_MEAN}{selector}", "mean score"),
                (f"{m.POSITIVE_RATE}{selector}", "positive rate"),
            ],
            (12, 14, 12, 8),
            unit="percentunit",
        ),
    ]


def write_monitoring_files(settings: PlatformSettings, folder: Path) -> list[Path]:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    rules, dashboard = folder / RULES_FILE, folder / DASHBOARD_FILE
    contracts = settings.load_contracts()
    header = (
        "# Generated by `python -m mlops_assets.monitoring.alerting` from the loaded contracts\n"
        "# (drift, gates) and their overrides (MLOPS_DRIFT_THRESHOLD, ...): do not edit.\n"
    )
    rules.write_text(header + yaml.safe_dump(alert_rules(contracts), sort_keys=False, width=100))
    dashboard.write_text(json.dumps(grafana_dashboard(contracts), indent=2) + "\n")
    return [rules, dashboard]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("deploy/monitoring"))
    args = parser.parse_args(argv)
    for path in write_monitoring_files(PlatformSettings.from_env(), args.out):
        print(path)


if __name__ == "__main__":
    main()
