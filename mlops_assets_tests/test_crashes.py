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
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import keys
from mlops_assets.definitions import build_definitions
from mlops_assets.demo import start_daemon
from mlops_assets.failpoints import VARIABLE as FAILPOINTS
from mlops_assets_tests.conftest import HISTORY_ROWS_PER_DAY, make_settings
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


def run_killed_at(point: str, platform, job: str, partition: str, **env: str) -> int:
    """Run one of the platform's jobs in a child process that SIGKILLs itself at `point`."""
    script = (
        "from mlops_assets.definitions import build_definitions\n"
        "from mlops_assets.settings import PlatformSettings\n"
        "defs = build_definitions(PlatformSettings.from_env())\n"
        f"defs.resolve_job_def({platform.name + '_' + job!r})"
        f".execute_in_process(partition_key={partition!r})\n"
    )
    env = {
        **os.environ,
        "MLOPS_HOME": str(platform.settings.home),
        "MLOPS_SYNTHETIC_ROWS_PER_DAY": HISTORY_ROWS_PER_DAY,
        FAILPOINTS: point,
        **env,
    }
    return subprocess.run([sys.executable, "-c", script], env=env, timeout=600).returncode


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["registration.after_version", "promotion.before_alias", "promotion.after_alias"]
)
def test_a_promotion_killed_at_any_point_is_repaired_by_running_it_again(loan, point):
    day = "2026-01-08"
    assert loan.run("train_and_register", day).success  # version 1, champion
    assert run_killed_at(point, loan, "train_and_register", day) == -signal.SIGKILL
    registry = loan.registry
    client = registry.client()
    if point == "registration.after_version":
        assert (
            client.get_model_version(loan.contract.model_name, "2")
            .tags["promotion"]
            .startswith("pending")
        )
    expected_alias = "2" if point == "promotion.after_alias" else "1"
    assert str(registry.champion().version) == expected_alias

    rerun = loan.materialize(["registered_model_version"], day)
    assert rerun.success
    assert str(registry.champion().version) == "2"
    moves = [(m["previous_version"], m["new_version"]) for m in registry.alias_history()]
    assert moves == [(None, "1"), ("1", "2")], "each promotion recorded exactly once"
    tags = client.get_model_version(loan.contract.model_name, "2").tags
    assert tags["promotion"] == "champion" and tags["champion/previous_version"] == "1"

    rollback = loan.run(
        "rollback_champion",
        run_config={"ops": {"loan_default__move_champion_back": {"config": {"reason": "test"}}}},
    )
    assert rollback.success and str(registry.champion().version) == "1"


@pytest.mark.slow
def test_rollback_right_after_a_promotion_cut_short_finds_the_previous_champion(loan):
    day = "2026-01-08"
    assert loan.run("train_and_register", day).success
    assert (
        run_killed_at("promotion.after_alias", loan, "train_and_register", day) == -signal.SIGKILL
    )
    rollback = loan.run(
        "rollback_champion",
        run_config={"ops": {"loan_default__move_champion_back": {"config": {"reason": "test"}}}},
    )
    assert rollback.success and str(loan.registry.champion().version) == "1"
    moves = [(m["previous_version"], m["new_version"]) for m in loan.registry.alias_history()]
    assert moves == [(None, "1"), ("1", "2"), ("2", "1")]


@pytest.mark.slow
def test_ingestion_killed_between_or_during_its_writes_leaves_no_mixed_or_stray_files(loan):
    import pandas as pd

    day = "2026-01-08"
    folder = loan.settings.home / "assets" / "loan_default"
    before = pd.read_parquet(folder / "raw" / f"{day}.parquet")
    new_delivery = {"MLOPS_SYNTHETIC_INVALID_ROW_SHARE": "0.01"}  # some rows to quarantine
    killed = run_killed_at("ingestion.between_writes", loan, "ingest", day, **new_delivery)
    assert killed == -signal.SIGKILL
    # the quarantine of the new delivery is stored; raw is still the whole previous delivery
    assert len(pd.read_parquet(folder / "rejected" / f"{day}.parquet")) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "raw" / f"{day}.parquet"), before)

    assert run_killed_at("io.before_rename", loan, "ingest", day, **new_delivery) == -signal.SIGKILL
    strays = list((folder / "rejected").glob(".*.tmp"))
    assert strays, "the killed write left its temporary file"
    two_hours_ago = time.time() - 7200
    for stray in strays:
        os.utime(stray, (two_hours_ago, two_hours_ago))

    assert run_killed_at("none", loan, "ingest", day, **new_delivery) == 0  # the re-run
    assert not list(folder.rglob(".*.tmp"))
    raw = pd.read_parquet(folder / "raw" / f"{day}.parquet")
    rejected = pd.read_parquet(folder / "rejected" / f"{day}.parquet")
    source = build_definitions(
        make_settings(
            loan.settings.home, MLOPS_SYNTHETIC_ROWS_PER_DAY=HISTORY_ROWS_PER_DAY, **new_delivery
        )
    ).resources["loan_default_source"]
    delivered = source.load_day(date.fromisoformat(day)).rows
    assert len(raw) + len(rejected) == len(delivered)  # one delivery, split


@pytest.mark.slow
def test_runs_of_one_models_lifecycle_queue_behind_each_other(on_disk, tmp_path):
    """Two runs launched for the same partition at once: the second waits for the first."""
    import json

    env, instance = on_disk
    env = {**env, "MLOPS_SYNTHETIC_ROWS_PER_DAY": "300"}
    job = keys.ingestion_job(CONTRACT)
    launch = [
        str(Path(sys.executable).parent / "dagster"),
        *("job", "launch", "-m", "mlops_assets", "-j", job),
        *("--tags", json.dumps({"dagster/partition": "2026-01-08"})),
    ]
    for _ in range(2):
        subprocess.run(launch, env=env, check=True, capture_output=True, timeout=300)
    daemon = start_daemon(tmp_path / "daemon.log", env)
    try:
        records = wait_for(
            lambda: (
                (found := instance.get_run_records(dg.RunsFilter(job_name=job)))
                and all(record.dagster_run.is_finished for record in found)
                and found
            ),
            300,
            f"the two runs did not finish; see {tmp_path / 'daemon.log'}",
        )
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    first, second = sorted(records, key=lambda record: record.start_time)
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    assert second.start_time >= first.end_time, "the runs overlapped"
