"""Shared fixtures: settings, definitions and resources isolated under a temporary MLOPS_HOME."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
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
