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
