"""The training and registry path against a real `mlflow server`, configured only by environment."""

import shutil
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlops_assets import keys
from mlops_assets.definitions import build_definitions
from mlops_assets.settings import PlatformSettings
from mlops_assets_tests.conftest import HISTORY_ROWS_PER_DAY
from mlops_assets_tests.servers import free_port, mlflow_server

DAY = "2026-01-08"
TRAINING_JOB = keys.training_job("loan_default")
MODEL = "loan-default-classifier"
pytestmark = pytest.mark.slow


@pytest.fixture
def environment(tmp_path: Path, feature_history: Path, monkeypatch) -> Path:
    shutil.copytree(feature_history / "assets", tmp_path / "home" / "assets")
    shutil.copytree(feature_history / "sources", tmp_path / "home" / "sources")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_SYNTHETIC_ROWS_PER_DAY", HISTORY_ROWS_PER_DAY)
    return tmp_path


def files_under(folder: Path) -> set[str]:
    return {path.name for path in folder.rglob("*") if path.is_file()}


def test_train_register_and_promote_on_a_tracking_server(environment: Path, monkeypatch, instance):
    with mlflow_server(environment / "server") as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        settings = PlatformSettings.from_env()
        assert settings.mlflow_artifact_root is None  # the server decides where artifacts go
        assert settings.mlflow_ui_url == uri
        result = (
            build_definitions(settings)
            .resolve_job_def(TRAINING_JOB)
            .execute_in_process(partition_key=DAY, instance=instance)
        )
        assert result.success
        client = MlflowClient(uri)
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert str(champion.version) == "1"
        run = client.get_run(champion.run_id)
        assert run.data.tags["dagster/run_id"] == result.run_id
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    # artifacts went through the server into its artifact store, not onto this process's disk
    stored = files_under(environment / "server" / "artifacts")
    assert {"MLmodel", "features.parquet"} <= stored
    assert not (environment / "home" / "mlflow").exists()


def test_a_run_started_while_the_server_is_down_recovers_through_retries(
    environment: Path, monkeypatch, instance
):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    job = build_definitions(PlatformSettings.from_env()).resolve_job_def(TRAINING_JOB)
    server_up, stop = threading.Event(), threading.Event()

    def start_server_late():
        with mlflow_server(environment / "server", port):
            server_up.set()
            stop.wait(timeout=300)

    starter = threading.Thread(target=start_server_late)
    starter.start()  # the server needs several seconds: the first attempts find nothing listening
    try:
        result = job.execute_in_process(partition_key=DAY, instance=instance, raise_on_error=False)
        assert server_up.is_set()
        restarts = [
            event for event in result.all_events if event.event_type_value == "STEP_RESTARTED"
        ]
        assert restarts, "the first attempt should have found no server"
        assert result.success
        client = MlflowClient(uri)
        versions = client.search_model_versions(f"name='{MODEL}'")
        assert len(versions) == 1  # retries did not register twice
        assert versions[0].tags["gates_passed"] == "true"
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert champion.version == versions[0].version
    finally:
        stop.set()
        starter.join()


def test_credentials_in_the_tracking_uri_reach_mlflow_but_no_page_log_or_command(
    environment: Path, monkeypatch
):
    """`http://user:password@host` works, and the password is in no resource config, event log,
    compute log, or command line of the model server."""
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    from mlops_assets.serving.online import model_server

    secret = "s3cret-Token"
    dagster_home = environment / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        (Path(__file__).resolve().parents[1] / "dagster.yaml").read_text()
    )
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")  # restored (unset) after the test
    with mlflow_server(environment / "server") as uri:
        with_credentials = uri.replace("http://", f"http://alice:{secret}@")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", with_credentials)
        settings = PlatformSettings.from_env()
        registry = build_definitions(settings).resources["mlflow"]
        assert secret not in registry.tracking_uri + registry.ui_url
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == secret  # where MLflow reads it

        selection = ",".join(
            f"loan_default/{stage}"
            for stage in ("training_set", "trained_model", "registered_model_version")
        )
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "dagster"),
                *("asset", "materialize", "-m", "mlops_assets"),
                *("--select", selection, "--partition", DAY),
            ],
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        champion = MlflowClient(uri).get_model_version_by_alias(MODEL, "champion")
        assert str(champion.version) == "1"
        contract = next(c for c in settings.load_contracts() if c.name == "loan_default")
        serve_log = environment / "serve.log"
        with (
            model_server(settings, contract, serve_log) as base,
            urllib.request.urlopen(f"{base}/version", timeout=30) as response,
        ):
            assert json.loads(response.read())["version"] == "1"
        assert "serving models:/" in serve_log.read_text()
    assert secret not in result.stdout + result.stderr + serve_log.read_text()
    leaks = [
        str(path)
        for path in dagster_home.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    assert not leaks, f"the password is written in {leaks}"


def test_a_server_dying_mid_step_fails_fast_and_the_next_attempt_closes_the_open_run(
    environment: Path, monkeypatch
):
    """MLflow's own retries would hang the step for minutes and leave the run RUNNING forever."""
    import time

    import mlflow

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    registry = build_definitions(PlatformSettings.from_env()).resources["mlflow"]
    tags = {
        "dagster/run_id": "run-1",
        "dagster/asset": "loan_default/trained_model",
        "dagster/partition": DAY,
    }
    server = mlflow_server(environment / "server", port)
    server.__enter__()
    with (
        pytest.raises(Exception) as raised,
        registry.tracked_run("outage", f"trained_model {DAY}", tags) as run,
    ):
        run_id = run.info.run_id
        server.__exit__(None, None, None)  # the tracking server dies mid-step
        started = time.monotonic()
        mlflow.log_metric("rows", 1.0)
    waited = time.monotonic() - started
    assert waited < 60, f"the step waited {waited:.0f}s on a dead server"
    assert "127.0.0.1" in str(raised.value)

    with mlflow_server(environment / "server", port):
        client = MlflowClient(uri)
        assert client.get_run(run_id).info.status == "RUNNING"  # the outage left it open
        with registry.tracked_run("outage", f"trained_model {DAY}", tags) as retry:
            pass  # the step's next attempt (same Dagster run)
        closed = client.get_run(run_id)
        assert closed.info.status == "FAILED"
        assert "stopped before ending it" in closed.data.tags["mlops/closed_because"]
        assert client.get_run(retry.info.run_id).info.status == "FINISHED"
