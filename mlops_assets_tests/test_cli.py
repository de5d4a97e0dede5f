"""The documented commands work as written: workspace load, CLI materialization, the main job."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

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


def test_dagster_asset_materialize_as_documented(env):
    selection = "raw_loan_applications,rejected_loan_applications,loan_features"
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_assets"]
    run([*command, "--select", selection, "--partition", "2026-01-03"], env)
    features = pd.read_parquet(
        Path(env["MLOPS_HOME"]) / "assets" / "loan_features" / "2026-01-03.parquet"
    )
    assert len(features) > 250
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("loan_features"))
        assert event.asset_materialization.partition == "2026-01-03"


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
            dg.AssetKey("registered_model_version"), limit=10
        ).records
        promoted_by_sensor = [
            record
            for record in history
            if record.asset_materialization.metadata["champion"].value
            and any(run.run_id == record.run_id for run in retrainings)
        ]
        assert promoted_by_sensor
    assert (Path(env["MLOPS_HOME"]) / "reports" / "drift_report" / "2026-01-16.html").exists()
