"""Alert rules and dashboard are generated from each contract's own policy, and Prometheus accepts them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mlops_assets.monitoring.alerting import (
    DASHBOARD_FILE,
    RULES_FILE,
    alert_rules,
    grafana_dashboard,
    write_monitoring_files,
)
from mlops_assets.monitoring.policy import DriftObservation, RetrainingPolicy, retraining_decision
from mlops_assets.settings import PlatformSettings
from mlops_assets_tests.servers import require_tool

COMMITTED = Path(__file__).resolve().parents[1] / "deploy" / "monitoring"


def contract_of(settings: PlatformSettings, name: str):
    return next(c for c in settings.load_contracts() if c.name == name)


def rules_by_name(settings: PlatformSettings, name: str) -> dict[str, dict]:
    contracts = settings.load_contracts()
    groups = {group["name"]: group for group in alert_rules(contracts)["groups"]}
    assert len(groups) == len(contracts)  # one rule group per model
    model = contract_of(settings, name).model_name
    return {rule["alert"]: rule for rule in groups[f"mlops_assets:{model}"]["rules"]}


def promtool_test(tmp_path: Path, series: list[dict], alerts: list[dict]) -> None:
    """`promtool test rules` on the rule file in `tmp_path`: hourly `series`, `alerts` checks."""
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [RULES_FILE],
                "evaluation_interval": "1h",
                "tests": [{"interval": "1h", "input_series": series, "alert_rule_test": alerts}],
            }
        )
    )
    tested = subprocess.run(
        [require_tool("promtool"), "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_committed_files_are_what_the_default_settings_generate(tmp_path):
    write_monitoring_files(PlatformSettings.from_env({}), tmp_path)
    for name in (RULES_FILE, DASHBOARD_FILE):
        assert (COMMITTED / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/monitoring/{name} is stale: run `make monitoring-files`"
        )


@pytest.mark.parametrize(
    ("env", "expected_for"),
    [({}, "0s"), ({"MLOPS_DRIFT_THRESHOLD": "0.35", "MLOPS_RETRAIN_CONSECUTIVE": "3"}, "48h")],
)
def test_rules_and_dashboard_follow_the_policy_the_sensor_reads(env, expected_for, contract_name):
    settings = PlatformSettings.from_env({"MLOPS_GATE_MIN_ROC_AUC": "0.74", **env})
    contract = contract_of(settings, contract_name)
    policy = RetrainingPolicy.of(contract)
    rules = rules_by_name(settings, contract_name)
    drift = rules["MlopsDriftAboveThreshold"]
    assert drift["expr"] == (
        f'mlops_drift_share{{model="{contract.model_name}"}} > {policy.drift_threshold}'
    )
    assert drift["for"] == expected_for
    floor = contract.task.served_floor(contract.spec.gates)
    metric = contract.task.metric
    if floor is not None:  # a floor in the served metric's unit (ROC AUC) follows the setting
        assert floor == 0.74
        assert rules["MlopsServedModelAucBelowFloor"]["expr"].endswith("< 0.74")
    else:  # an error metric (RMSE, log loss) against its own validation value
        assert rules["MlopsServedErrorAboveValidation"]["expr"].startswith(
            f"mlops_model_{metric.name}{{"
        )

    dashboard = grafana_dashboard(settings.load_contracts())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == [c.model_name for c in settings.load_contracts()]  # a row per model
    selector = f'model="{contract.model_name}"'
    panels = {
        panel["title"]: panel
        for panel in dashboard["panels"]
        if panel["type"] != "row" and selector in panel["targets"][0]["expr"]
    }
    drift_panel = next(p for t, p in panels.items() if t.startswith("Drift share"))
    steps = drift_panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": policy.drift_threshold}
    served = next(p for t, p in panels.items() if t.startswith(f"Served model {metric.title}"))
    if floor is not None:
        assert served["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 0.74


def test_promtool_accepts_the_rules_and_they_fire_when_the_sensor_retrains(tmp_path):
    """Three daily reports above 0.2 with a consecutive count of 3: alert and sensor agree."""
    promtool = require_tool("promtool")
    settings = PlatformSettings.from_env({"MLOPS_RETRAIN_CONSECUTIVE": "3"})
    write_monitoring_files(settings, tmp_path)
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / RULES_FILE)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {5 * len(settings.load_contracts())} rules found" in checked.stdout

    # one drift report a day (values held between pushes): 0.1, then 0.25 from day 1 on
    shares = [0.1, 0.25, 0.25, 0.25, 0.25]
    contract = contract_of(settings, "loan_default")
    policy = RetrainingPolicy.of(contract)
    reports = [
        DriftObservation(f"2026-01-0{day + 1}", share, day, "1", rows=2000)
        for day, share in enumerate(shares)
    ]
    sensor_retrains_on = next(
        day
        for day, report in enumerate(reports)
        if retraining_decision(
            report, reversed(reports[:day]), policy, False, None, datetime.now(UTC)
        ).retrain
    )
    assert sensor_retrains_on == 3
    model = contract.model_name
    hourly = " ".join(str(share) for share in shares for _ in range(24))
    rule = rules_by_name(settings, "loan_default")["MlopsDriftAboveThreshold"]
    firing = {
        "exp_labels": rule["labels"],
        "exp_annotations": {
            **rule["annotations"],
            "summary": rule["annotations"]["summary"].replace("{{ $value }}", "0.25"),
        },
    }
    promtool_test(
        tmp_path,
        [
            {"series": f'mlops_drift_share{{model="{model}"}}', "values": hourly},
            {"series": f'mlops_champion_version{{model="{model}"}}', "values": "1x120"},
        ],
        [
            {"eval_time": f"{day * 24 + 1}h", "alertname": "MlopsDriftAboveThreshold",
             "exp_alerts": [] if day < sensor_retrains_on else [firing]}
            for day in range(len(shares))
        ],
    )  # fmt: skip


def test_dashboard_is_grafana_json_with_a_prometheus_datasource_variable():
    dashboard = json.loads((COMMITTED / DASHBOARD_FILE).read_text())
    assert dashboard["templating"]["list"][0]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(target["expr"].startswith("mlops_") for target in panel["targets"])


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_an_error_metric_alerts_when_served_beyond_its_validation_value_by_the_margin(
    tmp_path, task
):
    """Regression and multiclass floors are relative, so their rule compares the served error
    with the served model's own validation value, exported beside it with the same labels."""
    from mlops_assets.monitoring.metrics import performance_metrics
    from mlops_assets_tests.conftest import write_contract
    from mlops_assets_tests.test_multiclass import CONTRACT as MULTICLASS
    from mlops_assets_tests.test_regression import CONTRACT as REGRESSION

    document = {"regression": REGRESSION, "multiclass": MULTICLASS}[task]
    contracts = write_contract(tmp_path, {**document, "performance": {"margin": 0.1}})
    settings = PlatformSettings.from_env(
        {"MLOPS_HOME": str(tmp_path), "MLOPS_CONTRACTS": str(contracts)}
    )
    [contract] = settings.load_contracts()
    write_monitoring_files(settings, tmp_path)
    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / RULES_FILE)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    rule = rules_by_name(settings, contract.name)["MlopsServedErrorAboveValidation"]

    # what the model_performance asset exports: the served value beside its validation value
    exported = performance_metrics("1", 300, contract.task.metric, 1.15, validation_value=1.0)
    names = {metric.name: metric.labels for metric in exported}
    served = next(name for name in names if name.endswith(f"_{contract.task.metric.name}"))
    validation = next(name for name in names if "_validation_" in name)
    model = contract.model_name
    labels = f'model="{model}", model_version="1"'
    firing = {
        "exp_labels": {**rule["labels"], "model_version": "1"},
        "exp_annotations": {
            **rule["annotations"],
            "summary": rule["annotations"]["summary"]
            .replace("{{ $labels.model_version }}", "1")
            .replace("{{ $value }}", "1.15"),
        },
    }
    promtool_test(
        tmp_path,
        [  # 1.05 (within 10%) for three hours, then 1.15
            {"series": f"{served}{{{labels}}}", "values": "1.05x2 1.15x3"},
            {"series": f"{validation}{{{labels}}}", "values": "1x5"},
        ],
        [
            {"eval_time": "1h", "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": "4h", "alertname": rule["alert"], "exp_alerts": [firing]},
        ],
    )
