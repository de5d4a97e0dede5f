"""Shared fixtures: settings, definitions and resources isolated under a temporary MLOPS_HOME."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import INGESTION_JOB, build_definitions
from mlops_assets.settings import PlatformSettings

DAY = "2026-01-05"


def make_settings(home: Path, **env: str) -> PlatformSettings:
    return PlatformSettings.from_env(
        {"MLOPS_HOME": str(home), "MLOPS_SYNTHETIC_ROWS_PER_DAY": "400", **env}
    )


@pytest.fixture
def settings(tmp_path: Path) -> PlatformSettings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def defs(settings: PlatformSettings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


HISTORY_DAYS = [f"2026-01-{day:02d}" for day in range(1, 9)]
HISTORY_ROWS_PER_DAY = "1500"


@pytest.fixture(scope="session")
def feature_history(tmp_path_factory) -> Path:
    """Eight days of ingested features, built once; copy it before writing next to it."""
    home = tmp_path_factory.mktemp("history")
    defs = build_definitions(make_settings(home, MLOPS_SYNTHETIC_ROWS_PER_DAY=HISTORY_ROWS_PER_DAY))
    job = defs.resolve_job_def(INGESTION_JOB)
    with dg.instance_for_test() as instance:
        for day in HISTORY_DAYS:
            assert job.execute_in_process(partition_key=day, instance=instance).success
    return home / "assets"


class Platform:
    """A platform on a temporary home with its own MLflow store and Dagster instance."""

    def __init__(self, home: Path, instance: dg.DagsterInstance, **env: str) -> None:
        self.settings = make_settings(
            home, MLOPS_SYNTHETIC_ROWS_PER_DAY=HISTORY_ROWS_PER_DAY, **env
        )
        self.defs = build_definitions(self.settings)
        self.instance = instance

    def run(self, job: str, partition: str | None = None, run_config: dict | None = None):
        return self.defs.resolve_job_def(job).execute_in_process(
            partition_key=partition,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )

    def materialize(self, selection: list[str], partition: str, run_config: dict | None = None):
        return dg.materialize(
            self.defs.assets,
            selection=selection,
            resources=self.defs.resources,
            partition_key=partition,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )

    @property
    def registry(self):
        return self.defs.resources["model_registry"]


@pytest.fixture
def platform(tmp_path: Path, feature_history: Path, instance) -> Platform:
    shutil.copytree(feature_history, tmp_path / "home" / "assets")
    return Platform(tmp_path / "home", instance)
