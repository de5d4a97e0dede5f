"""The code location loads one lifecycle per contract, and its asset graph is what the docs rely on."""

from pathlib import Path

import dagster as dg
import yaml

from mlops_assets import keys
from mlops_assets.definitions import build_definitions
from mlops_assets.examples import EXAMPLES_DIR
from mlops_assets.examples.loan_default_synthetic import SyntheticLoanSource
from mlops_assets.ingestion.sources import FileSource
from mlops_assets_tests.conftest import SHIPPED, make_settings

# A snapshot: renaming or regrouping an asset is a breaking change for users; update it on purpose.
EXPECTED_STAGES = {
    "raw": "ingestion",
    "rejected": "ingestion",
    "features": "features",
    "training_set": "training",
    "trained_model": "training",
    "registered_model_version": "registry",
    "drift_report": "monitoring",
    "batch_predictions": "serving",
    "model_performance": "serving",
}
EXPECTED_CHECKS = {
    "accepted_rows_match_contract",
    "row_count_at_least_minimum",
    "rejected_share_below_limit",
    "quality_floor",
    "challenger_not_worse_than_champion",
    "bias_gap_within_limit",
    "drift_share_within_threshold",
    "retraining_removed_drift",
}
EXPECTED_ASSETS = {
    f"{contract}/{stage}": contract for contract in SHIPPED for stage in EXPECTED_STAGES
}


def test_one_lifecycle_per_shipped_contract(defs: dg.Definitions):
    assert SHIPPED == ["cracker_brands", "loan_default", "pc_prices", "vehicle_crashes"]
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_ASSETS
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.tags["stage"] == EXPECTED_STAGES[key.path[-1]]
        assert spec.owners, key
    checks = {(key.asset_key.path[0], key.name) for key in graph.asset_check_keys}
    assert checks == {(contract, check) for contract in SHIPPED for check in EXPECTED_CHECKS}
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert jobs == {
        job(contract)
        for contract in SHIPPED
        for job in (keys.ingestion_job, keys.daily_job, keys.training_job, keys.rollback_job)
    }
    assert {sensor.name for sensor in defs.sensors} == {
        name(contract)
        for contract in SHIPPED
        for name in (
            keys.retraining_sensor,
            keys.performance_sensor,
            keys.late_labels_sensor,
            keys.rollback_sensor,
        )
    }
    spec = graph.get(dg.AssetKey(["loan_default", "features"]))
    assert spec.partitions_def == dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assert "dagster/column_schema" in spec.metadata


def test_jobs_select_only_their_own_contract(defs: dg.Definitions, contract_name: str):
    daily = defs.resolve_job_def(keys.daily_job(contract_name))
    selected = {key.to_user_string() for key in daily.asset_layer.selected_asset_keys}
    assert selected == {
        f"{contract_name}/{stage}"
        for stage in (
            "raw",
            "rejected",
            "features",
            "drift_report",
            "batch_predictions",
            "model_performance",
        )
    }


def test_module_level_defs_load_lazily_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_PARTITIONS_START", "2025-06-01")
    from mlops_assets import defs

    loaded = defs()
    start = loaded.resolve_assets_def(
        dg.AssetKey(["loan_default", "features"])
    ).partitions_def.start
    assert start.strftime("%Y-%m-%d") == "2025-06-01"


def test_sources_come_from_the_contracts(tmp_path):
    defs = build_definitions(make_settings(tmp_path, MLOPS_SYNTHETIC_ROWS_PER_DAY="123"))
    synthetic = defs.resources["loan_default_source"]
    assert isinstance(synthetic, SyntheticLoanSource) and synthetic.rows_per_day == 123
    files = defs.resources["vehicle_crashes_source"]
    assert isinstance(files, FileSource)
    assert (files.base_url, files.file_format) == (
        str(tmp_path / "sources" / "vehicle_crashes"),
        "csv",
    )
    moved = build_definitions(
        make_settings(tmp_path, MLOPS_VEHICLE_CRASHES_URL="s3://landing/crashes")
    ).resources["vehicle_crashes_source"]
    assert moved.base_url == "s3://landing/crashes"


def test_adding_a_model_is_adding_a_file(tmp_path: Path):
    """One more contract in the folder gets its own assets, jobs and sensor, and no one else's."""
    folder = tmp_path / "contracts"
    folder.mkdir()
    for path in EXAMPLES_DIR.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    third = yaml.safe_load((EXAMPLES_DIR / "loan_default.yaml").read_text())
    third.update(name="loan_default_eu")
    third["model"].update(name="loan-default-eu", experiment="loan-default-eu")
    (folder / "loan_default_eu.yaml").write_text(yaml.safe_dump(third))
    defs = build_definitions(make_settings(tmp_path, MLOPS_CONTRACTS=str(folder)))
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey(["loan_default_eu", "drift_report"]) in graph.get_all_asset_keys()
    assert len(graph.get_all_asset_keys()) == (len(SHIPPED) + 1) * len(EXPECTED_STAGES)
    assert defs.get_sensor_def(keys.retraining_sensor("loan_default_eu"))
    assert isinstance(defs.resources["loan_default_eu_source"], SyntheticLoanSource)
