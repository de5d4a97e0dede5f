"""Shared fixtures: settings, definitions and resources isolated under a temporary MLOPS_HOME.

Platform tests take `contract_name`, parametrized over every shipped contract, so a contract
added to `mlops_assets/examples/` is exercised by them too (its source must deliver the
history days: the loan example generates them, the real-data examples' files are written here).
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import keys
from mlops_assets.contracts import DataContract, load_contracts
from mlops_assets.definitions import build_definitions
from mlops_assets.examples import EXAMPLES_DIR
from mlops_assets.settings import PlatformSettings
from mlops_assets_tests.warm_state import built_once

DAY = "2026-01-05"
HISTORY_DAYS = [f"2026-01-{day:02d}" for day in range(1, 9)]
HISTORY_ROWS_PER_DAY = "1500"
CRASH_ROWS_PER_DAY = 600  # 8 history days hold enough fatalities per sex for the bias gate
PC_ROWS_PER_DAY, CRACKER_ROWS_PER_DAY = 300, 200
SHIFTED_FROM = date(2026, 1, 9)  # the real shift of the regression and multiclass examples
SHIPPED = [contract.name for contract in load_contracts(EXAMPLES_DIR, {"MLOPS_HOME": "/tmp"})]


def make_settings(home: Path, **env: str) -> PlatformSettings:
    write_example_files(home)
    return PlatformSettings.from_env(
        {"MLOPS_HOME": str(home), "MLOPS_SYNTHETIC_ROWS_PER_DAY": "400", **env}
    )


def write_crash_files(home: Path, drift_start: date | None = None) -> Path:
    """The crash example's daily files in its default folder under `home` (real NASS CDS rows).

    24 days as delivered; with `drift_start`, high-speed crashes only from then on (14 days in
    all: the dataset holds 4,469 high-speed records). Days before the drift are the same rows.
    """
    from mlops_assets.examples.vehicle_crashes import write_days

    folder = home / "sources" / "vehicle_crashes"
    if not folder.exists() or drift_start is not None:
        shutil.rmtree(folder, ignore_errors=True)
        days = 14 if drift_start else 24
        write_days(folder, date(2026, 1, 1), days, CRASH_ROWS_PER_DAY, drift_start=drift_start)
    return folder


def write_example_files(home: Path, drift_start: date | None = None) -> None:
    """Every file-delivered shipped example's days in its default folder under `home`.

    The regression and multiclass examples hold fewer unshifted records: their 11 days always
    shift from SHIFTED_FROM (`drift_start` applies to the crash example).
    """
    from mlops_assets.examples import cracker_brands, pc_prices

    write_crash_files(home, drift_start)
    for name, module, rows in (
        ("pc_prices", pc_prices, PC_ROWS_PER_DAY),
        ("cracker_brands", cracker_brands, CRACKER_ROWS_PER_DAY),
    ):
        folder = home / "sources" / name
        if not folder.exists():
            module.write_days(folder, date(2026, 1, 1), 11, rows, drift_start=SHIFTED_FROM)


@pytest.fixture(params=SHIPPED)
def contract_name(request) -> str:
    return request.param


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


def build_feature_history(home: Path) -> None:
    """Eight ingested days of every shipped contract in `home`."""
    defs = build_definitions(make_settings(home, MLOPS_SYNTHETIC_ROWS_PER_DAY=HISTORY_ROWS_PER_DAY))
    with dg.instance_for_test() as instance:
        for name in SHIPPED:
            job = defs.resolve_job_def(keys.ingestion_job(name))
            for day in HISTORY_DAYS:
                assert job.execute_in_process(partition_key=day, instance=instance).success


@pytest.fixture(scope="session")
def feature_history(tmp_path_factory, pytestconfig) -> Path:
    """Eight days of ingested features of every shipped contract, built once for the session's
    workers; copy before writing."""
    return built_once(tmp_path_factory, pytestconfig, "history", build_feature_history)


class Platform:
    """One contract's lifecycle on a temporary home with its own MLflow store and Dagster instance."""

    def __init__(
        self,
        home: Path,
        instance: dg.DagsterInstance,
        contract_name: str = "loan_default",
        **env: str,
    ) -> None:
        self.settings = make_settings(
            home, MLOPS_SYNTHETIC_ROWS_PER_DAY=HISTORY_ROWS_PER_DAY, **env
        )
        self.defs = build_definitions(self.settings)
        self.instance = instance
        self.contract: DataContract = next(
            c for c in self.settings.load_contracts() if c.name == contract_name
        )
        self.name = contract_name

    def key(self, stage: str) -> dg.AssetKey:
        return self.contract.key(stage)

    def run(self, job: str, partition: str | None = None, run_config: dict | None = None):
        """Run one of this contract's jobs: `ingest`, `daily_lifecycle`, `train_and_register`..."""
        return self.defs.resolve_job_def(f"{self.name}_{job}").execute_in_process(
            partition_key=partition,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )

    def materialize(self, stages: list[str], partition: str, run_config: dict | None = None):
        return dg.materialize(
            self.defs.assets,
            selection=[self.key(stage) for stage in stages],
            resources=self.defs.resources,
            partition_key=partition,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )

    def load(self, stage: str, partition: str):
        return self.defs.load_asset_value(self.key(stage), partition_key=partition)

    @property
    def registry(self):
        return self.defs.resources["mlflow"].model_of(self.contract)

    @property
    def mlflow(self):
        return self.defs.resources["mlflow"]


def platform_with_history(
    home: Path, history: Path, instance: dg.DagsterInstance, contract_name: str, **env: str
) -> Platform:
    shutil.copytree(history / "assets", home / "assets")
    shutil.copytree(history / "sources", home / "sources")
    return Platform(home, instance, contract_name, **env)


@pytest.fixture
def platform(tmp_path: Path, feature_history: Path, instance, contract_name: str) -> Platform:
    return platform_with_history(tmp_path / "home", feature_history, instance, contract_name)


@pytest.fixture
def loan(tmp_path: Path, feature_history: Path, instance) -> Platform:
    """The loan example alone, for tests about its synthetic source and scenarios."""
    return platform_with_history(tmp_path / "home", feature_history, instance, "loan_default")


# The loan example's contract, for unit tests of its feature functions and synthetic source.
LOAN = load_contracts(EXAMPLES_DIR / "loan_default.yaml", {"MLOPS_HOME": "/tmp"})[0]


def edited_contracts(folder: Path, name: str, change) -> Path:
    """A copy of the shipped contracts in `folder`, with `change(document)` applied to `name`'s."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for path in EXAMPLES_DIR.glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        if path.stem == name:
            change(document)
        (folder / path.name).write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def performance_day(
    instance: dg.DagsterInstance, key: dg.AssetKey, day: str, **numbers: float | str
) -> None:
    """A day's `model_performance` as the asset records it: `numbers` are its metadata (the gate
    metric, `champion_validation_<metric>`, the task's live numbers...)."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=key,
            partition=day,
            metadata={
                name: dg.MetadataValue.float(value) if isinstance(value, float) else value
                for name, value in numbers.items()
            },
        )
    )


def evaluate_sensor(
    defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorResult:
    """One tick of sensor `name` against `instance`."""
    sensor = defs.get_sensor_def(name)
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return sensor(context)


def write_contract(folder: Path, document: dict) -> Path:
    """A user's contract file in `folder/contracts`, as MLOPS_CONTRACTS would point at it."""
    import yaml

    contracts = folder / "contracts"
    contracts.mkdir(exist_ok=True)
    (contracts / f"{document['name']}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return contracts


def latest_metadata(platform: Platform, stage: str, day: str) -> dict:
    """The metadata of the latest materialization of `stage` for `day`, as plain values."""
    [record] = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=platform.key(stage), asset_partitions=[day]), limit=1
    ).records
    metadata = record.asset_materialization.metadata
    return {name: value.value for name, value in metadata.items()}
