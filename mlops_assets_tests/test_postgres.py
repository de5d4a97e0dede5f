"""PostgreSQL for real, as the Kubernetes profile runs it: the Dagster instance (runs, event log,
schedules and sensor ticks) on dagster-postgres, and an MLflow server whose backend store is
PostgreSQL. Debian's PostgreSQL on 127.0.0.1, installed by `make system-deps`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg2
import pytest

from mlops_assets.keys import RETRY_OF_TAG, TRIGGER_TAG
from mlops_assets_tests.servers import Postgres, mlflow_server, postgres
from mlops_assets_tests.test_scenarios import SCENARIO_START, Outcome, run_scenario

pytestmark = pytest.mark.slow

# dagster-postgres's storage block, as docs/configuration.md gives it. Its URL names psycopg2:
# under SQLAlchemy 2.1 a plain postgresql:// means psycopg 3, with which dagster-postgres's
# NOTIFY statement fails (a syntax error at "$1") on every event a run writes.
STORAGE = {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
DAGSTER_DRIVER = "postgresql+psycopg2"
# A restart: clients see the server go away and come back. dagster-postgres retries a connection
# 5 times, 0.2 s doubling (about 11 s in all); a step that still finds the database gone is
# retried by its retry policy (`keys.is_transient`). Shutting down takes ~1-3 s on top.
OUTAGE_SECONDS = 3
TRAINING_STEP = "loan_default__trained_model"
DAYS = 12  # champion on day 7, income_drop from day 9, retrained on day 10, two days after


def loop_on_postgres(tmp_path: Path, monkeypatch, server: Postgres) -> Outcome:
    """The drift -> sensor -> retraining -> promotion loop with the daemon on a dagster-postgres
    instance and the MLflow server on PostgreSQL."""
    with mlflow_server(tmp_path / "mlflow", backend_store=server.url("mlflow")) as tracking:
        return run_scenario(
            tmp_path,
            monkeypatch,
            DAYS,
            storage=STORAGE,
            DAGSTER_PG_URL=server.url("dagster", DAGSTER_DRIVER),
            MLFLOW_TRACKING_URI=tracking,
            MLOPS_DRIFT_SCENARIO="income_drop",
            MLOPS_DRIFT_START=SCENARIO_START,
        )


def rows(server: Postgres, database: str, query: str) -> list[tuple]:
    with psycopg2.connect(server.url(database)) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def assert_one_retraining_promoted(outcome: Outcome, server: Postgres, context: str) -> None:
    promoted = [r for r in outcome.retrainings if r.promoted]
    assert len(promoted) == 1, f"{context}\n{outcome.table()}"
    [retraining] = promoted
    assert (retraining.trigger, retraining.since) == ("drift", SCENARIO_START), outcome.table()
    assert (outcome.rollbacks, outcome.champion) == ([], "2"), outcome.table()
    after = [day for day in outcome.monitored if day.reference_version == "2"]
    assert after and all(day.drift_share <= 0.2 for day in after), outcome.table()
    # the registry and the instance are PostgreSQL's, and hold each fact once
    versions = rows(server, "mlflow", "SELECT version FROM model_versions ORDER BY version")
    assert versions == [(1,), (2,)]
    daily = rows(
        server,
        "dagster",
        "SELECT partition, count(*) FROM event_logs WHERE dagster_event_type = "
        "'ASSET_MATERIALIZATION' AND asset_key = '[\"loan_default\", \"drift_report\"]' "
        "GROUP BY partition ORDER BY partition",
    )
    assert [count for _, count in daily] == [1] * (DAYS - 7), daily  # one report a served day


def test_the_loop_runs_on_postgresql_and_survives_a_restart_during_retraining(
    tmp_path, monkeypatch
):
    """The whole loop on PostgreSQL, which restarts (down OUTAGE_SECONDS and its shutdown) once
    the retraining run's training step has started: the daemon, the retraining (healed by its
    step's retries, or requested again by the sensor) and the MLflow server carry on, nothing is
    lost or doubled, and no SQLite store appears on the side."""
    with postgres("dagster", "mlflow") as server:
        restarted = threading.Event()
        down: list[float] = []
        training = (
            "SELECT e.run_id FROM event_logs e JOIN run_tags t ON t.run_id = e.run_id "
            f"WHERE t.key = '{TRIGGER_TAG}' AND e.dagster_event_type = 'STEP_START' "
            f"AND e.step_key = '{TRAINING_STEP}'"
        )

        def restart_during_retraining() -> None:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                try:
                    if rows(server, "dagster", training):
                        break
                except psycopg2.Error:  # the tables do not exist yet
                    pass
                time.sleep(0.2)
            else:
                return
            stopping = time.monotonic()
            server.stop()
            time.sleep(OUTAGE_SECONDS)  # the outage itself is the scenario, not a wait
            server.start()
            down.append(time.monotonic() - stopping)
            restarted.set()

        watcher = threading.Thread(target=restart_during_retraining, daemon=True)
        watcher.start()
        outcome = loop_on_postgres(tmp_path, monkeypatch, server)
        assert restarted.is_set(), outcome.table()
        assert_one_retraining_promoted(outcome, server, f"PostgreSQL was down {down[0]:.1f} s")
        assert not list((tmp_path / "home" / "dagster").rglob("*.db"))  # no SQLite on the side
        [(launched,)] = rows(
            server, "dagster", f"SELECT count(*) FROM run_tags WHERE key = '{TRIGGER_TAG}'"
        )
        assert launched == len(outcome.retrainings), outcome.table()
        # The restart lands in the step's own code (its retry policy heals it: one run) or in an
        # event Dagster writes around it (the run fails; the sensor requests it again at once).
        failed = [r for r in outcome.retrainings if not r.promoted]
        assert len(failed) <= 1, outcome.table()
        assert all("OperationalError" in r.reason for r in failed), outcome.table()
        retried = rows(
            server, "dagster", f"SELECT value FROM run_tags WHERE key = '{RETRY_OF_TAG}'"
        )
        assert [run_id for (run_id,) in retried] == [r.run_id for r in failed], outcome.table()
