"""Training, gates, registration, promotion and rollback through Dagster, on a real local MLflow store."""

import shutil
import socket

import dagster as dg
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from mlops_assets.contract import LOAN_APPLICATIONS
from mlops_assets.definitions import TRAINING_JOB
from mlops_assets.registry.rollback import ROLLBACK_JOB
from mlops_assets.sources.synthetic import SyntheticLoanGenerator
from mlops_assets_tests.conftest import Platform

DAY = "2026-01-08"
GATES = {"quality_floor", "challenger_not_worse_than_champion", "bias_gap_within_limit"}
BAD_MODEL = {
    "ops": {"trained_model": {"config": {"max_iter": 1, "max_depth": 1, "learning_rate": 0.01}}}
}


def checks(result) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def materialized(result) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def card(platform: Platform, asset: str) -> pd.Series:
    return pd.read_parquet(platform.settings.home / "assets" / asset / f"{DAY}.parquet").iloc[0]


def test_first_model_is_tracked_gated_registered_and_promoted(platform: Platform):
    result = platform.run(TRAINING_JOB, DAY)
    assert result.success
    assert checks(result) == dict.fromkeys(GATES, True)
    model = card(platform, "trained_model")

    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    run = client.get_run(model["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster/run_id"] == result.run_id
    assert run.data.tags["dagster_run_id"] == result.run_id  # set by dagster-mlflow
    assert run.data.tags["dagster/partition"] == DAY
    assert run.data.tags["training_window"] == f"2026-01-01 .. {DAY}"
    assert run.data.params["learning_rate"] == "0.03"
    for metric in ("roc_auc", "pr_auc", "brier", "log_loss"):
        assert f"validation_{metric}" in run.data.metrics
    assert run.data.metrics["validation_roc_auc"] == pytest.approx(model["roc_auc"])
    info = mlflow.models.get_model_info(model["model_uri"])
    assert info.signature.inputs.input_names() == LOAN_APPLICATIONS.feature_columns
    assert info.saved_input_example_info is not None
    reference = pd.read_parquet(mlflow.artifacts.download_artifacts(model["reference_uri"]))
    assert list(reference.columns) == ["applied_at", *LOAN_APPLICATIONS.feature_columns]
    assert len(reference) == model["train_rows"]
    assert (
        str(platform.settings.home / "mlflow" / "artifacts") in run.info.artifact_uri
    )  # not ./mlruns

    # the model is near the best any model could do on these rows: the generator's true probability
    training_set = pd.read_parquet(
        platform.settings.home / "assets" / "training_set" / f"{DAY}.parquet"
    )
    validation = training_set[training_set["split"] == "validation"]
    oracle = roc_auc_score(
        validation["defaulted"].astype(int),
        SyntheticLoanGenerator().true_default_probability(validation),
    )
    print(f"validation ROC AUC {model['roc_auc']:.4f}, oracle {oracle:.4f}")
    assert model["roc_auc"] >= oracle - 0.02

    version = card(platform, "registered_model_version")
    assert (version["version"], version["champion"], version["previous_champion"]) == (
        "1",
        True,
        "none",
    )
    champion = platform.registry.champion()
    assert str(champion.version) == "1" and champion.run_id == model["run_id"]
    assert champion.tags["gates_passed"] == "true"
    assert champion.tags["champion/dagster_run_id"] == result.run_id
    history = platform.registry.alias_history()
    assert [(move["previous_version"], move["new_version"]) for move in history] == [(None, "1")]
    event = platform.instance.get_latest_materialization_event(
        dg.AssetKey("trained_model")
    ).asset_materialization
    assert event.metadata["mlflow_run"].value.endswith(f"/runs/{model['run_id']}")


def test_retraining_is_reproducible_and_rollback_restores_the_previous_champion(platform: Platform):
    assert platform.run(TRAINING_JOB, DAY).success
    first = card(platform, "trained_model")
    second_run = platform.run(TRAINING_JOB, DAY)
    assert second_run.success
    second = card(platform, "trained_model")
    assert second["run_id"] != first["run_id"]
    for metric in ("roc_auc", "pr_auc", "brier", "log_loss"):
        assert second[metric] == first[metric]  # same data and config, same model
    assert str(platform.registry.champion().version) == "2"

    rollback = platform.run(
        ROLLBACK_JOB,
        run_config={"ops": {"move_champion_back": {"config": {"reason": "bad outputs"}}}},
    )
    assert rollback.success
    assert str(platform.registry.champion().version) == "1"
    last = platform.registry.alias_history()[-1]
    assert (last["previous_version"], last["new_version"]) == ("2", "1")
    assert last["reason"] == "rollback: bad outputs" and last["dagster_run_id"] == rollback.run_id
    observation = next(
        event for event in rollback.all_events if event.event_type_value == "ASSET_OBSERVATION"
    )
    assert observation.event_specific_data.asset_observation.metadata["champion"].value == "1"

    to_two = {"ops": {"move_champion_back": {"config": {"to_version": "2", "reason": "fixed"}}}}
    assert platform.run(ROLLBACK_JOB, run_config=to_two).success
    assert str(platform.registry.champion().version) == "2"

    missing = {"ops": {"move_champion_back": {"config": {"to_version": "99", "reason": "typo"}}}}
    refused = platform.run(ROLLBACK_JOB, run_config=missing)
    assert not refused.success
    failure = next(event for event in refused.all_events if event.is_step_failure)
    assert failure.step_failure_data.user_failure_data.description == (
        "Model version 99 of 'loan-default-classifier' does not exist; existing versions: 1, 2"
    )
    assert str(platform.registry.champion().version) == "2"


def test_a_deliberately_bad_model_is_not_promoted(platform: Platform):
    assert platform.run(TRAINING_JOB, DAY).success
    bad = platform.run(TRAINING_JOB, DAY, run_config=BAD_MODEL)
    assert not bad.success
    gates = checks(bad)
    assert gates["quality_floor"] is False
    assert gates["challenger_not_worse_than_champion"] is False
    assert "registered_model_version" not in materialized(
        bad
    )  # the blocking gates stop the registry
    assert str(platform.registry.champion().version) == "1"

    # registering it on purpose later keeps it out of the champion slot, tagged with why
    registered = platform.materialize(["registered_model_version"], DAY)
    assert registered.success
    version = card(platform, "registered_model_version")
    assert (version["version"], version["champion"]) == ("2", False)
    tags = platform.registry.client().get_model_version("loan-default-classifier", "2").tags
    assert tags["gates_passed"] == "false"
    assert (
        "validation ROC AUC" in tags["gate_failures"] and "< floor 0.7000" in tags["gate_failures"]
    )
    assert str(platform.registry.champion().version) == "1"


def test_bias_gate_blocks_promotion(tmp_path, feature_history, instance):
    shutil.copytree(feature_history, tmp_path / "home" / "assets")
    platform = Platform(tmp_path / "home", instance, MLOPS_GATE_MAX_BIAS_GAP="0.01")
    result = platform.run(TRAINING_JOB, DAY)
    assert not result.success
    assert checks(result) == {
        "quality_floor": True,
        "challenger_not_worse_than_champion": True,
        "bias_gap_within_limit": False,
    }
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "bias_gap_within_limit"
    )
    assert evaluation.metadata["gap"].value > 0.01
    assert set(evaluation.metadata["by_group"].value) >= {"RENT", "MORTGAGE", "OWN"}
    assert platform.registry.champion() is None


def test_unreachable_tracking_server_fails_clearly_and_is_retried(
    tmp_path, feature_history, instance
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shutil.copytree(feature_history, tmp_path / "home" / "assets")
    uri = f"http://127.0.0.1:{port}"
    platform = Platform(tmp_path / "home", instance, MLFLOW_TRACKING_URI=uri)
    result = platform.run(TRAINING_JOB, DAY)
    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures and f"MLflow tracking server {uri} is unreachable" in str(
        failures[-1].step_failure_data.error
    )
    restarts = [event for event in result.all_events if event.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 4
    assert "registered_model_version" not in materialized(result)
