"""Prometheus alert rules and a Grafana dashboard, generated from the settings the sensor reads.

The drift threshold and consecutive count come from the very `RetrainingPolicy` resource the
Definitions give `drift_retraining_sensor`, and the AUC floor from the `ModelGates` resource, so an
alert and the retraining it announces can never disagree. Run
`python -m mlops_assets.monitoring.alerting --out deploy/monitoring` (`make monitoring-files`)
with the same environment as the code location.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlops_assets.monitoring import metrics as m
from mlops_assets.monitoring.policy import RetrainingPolicy
from mlops_assets.monitoring.sensors import RETRAINING_SENSOR
from mlops_assets.settings import PlatformSettings
from mlops_assets.training.gates import ModelGates

RULES_FILE = "alert-rules.yml"
DASHBOARD_FILE = "grafana-dashboard.json"
# Drift reports are daily partitions: N consecutive drifted reports = drifted for N-1 more days.
PARTITION_HOURS = 24
STALE_AFTER_HOURS = 2 * PARTITION_HOURS


def consecutive_as_for(consecutive_partitions: int) -> str:
    """The sensor's consecutive count as a Prometheus `for:` over the latest-report gauge."""
    hours = (consecutive_partitions - 1) * PARTITION_HOURS
    return f"{hours}h" if hours else "0s"


def _policy_and_gates(settings: PlatformSettings) -> tuple[RetrainingPolicy, ModelGates]:
    from mlops_assets.definitions import build_resources

    resources = build_resources(settings)
    return resources["retraining_policy"], resources["gates"]  # type: ignore[return-value]


def alert_rules(settings: PlatformSettings) -> dict[str, Any]:
    """A Prometheus rule file (as a dict) for the model named in the settings."""
    policy, gates = _policy_and_gates(settings)
    model = settings.model_name
    selector = f'{{model="{model}"}}'
    threshold = policy.drift_threshold
    consecutive = policy.consecutive_partitions
    return {
        "groups": [
            {
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
                                f"{RETRAINING_SENSOR} launches retraining at this point "
                                "when it is running."
                            ),
                        },
                    },
                    {
                        "alert": "MlopsServedModelAucBelowFloor",
                        "expr": f"{m.MODEL_AUC}{selector} < {gates.min_roc_auc}",
                        "for": "0s",
                        "labels": {"severity": "critical", "model": model},
                        "annotations": {
                            "summary": f"{model} v{{{{ $labels.model_version }}}}: served ROC AUC "
                            f"{{{{ $value }}}} below the promotion floor {gates.min_roc_auc}",
                            "description": "Labels show the served model doing worse than any "
                            "challenger is allowed to; consider the rollback_champion job.",
                        },
                    },
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
        ]
    }


def grafana_dashboard(settings: PlatformSettings) -> dict[str, Any]:
    """A Grafana dashboard whose threshold lines are the policy's and the gates' numbers."""
    policy, gates = _policy_and_gates(settings)
    selector = f'{{model="{settings.model_name}"}}'

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

    return {
        "title": f"mlops_assets: {settings.model_name}",
        "uid": f"mlops-{settings.model_name}"[:40],
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
        "panels": [
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
                f"Served model ROC AUC (floor {gates.min_roc_auc})",
                [(f"{m.MODEL_AUC}{selector}", "v{{model_version}}")],
                (12, 8, 12, 6),
                red_below=gates.min_roc_auc,
            ),
            panel(
                "Applications scored per batch",
                [(f"{m.PREDICTIONS}{selector}", "v{{model_version}}")],
                (0, 14, 12, 8),
            ),
            panel(
                "Mean default probability and decline rate",
                [
                    (f"{m.PREDICTION_MEAN}{selector}", "mean probability"),
                    (f"{m.DECLINE_RATE}{selector}", "decline rate"),
                ],
                (12, 14, 12, 8),
                unit="percentunit",
            ),
        ],
    }


def write_monitoring_files(settings: PlatformSettings, folder: Path) -> list[Path]:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    rules, dashboard = folder / RULES_FILE, folder / DASHBOARD_FILE
    header = (
        "# Generated by `python -m mlops_assets.monitoring.alerting` from the platform settings\n"
        "# (MLOPS_DRIFT_THRESHOLD, MLOPS_RETRAIN_CONSECUTIVE, MLOPS_GATE_MIN_ROC_AUC): do not edit.\n"
    )
    rules.write_text(header + yaml.safe_dump(alert_rules(settings), sort_keys=False, width=100))
    dashboard.write_text(json.dumps(grafana_dashboard(settings), indent=2) + "\n")
    return [rules, dashboard]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("deploy/monitoring"))
    args = parser.parse_args(argv)
    for path in write_monitoring_files(PlatformSettings.from_env(), args.out):
        print(path)


if __name__ == "__main__":
    main()
