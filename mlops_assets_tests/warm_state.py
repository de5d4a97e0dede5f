"""Warm state shared by the whole test session: a story's warm-up built once, copied per test.

The daemon-driven stories (tests/test_scenarios.py and the tests built on it) all begin with the
same seven ingested days and the same first champion. `warm_story_home` builds that home once
per pytest session (one build for all xdist workers, under a file lock) with the story's real
daemon running, as `run_story` would; each test gets a copy: the Dagster instance (SQLite), the
MLflow store (SQLite and artifact files) and the asset files, with the absolute paths they hold
rewritten to the copy's folder. Copying takes well under a second; building takes ~20 s.

Only the inputs of the warm-up key a snapshot (the rows a day; the seed is the default): the
scenario of a story starts after the warm-up, so stories with different scenarios share it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from mlops_assets.demo import FINISHED, WARM_UP_DAYS, Day, Retraining, warm_up
from mlops_assets.settings import PlatformSettings

REPO = Path(__file__).resolve().parents[1]
CONTRACT = "loan_default"
OUTCOME_FILE = "warm_up.json"
# The environment of every story in the tests: fast ticks, quiet MLflow, every sensor on.
STORY_ENVIRONMENT = {
    "MLOPS_RETRAINING_SENSOR": "running",
    "MLOPS_PERFORMANCE_SENSOR": "running",
    "MLOPS_SENSOR_INTERVAL_SECONDS": "1",
    "MLOPS_SYNTHETIC_ROWS_PER_DAY": "1000",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}


def story_home(home: Path, storage: dict | None = None) -> dict[str, str]:
    """A story's MLOPS_HOME with its Dagster instance folder (dagster.yaml, the `storage:` block
    replaced by `storage`); the environment naming both."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    instance_config["storage"] = storage or instance_config["storage"]
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    return {"MLOPS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}


def build_warm_home(home: Path, rows_per_day: str) -> None:
    """Seven days and the first champion of the loan example in `home`, with the daemon running
    as in a story; the outcomes are kept in `home/warm_up.json` for `run_story(warm=...)`."""
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from mlops_assets.demo import start_daemon, story_daemon_environment
    from mlops_assets.processes import stop

    env = {
        **STORY_ENVIRONMENT,
        **story_home(home),
        "MLOPS_SYNTHETIC_ROWS_PER_DAY": rows_per_day,
    }
    with pytest.MonkeyPatch.context() as environment:  # the daemon reads its settings from there
        environment.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, value in env.items():
            environment.setenv(name, value)
        settings = PlatformSettings.from_env()
        contract = next(c for c in settings.load_contracts() if c.name == CONTRACT)
        defs = build_definitions(settings)
        days = [f"2026-01-{day:02d}" for day in range(1, WARM_UP_DAYS + 1)]
        with dg.DagsterInstance.get() as instance:
            daemon = start_daemon(
                home / "logs" / "warm-up-daemon.log", story_daemon_environment(contract)
            )
            try:
                outcomes, first = warm_up(defs, instance, contract, days)
                unfinished = [r for r in instance.get_runs() if r.status not in FINISHED]
                assert not unfinished, f"runs still going after the warm-up: {unfinished}"
            finally:
                stop(daemon)
    assert first.promoted, first
    (home / OUTCOME_FILE).write_text(
        json.dumps(
            {"days": [dataclasses.asdict(d) for d in outcomes], "first": dataclasses.asdict(first)}
        )
    )


def copy_home(source: Path, target: Path) -> None:
    """Copy a home and rewrite the absolute paths its SQLite stores and asset files hold.

    Model artifacts are copied byte for byte (their digest is checked at every load)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("logs"))
    old, new = str(source), str(target)
    for path in target.rglob("*.db"):
        _rewrite_sqlite(path, old, new)
    for path in (target / "assets").rglob("*.parquet"):
        if old.encode() in path.read_bytes():
            _rewrite_parquet(path, old, new)


def _rewrite_parquet(path: Path, old: str, new: str) -> None:
    import pandas as pd

    frame = pd.read_parquet(path)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda value: value.replace(old, new) if isinstance(value, str) else value
            )
    frame.to_parquet(path)


def _rewrite_sqlite(path: Path, old: str, new: str) -> None:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if any(text in kind for text in ("CHAR", "TEXT", "CLOB")) or kind == "":
                    db.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) '
                        f'WHERE typeof("{name}") = \'text\' AND instr("{name}", ?) > 0',
                        (old, new, old),
                    )


def load_warm_up(home: Path) -> tuple[list[Day], Retraining]:
    """The warm-up outcomes a warm home was built with."""
    saved = json.loads((home / OUTCOME_FILE).read_text())
    days = [
        Day(**{**day, "retraining": [Retraining(**r) for r in day["retraining"]]})
        for day in saved["days"]
    ]
    return days, Retraining(**saved["first"])


def built_once(
    factory: pytest.TempPathFactory, config: pytest.Config, name: str, build: Callable[[Path], None]
) -> Path:
    """`name`'s folder, built by `build` once per pytest session: the first xdist worker that
    needs it builds it under a file lock, the others wait and reuse it. Read it, copy before writing."""
    root = factory.getbasetemp()
    if hasattr(config, "workerinput"):
        root = root.parent  # shared by the xdist workers of this session
    folder, done = root / name, root / f"{name}.built"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


def warm_story_home(request: pytest.FixtureRequest, rows_per_day: str) -> Path:
    """The session's warm home for `rows_per_day` (built by the first worker that needs it)."""
    folder = built_once(
        request.getfixturevalue("tmp_path_factory"),
        request.config,
        f"warm-loan-{rows_per_day}",
        lambda folder: build_warm_home(folder / "home", rows_per_day),
    )
    return folder / "home"
