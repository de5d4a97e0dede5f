"""The whole loop in one process, for every shipped contract: drift report, sensor, the requested
retraining run, the alias move, and drift back under the threshold against the new champion."""

from datetime import date

import dagster as dg
import pandas as pd
from sklearn.metrics import roc_auc_score

from mlops_assets import keys
from mlops_assets.examples.loan_default_synthetic import DriftScenario, SyntheticLoanGenerator
from mlops_assets_tests.conftest import Platform, platform_with_history, write_crash_files

DRIFT_START = "2026-01-09"
# How each shipped contract drifts from DRIFT_START, and the columns that must show it.
SCENARIOS = {
    "loan_default": (
        {"MLOPS_DRIFT_SCENARIO": "income_drop", "MLOPS_DRIFT_START": DRIFT_START},
        {"annual_income", "debt_to_income"},
    ),
    "vehicle_crashes": ({}, {"dvcat"}),  # high-speed crashes only, from the delivered files
    # the last months' offers: bigger disks and memory (the files shift on DRIFT_START)
    "pc_prices": ({}, {"hd", "ram"}),
    # Nabisco's price cut: its price and its competitors' with it
    "cracker_brands": ({}, {"price_nabisco"}),
}


def metadata(result, stage: str) -> dict:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[-1] == stage:
            return {key: value.value for key, value in materialization.metadata.items()}
    raise AssertionError(f"{stage} was not materialized")


def oracle(platform: Platform, day: str) -> float | None:
    """The best AUC any model could reach (the loan example's generator knows the truth)."""
    if platform.name != "loan_default":
        return None
    features = platform.load("features", day)
    generator = SyntheticLoanGenerator(
        scenario=DriftScenario.INCOME_DROP, scenario_start=pd.Timestamp(DRIFT_START).date()
    )
    label = platform.contract.label_column
    return roc_auc_score(features[label].astype(int), generator.true_default_probability(features))


def test_drift_triggers_retraining_that_promotes_a_champion_fitting_the_new_data(
    tmp_path, feature_history, instance, contract_name
):
    env, drifting_columns = SCENARIOS[contract_name]
    home = tmp_path / "home"
    platform = platform_with_history(
        home,
        feature_history,
        instance,
        contract_name,
        **env,
        MLOPS_RETRAIN_CONSECUTIVE="2",
        MLOPS_GATE_MIN_ABSOLUTE_CHANGE="-0.03",  # two days of drifted data vs eight of history
    )
    write_crash_files(home, drift_start=date.fromisoformat(DRIFT_START))
    assert platform.run("train_and_register", "2026-01-08").success
    assert str(platform.registry.champion().version) == "1"
    sensor = platform.defs.get_sensor_def(keys.retraining_sensor(contract_name))
    metric = platform.contract.task.metric.name  # the served metric the gates compare
    cursor = None
    served = {}

    for day in ("2026-01-09", "2026-01-10"):
        daily = platform.run("daily_lifecycle", day)
        assert daily.success
        drift = metadata(daily, "drift_report")
        assert drift["drift_share"] > 0.2 and drift["reference_version"] == "1"
        assert drift["verdicts"] == "noise_aware" and "held_back_as_noise" in drift
        report = platform.load("drift_report", day)
        assert drifting_columns <= set(report.query("drifted")["column"]), report.query("drifted")
        served[day] = metadata(daily, "model_performance")[metric]
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=platform.defs
        ) as context:
            result = sensor(context)
        cursor = result.cursor
    assert len(result.run_requests) == 1  # on the second drifted day
    request = result.run_requests[0]
    assert request.tags["mlops/training_since"] == DRIFT_START

    retraining = platform.defs.resolve_job_def(keys.training_job(contract_name)).execute_in_process(
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

    after = platform.run("daily_lifecycle", "2026-01-11")
    assert after.success
    drift = metadata(after, "drift_report")
    assert drift["reference_version"] == "2"
    assert drift["drift_share"] <= 0.2  # the new champion's reference is the drifted population
    assert metadata(after, "batch_predictions")["model_version"] == "2"
    retrained = metadata(after, "model_performance")[metric]
    print(
        f"{contract_name}: stale champion {metric} (oracle AUC) on drifted days:",
        {day: (round(value, 4), oracle(platform, day)) for day, value in served.items()},
        "retrained:", (round(retrained, 4), oracle(platform, "2026-01-11")),
    )  # fmt: skip
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=platform.defs
    ) as context:
        assert not sensor(context).run_requests


def test_drift_against_a_champion_trained_after_the_drift_escalates_instead_of_retraining(
    tmp_path, feature_history, instance
):
    """The champion was trained by a drift-triggered run on data since the drift; the data still
    drifts against it: the drift report's warning check fails with the escalation, and its metadata
    tells the sensor not to retrain."""
    env, _ = SCENARIOS["loan_default"]
    platform = platform_with_history(
        tmp_path / "home", feature_history, instance, "loan_default", **env
    )
    drift_trained = {"mlops/trigger": "drift", "mlops/training_since": "2026-01-05"}
    trained = platform.defs.resolve_job_def(keys.training_job("loan_default")).execute_in_process(
        partition_key="2026-01-08", instance=instance, tags=drift_trained
    )
    assert trained.success
    version = platform.registry.champion()
    assert version.tags["mlops/trigger"] == "drift"
    assert version.tags["mlops/training_since"] == "2026-01-05"

    daily = platform.run("daily_lifecycle", DRIFT_START)
    drift = metadata(daily, "drift_report")
    assert drift["drift_share"] > 0.2 and drift["persists_after_retraining"] is True
    check = next(
        evaluation
        for evaluation in daily.get_asset_check_evaluations()
        if evaluation.check_name == "retraining_removed_drift"
    )
    assert not check.passed
    assert check.description.startswith(
        "retraining did not remove the drift: look at the data: drift share"
    )
    sensor = platform.defs.get_sensor_def(keys.retraining_sensor("loan_default"))
    with dg.build_sensor_context(instance=instance, definitions=platform.defs) as context:
        result = sensor(context)
    assert not result.run_requests
    assert "look at the data" in result.skip_reason.skip_message


def test_a_promotion_that_does_worse_live_than_the_champion_it_replaced_is_rolled_back(
    tmp_path, feature_history, instance
):
    """An upstream bug inverted the labels of the history; a challenger trained on them passes
    every gate (its validation rows are inverted too) and is promoted. Live labels are right
    again: the previous champion, scoring in shadow, does far better on the same rows, and the
    rollback sensor gives it the alias back, saying why."""
    platform = platform_with_history(tmp_path / "home", feature_history, instance, "loan_default")
    assert platform.run("train_and_register", "2026-01-08").success
    label = platform.contract.label_column
    folder = tmp_path / "home" / "assets" / "loan_default" / "features"
    for path in folder.glob("2026-01-0*.parquet"):
        frame = pd.read_parquet(path)
        frame[label] = (1 - frame[label]).astype("Int8")
        frame.to_parquet(path)
    assert platform.run("train_and_register", "2026-01-08").success
    assert str(platform.registry.champion().version) == "2"

    sensor = platform.defs.get_sensor_def(keys.rollback_sensor("loan_default"))
    cursor = None
    for day in ("2026-01-09", "2026-01-10", "2026-01-11"):
        daily = platform.run("daily_lifecycle", day)
        assert daily.success
        scored = platform.load("batch_predictions", day)
        assert set(scored["model_version"]) == {"2"} and set(scored["shadow_version"]) == {"1"}
        assert scored["shadow_score"].between(0, 1).all()
        performance = metadata(daily, "model_performance")
        assert performance["shadow_version"] == "1"
        assert performance["shadow_roc_auc"] > performance["roc_auc"] + 0.3
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=platform.defs
        ) as context:
            result = sensor(context)
        cursor = result.cursor
        if day < "2026-01-11":
            assert not result.run_requests  # three labelled days decide
    [request] = result.run_requests
    assert request.tags["mlops/trigger"] == "rollback"
    config = request.run_config["ops"][keys.rollback_op("loan_default")]["config"]
    assert (config["to_version"], config["if_champion_is"]) == ("1", "2")

    rollback = platform.defs.resolve_job_def(keys.rollback_job("loan_default")).execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance
    )
    assert rollback.success
    assert str(platform.registry.champion().version) == "1"
    last = platform.registry.alias_history()[-1]
    assert (last["previous_version"], last["new_version"]) == ("2", "1")
    assert last["reason"].startswith("rollback: v2's labelled live ROC AUC")
    assert "scoring in shadow" in last["reason"] and "worse by more than 0." in last["reason"]

    # the same request again (a cursor reset) changes nothing: v1 is no longer v2
    again = platform.defs.resolve_job_def(keys.rollback_job("loan_default")).execute_in_process(
        run_config=request.run_config, instance=instance
    )
    assert again.success and str(platform.registry.champion().version) == "1"
    assert platform.registry.alias_history()[-1] == last

    # the restored champion scores alone; nothing is rolled back again
    after = platform.run("daily_lifecycle", "2026-01-12")
    assert after.success
    assert set(
        platform.load("batch_predictions", "2026-01-12")["shadow_version"].fillna("none")
    ) == {"none"}
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=platform.defs
    ) as context:
        assert not sensor(context).run_requests
