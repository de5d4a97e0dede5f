"""The code location loads, and its asset graph is what the docs and later stages rely on."""

import dagster as dg
import pytest

from mlops_assets.definitions import DAILY_JOB, INGESTION_JOB, TRAINING_JOB, build_definitions
from mlops_assets.registry.rollback import ROLLBACK_JOB
from mlops_assets.settings import PlatformSettings, SettingsError
from mlops_assets.sources import FileLoanSource, SyntheticLoanSource
from mlops_assets_tests.conftest import make_settings

# A snapshot: renaming or regrouping an asset is a breaking change for users; update it on purpose.
EXPECTED_ASSETS = {
    "raw_loan_applications": "ingestion",
    "rejected_loan_applications": "ingestion",
    "loan_features": "features",
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
}


def test_definitions_load_with_the_expected_assets_and_groups(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_ASSETS
    checks = {key.name for key in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    for job in (INGESTION_JOB, DAILY_JOB, TRAINING_JOB, ROLLBACK_JOB):
        assert isinstance(defs.resolve_job_def(job), dg.JobDefinition)
    spec = graph.get(dg.AssetKey("loan_features"))
    assert spec.partitions_def == dg.DailyPartitionsDefinition(start_date="2026-01-01")
    assert "dagster/column_schema" in spec.metadata
    assert [sensor.name for sensor in defs.sensors] == ["drift_retraining_sensor"]


def test_module_level_defs_load_lazily_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_PARTITIONS_START", "2025-06-01")
    from mlops_assets import defs

    loaded = defs()
    assert (
        loaded.resolve_assets_def("loan_features").partitions_def.start.strftime("%Y-%m-%d")
        == "2025-06-01"
    )


def test_source_is_chosen_by_configuration(tmp_path):
    synthetic = build_definitions(make_settings(tmp_path)).resources["loan_source"]
    assert isinstance(synthetic, SyntheticLoanSource)
    files = build_definitions(
        make_settings(
            tmp_path,
            MLOPS_SOURCE="files",
            MLOPS_SOURCE_URL="s3://landing/loans",
            MLOPS_SOURCE_FORMAT="csv",
        )
    ).resources["loan_source"]
    assert isinstance(files, FileLoanSource)
    assert (files.base_url, files.file_format) == ("s3://landing/loans", "csv")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_SOURCE": "kafka"}, "MLOPS_SOURCE='kafka' is not one of: synthetic, files"),
        ({"MLOPS_SOURCE": "files"}, "MLOPS_SOURCE=files needs MLOPS_SOURCE_URL"),
        (
            {"MLOPS_PARTITIONS_START": "01/02/2026"},
            "MLOPS_PARTITIONS_START='01/02/2026' is not a date",
        ),
        (
            {"MLOPS_SYNTHETIC_ROWS_PER_DAY": "many"},
            "MLOPS_SYNTHETIC_ROWS_PER_DAY='many' is not a valid int",
        ),
        ({"MLOPS_DRIFT_SCENARIO": "income_drop"}, "needs MLOPS_DRIFT_START"),
        (
            {"MLOPS_DRIFT_SCENARIO": "recession"},
            "MLOPS_DRIFT_SCENARIO='recession' is not one of: none, income_drop",
        ),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PlatformSettings.from_env(env)
