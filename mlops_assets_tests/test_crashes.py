"""Crash recovery with real processes: workers killed mid-run, steps killed mid-promotion.

Crash points are named failpoints (`mlops_assets.failpoints`): the process that reaches one
kills itself with SIGKILL, as the OOM killer or a lost node would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import keys
from mlops_assets.demo import start_daemon
from mlops_assets.failpoints import VARIABLE as FAILPOINTS
from mlops_assets_tests.conftest import make_settings
from mlops_assets_tests.test_sensor import evaluate, report

REPO = Path(__file__).resolve().parents[1]
CONTRACT = "loan_default"
STARTED = [dg.DagsterRunStatus.STARTED]


@pytest.fixture
def on_disk(tmp_path: Path, monkeypatch) -> tuple[dict[str, str], dg.DagsterInstance]:
    """An environment with a real on-disk instance configured by the repository's dagster.yaml."""
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    make_settings(home)  # writes the crash example's files the code location reads
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    with dg.DagsterInstance.get() as instance:
        yield env, instance


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


@pytest.mark.slow
def test_a_run_whose_worker_was_killed_fails_and_drift_retraining_resumes(on_disk, tmp_path):
    """Kill a retraining run's worker: run monitoring fails the run, and the drifted report the
    sensor deferred while it was STARTED launches retraining after all."""
    env, instance = on_disk
    home = Path(env["MLOPS_HOME"])
    job = keys.training_job(CONTRACT)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dagster import DagsterInstance\n"
            "from mlops_assets.definitions import build_definitions\n"
            "from mlops_assets.settings import PlatformSettings\n"
            "defs = build_definitions(PlatformSettings.from_env())\n"
            f"defs.resolve_job_def({job!r}).execute_in_process(partition_key='2026-01-08', "
            "instance=DagsterInstance.get(), tags={'mlops/trigger': 'drift'})",
        ],
        env={**env, FAILPOINTS: "training_set=hang"},
        start_new_session=True,
    )
    try:
        run = wait_for(
            lambda: (
                worker.poll() is None
                and next(
                    iter(instance.get_runs(dg.RunsFilter(job_name=job, statuses=STARTED))), None
                )
            ),
            120,
            "the retraining run never started",
        )
        report(instance, CONTRACT, "2026-01-09", 0.5)
        deferred = evaluate(home, CONTRACT, instance)
        assert not deferred.run_requests
        assert "already queued or running" in deferred.skip_reason.skip_message
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies with no chance to clean up
        worker.wait()
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

    daemon = start_daemon(tmp_path / "daemon.log", env)
    try:
        wait_for(
            lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE,
            120,
            f"run monitoring did not fail the dead run; see {tmp_path / 'daemon.log'}",
        )
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    messages = [entry.message for entry in instance.all_logs(run.run_id)]
    assert any(f"pid {worker.pid}) is gone" in message for message in messages), messages[-3:]

    resumed = evaluate(home, CONTRACT, instance, cursor=deferred.cursor)
    assert [request.partition_key for request in resumed.run_requests] == ["2026-01-09"]
    assert resumed.run_requests[0].tags["mlops/trigger"] == "drift"
