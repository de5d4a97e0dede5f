"""The documented commands work as written: workspace load, CLI materialization, the main job, and
the daemon-driven story for every shipped contract."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets import keys
from mlops_assets.demo import DRIFT_AFTER_DAYS, run_story, story_problems
from mlops_assets.settings import PlatformSettings
from mlops_assets_tests.conftest import write_crash_files

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))  # dagster.yaml reads it, here too
    (dagster_home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "MLOPS_SYNTHETIC_ROWS_PER_DAY": "300",
    }


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_workspace_loads(env):
    result = run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], env)
    assert "mlops_assets" in result.stdout + result.stderr


def test_a_broken_contract_fails_the_load_naming_file_and_field(env, tmp_path):
    folder = tmp_path / "contracts"
    folder.mkdir()
    text = (REPO / "mlops_assets" / "examples" / "loan_default.yaml").read_text()
    (folder / "loan_default.yaml").write_text(text.replace("min_roc_auc: 0.70", "min_roc_auc: 7"))
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "mlops_assets"],
        cwd=REPO,
        env={**env, "MLOPS_CONTRACTS": str(folder)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert (
        f"{folder}/loan_default.yaml: gates.min_roc_auc: Input should be less than or equal to 1"
        in (result.stdout + result.stderr)
    )


@pytest.mark.slow  # a `dagster asset materialize` process per day, as a user runs it
def test_dagster_asset_materialize_as_documented(env):
    selection = "key:loan_default/raw or key:loan_default/rejected or key:loan_default/features"
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_assets"]
    run([*command, "--select", selection, "--partition", "2026-01-03"], env)
    home = Path(env["MLOPS_HOME"])
    features = pd.read_parquet(home / "assets" / "loan_default" / "features" / "2026-01-03.parquet")
    assert len(features) > 250
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        key = dg.AssetKey(["loan_default", "features"])
        event = instance.get_latest_materialization_event(key)
        assert event.asset_materialization.partition == "2026-01-03"

    # a whole day of one model's lifecycle, training included, in one command
    whole = {**env, "MLOPS_SYNTHETIC_ROWS_PER_DAY": "2000"}
    run([*command, "--select", "key:loan_default/*", "--partition", "2026-01-04"], whole)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for stage in ("registered_model_version", "drift_report", "model_performance"):
            event = instance.get_latest_materialization_event(dg.AssetKey(["loan_default", stage]))
            assert event.asset_materialization.partition == "2026-01-04", stage
        crashes = instance.get_latest_materialization_event(dg.AssetKey(["vehicle_crashes", "raw"]))
        assert crashes is None  # one model's selection never touches another's assets


@pytest.mark.slow
def test_main_job_tells_the_whole_story_with_the_real_daemon(env):
    """`make demo`'s command: drift, the daemon's sensor, retraining and a new champion."""
    result = run(
        [sys.executable, "-m", "mlops_assets.demo"], {**env, "MLOPS_SYNTHETIC_ROWS_PER_DAY": "2000"}
    )
    assert "Story complete." in result.stdout
    assert "-> champion trained as of 2026-01-07: v1" in result.stdout
    assert "0.333 !" in result.stdout  # drift reports cross the threshold once incomes drop
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        retrainings = instance.get_runs(dg.RunsFilter(tags={"mlops/trigger": "drift"}))
        assert retrainings, "the daemon's sensor launched no retraining"
        assert any(run.is_success for run in retrainings)
        history = instance.fetch_materializations(
            dg.AssetKey(["loan_default", "registered_model_version"]), limit=10
        ).records
        promoted_by_sensor = [
            record
            for record in history
            if record.asset_materialization.metadata["champion"].value
            and any(run.run_id == record.run_id for run in retrainings)
        ]
        assert promoted_by_sensor
    report = (
        Path(env["MLOPS_HOME"]) / "reports" / "loan_default" / "drift_report" / "2026-01-16.html"
    )
    assert report.exists()


def write_story_files(home: Path, contract_name: str, drift_start: date) -> int:
    """A file-delivered example's days for the story, its real shift from `drift_start`; returns
    how many days were written."""
    if contract_name == "vehicle_crashes":
        write_crash_files(home, drift_start=drift_start)  # 14 days, 600 rows each
        return 14
    from mlops_assets.examples import pc_prices

    folder = home / "sources" / contract_name
    return len(pc_prices.write_days(folder, date(2026, 1, 1), 13, 300, drift_start=drift_start))


@pytest.mark.slow
@pytest.mark.parametrize("contract_name", ["vehicle_crashes", "pc_prices"])
def test_a_real_data_story_with_the_real_daemon(env, monkeypatch, contract_name):
    """The real-data examples through the same story as the loan's: a binary one (crash records,
    high-speed crashes only from day 11) and the regression (PC prices, the last months' offers
    from day 11), delivered as daily files; the daemon's sensor retrains and a new champion takes
    over."""
    home = Path(env["MLOPS_HOME"])
    drift_start = date(2026, 1, 1 + DRIFT_AFTER_DAYS)
    days = write_story_files(home, contract_name, drift_start)
    story_env = {
        "MLOPS_HOME": str(home),
        "MLOPS_RETRAINING_SENSOR": "running",
        "MLOPS_SENSOR_INTERVAL_SECONDS": "2",
        "MLOPS_RETRAIN_CONSECUTIVE": "2",
        "MLOPS_GATE_MIN_ABSOLUTE_CHANGE": "-0.03",
    }
    for name, value in story_env.items():
        monkeypatch.setenv(name, value)  # the daemon loads the code location from the environment
    settings = PlatformSettings.from_env()
    contract = next(c for c in settings.load_contracts() if c.name == contract_name)
    outcomes, first = run_story(  # every shipped contract's sensors in the daemon, as deployed
        settings,
        contract,
        [f"2026-01-{d:02d}" for d in range(1, days + 1)],
        daemon_contracts=settings.contracts_path,
    )
    problems = story_problems(outcomes, first, 0.2, drift_start.isoformat())
    assert problems == [], problems
    retrained = [r for d in outcomes for r in d.retraining]
    assert [r.trigger for r in retrained] == ["drift"]
    assert retrained[0].since == drift_start.isoformat() and retrained[0].promoted
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name=keys.training_job(contract_name)))
        assert {run.tags.get("mlops/contract") for run in runs} == {contract_name}
        others = [c.name for c in settings.load_contracts() if c.name != contract_name]
        for other in others:  # the other contracts' sensors ran beside it and trained nothing
            assert not instance.get_runs(dg.RunsFilter(job_name=keys.training_job(other)))
