"""The whole loop in one process: drift report, sensor, the requested retraining run, the alias move."""

import shutil

import dagster as dg
import pandas as pd
from sklearn.metrics import roc_auc_score

from mlops_assets.definitions import DAILY_JOB, TRAINING_JOB
from mlops_assets.monitoring.sensors import RETRAINING_SENSOR
from mlops_assets.sources.synthetic import DriftScenario, SyntheticLoanGenerator
from mlops_assets_tests.conftest import Platform

DRIFT_START = "2026-01-09"


def metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return {key: value.value for key, value in materialization.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def oracle(platform: Platform, day: str) -> float:
    features = pd.read_parquet(
        platform.settings.home / "assets" / "loan_features" / f"{day}.parquet"
    )
    generator = SyntheticLoanGenerator(
        scenario=DriftScenario.INCOME_DROP, scenario_start=pd.Timestamp(DRIFT_START).date()
    )
    return roc_auc_score(
        features["defaulted"].astype(int), generator.true_default_probability(features)
    )


def test_drift_triggers_retraining_that_promotes_a_champion_fitting_the_new_data(
    tmp_path, feature_history, instance
):
    shutil.copytree(feature_history, tmp_path / "home" / "assets")
    platform = Platform(
        tmp_path / "home",
        instance,
        MLOPS_DRIFT_SCENARIO="income_drop",
        MLOPS_DRIFT_START=DRIFT_START,
        MLOPS_RETRAIN_CONSECUTIVE="2",
        MLOPS_GATE_MIN_ABSOLUTE_CHANGE="-0.03",  # two days of drifted data vs eight of history
    )
    assert platform.run(TRAINING_JOB, "2026-01-08").success
    assert str(platform.registry.champion().version) == "1"
    sensor = platform.defs.get_sensor_def(RETRAINING_SENSOR)
    policy = {"retraining_policy": platform.defs.resources["retraining_policy"]}
    cursor = None
    served = {}

    for day in ("2026-01-09", "2026-01-10"):
        daily = platform.run(DAILY_JOB, day)
        assert daily.success
        drift = metadata(daily, "drift_report")
        assert drift["drift_share"] > 0.2 and drift["reference_version"] == "1"
        assert {"annual_income", "debt_to_income"} <= set(
            pd.read_parquet(
                platform.settings.home / "assets" / "drift_report" / f"{day}.parquet"
            ).query("drifted")["column"]
        )
        served[day] = metadata(daily, "model_performance")["roc_auc"]
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=policy) as context:
            result = sensor(context)
        cursor = result.cursor
    assert len(result.run_requests) == 1  # on the second drifted day
    request = result.run_requests[0]
    assert request.tags["mlops/training_since"] == DRIFT_START

    retraining = platform.defs.resolve_job_def(TRAINING_JOB).execute_in_process(
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
    )
    assert retraining.success
    registered = metadata(retraining, "registered_model_version")
    assert (registered["version"], registered["champion"], registered["previous_champion"]) == (
        "2",
        True,
        "1",
    )
    assert "retrained after drift share" in registered["reason"]
    assert platform.registry.alias_history()[-1]["dagster_run_id"] == retraining.run_id
    training_set = metadata(retraining, "training_set")
    assert (
        training_set["window"] == "2026-01-01 .. 2026-01-10"
        and training_set["since"] == DRIFT_START
    )

    after = platform.run(DAILY_JOB, "2026-01-11")
    assert after.success
    drift = metadata(after, "drift_report")
    assert drift["reference_version"] == "2"
    assert drift["drift_share"] <= 0.2  # the new champion's reference is the drifted population
    assert metadata(after, "batch_predictions")["model_version"] == "2"
    retrained_auc = metadata(after, "model_performance")["roc_auc"]
    print(
        "stale champion AUC on drifted days:",
        {day: (round(auc, 4), round(oracle(platform, day), 4)) for day, auc in served.items()},
        "retrained:", (round(retrained_auc, 4), round(oracle(platform, "2026-01-11"), 4)),
    )  # fmt: skip
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=policy) as context:
        assert not sensor(context).run_requests
