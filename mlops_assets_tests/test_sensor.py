"""Each contract's retraining sensor, evaluated against a real Dagster instance holding drift reports."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, StepFailureData
from dagster._core.test_utils import create_run_for_test
from dagster._utils.error import SerializableErrorInfo

from mlops_assets import keys
from mlops_assets.definitions import build_definitions
from mlops_assets.monitoring.policy import DriftObservation, RetrainingPolicy, retraining_decision
from mlops_assets.monitoring.sensors import ACTIVE_STATUSES
from mlops_assets_tests.conftest import make_settings

POLICY_VARIABLES = {
    "drift_threshold": "MLOPS_DRIFT_THRESHOLD",
    "consecutive_partitions": "MLOPS_RETRAIN_CONSECUTIVE",
    "cooldown_hours": "MLOPS_RETRAIN_COOLDOWN_HOURS",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def report(
    instance: dg.DagsterInstance,
    contract: str,
    partition: str,
    share: float,
    version: str = "1",
    rows: int = 2000,
) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey([contract, keys.DRIFT_REPORT]),
            partition=partition,
            metadata={
                "drift_share": dg.MetadataValue.float(share),
                "reference_version": version,
                "current_rows": rows,
            },
        )
    )


def evaluate(home: Path, contract: str, instance, cursor=None, **policy) -> dg.SensorResult:
    """One tick of the contract's sensor, with policy values set as their environment overrides."""
    env = {POLICY_VARIABLES[name]: str(value) for name, value in policy.items()}
    defs = build_definitions(make_settings(home, **env))
    sensor = defs.get_sensor_def(keys.retraining_sensor(contract))
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return sensor(context)


def test_each_contract_has_a_sensor_on_its_own_retraining_assets_off_by_default(
    defs, contract_name
):
    sensor = defs.get_sensor_def(keys.retraining_sensor(contract_name))
    assert sensor.job_name == keys.training_job(contract_name)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    for name in (keys.performance_sensor, keys.late_labels_sensor, keys.rollback_sensor):
        assert defs.get_sensor_def(name(contract_name)).default_status == (
            dg.DefaultSensorStatus.STOPPED
        )
    job = defs.resolve_job_def(keys.training_job(contract_name))
    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == {
        f"{contract_name}/training_set",
        f"{contract_name}/trained_model",
        f"{contract_name}/registered_model_version",
    }


def test_a_drift_report_of_one_contract_never_retrains_another(home, instance):
    report(instance, "loan_default", "2026-01-06", 0.5)
    assert evaluate(home, "loan_default", instance).run_requests
    assert not evaluate(home, "vehicle_crashes", instance).run_requests


def test_no_drift_requests_no_run(home, contract_name, instance):
    report(instance, contract_name, "2026-01-05", 0.1)
    result = evaluate(home, contract_name, instance)
    assert not result.run_requests
    assert "drift share 0.100 <= 0.2" in result.skip_reason.skip_message
    assert result.cursor is not None


def test_drift_above_threshold_requests_exactly_one_run_and_never_twice(
    home, contract_name, instance
):
    report(instance, contract_name, "2026-01-05", 0.0)
    report(instance, contract_name, "2026-01-06", 0.25, version="3")
    first = evaluate(home, contract_name, instance)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.partition_key == "2026-01-06"
    assert request.tags["mlops/trigger"] == "drift"
    assert request.tags["mlops/drift_share"] == "0.2500"
    assert request.tags["mlops/drift_threshold"] == "0.2"
    assert request.tags["mlops/drift_partition"] == "2026-01-06"
    assert request.tags["mlops/reference_version"] == "3"
    assert request.tags["mlops/contract"] == contract_name
    assert request.run_config == {
        "ops": {f"{contract_name}__training_set": {"config": {"since": "2026-01-06"}}}
    }

    # the next tick, resumed from the stored cursor (as after a daemon restart), asks for nothing
    again = evaluate(home, contract_name, instance, cursor=first.cursor)
    assert not again.run_requests
    # even from scratch, the same report yields the same run key, which Dagster launches once
    replay = evaluate(home, contract_name, instance, cursor=None)
    assert [r.run_key for r in replay.run_requests] == [request.run_key]


def test_threshold_is_configuration(home, contract_name, instance):
    report(instance, contract_name, "2026-01-06", 0.25)
    assert not evaluate(home, contract_name, instance, drift_threshold=0.3).run_requests


def test_consecutive_rule_waits_and_trains_from_the_start_of_the_drift(
    home, contract_name, instance
):
    report(instance, contract_name, "2026-01-05", 0.4)
    first = evaluate(home, contract_name, instance, consecutive_partitions=2)
    assert not first.run_requests
    assert "only 1 of 2 consecutive" in first.skip_reason.skip_message
    report(instance, contract_name, "2026-01-06", 0.3)
    second = evaluate(home, contract_name, instance, cursor=first.cursor, consecutive_partitions=2)
    assert [r.partition_key for r in second.run_requests] == ["2026-01-06"]
    assert second.run_requests[0].tags["mlops/training_since"] == "2026-01-05"


def test_a_gap_breaks_the_consecutive_streak(home, contract_name, instance):
    report(instance, contract_name, "2026-01-04", 0.4)
    report(instance, contract_name, "2026-01-06", 0.4)  # no report for the 5th
    assert not evaluate(home, contract_name, instance, consecutive_partitions=2).run_requests


def test_cooldown_after_a_retraining(home, contract_name, instance):
    create_run_for_test(
        instance,
        job_name=keys.training_job(contract_name),
        status=dg.DagsterRunStatus.SUCCESS,
        tags={"mlops/trigger": "drift"},
    )
    report(instance, contract_name, "2026-01-06", 0.5)
    cooling = evaluate(home, contract_name, instance, cooldown_hours=24)
    assert not cooling.run_requests and "cooling down until" in cooling.skip_reason.skip_message
    assert evaluate(home, contract_name, instance, cooldown_hours=0).run_requests  # default: off


@pytest.mark.parametrize(
    "status",
    [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
)
def test_a_retraining_already_queued_or_running_blocks_a_new_one(
    home, contract_name, instance, status
):
    # QUEUED is filtered the same way; the instance only accepts queued runs with a remote origin
    assert dg.DagsterRunStatus.QUEUED in ACTIVE_STATUSES
    create_run_for_test(instance, job_name=keys.training_job(contract_name), status=status)
    report(instance, contract_name, "2026-01-06", 0.5)
    result = evaluate(home, contract_name, instance)
    assert not result.run_requests
    assert "already queued or running" in result.skip_reason.skip_message


def test_one_request_per_tick_even_with_several_drifted_reports(home, contract_name, instance):
    for day in ("2026-01-05", "2026-01-06", "2026-01-07"):
        report(instance, contract_name, day, 0.5)
    result = evaluate(home, contract_name, instance)
    assert [r.partition_key for r in result.run_requests] == ["2026-01-05"]


def test_decision_is_a_pure_function_of_the_reports():
    policy = RetrainingPolicy(drift_threshold=0.2, consecutive_partitions=3)
    now = datetime(2026, 1, 10, tzinfo=UTC)
    today = DriftObservation("2026-01-10", 0.5, 10, "1", rows=2000)
    streak = [
        DriftObservation("2026-01-09", 0.3, 9, "1", rows=2000),
        DriftObservation("2026-01-08", 0.21, 8, "1", rows=2000),
    ]
    decision = retraining_decision(today, iter(streak), policy, False, None, now)
    assert decision.retrain and decision.since == "2026-01-08"
    exactly_at = DriftObservation(
        "2026-01-10", 0.2, 10, "1", rows=2000
    )  # "exceeds": equal is not drift
    assert not retraining_decision(exactly_at, iter(streak), policy, False, None, now).retrain
    cooled = RetrainingPolicy(consecutive_partitions=1, cooldown_hours=1)
    assert retraining_decision(today, [], cooled, False, now - timedelta(hours=2), now).retrain


def test_a_report_deferred_by_a_run_that_then_succeeds_is_answered_not_retrained(home, instance):
    contract = "loan_default"
    running = create_run_for_test(
        instance, job_name=keys.training_job(contract), status=dg.DagsterRunStatus.STARTED
    )
    report(instance, contract, "2026-01-06", 0.5)
    deferred = evaluate(home, contract, instance)
    assert not deferred.run_requests and deferred.cursor == "0"  # stays behind the cursor
    instance.delete_run(running.run_id)
    create_run_for_test(
        instance, job_name=keys.training_job(contract), status=dg.DagsterRunStatus.SUCCESS
    )
    answered = evaluate(home, contract, instance, cursor=deferred.cursor)
    assert not answered.run_requests
    assert "retrained after this report" in answered.skip_reason.skip_message
    assert int(answered.cursor) > 0


def promotion(instance: dg.DagsterInstance, contract: str, trigger: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey([contract, keys.REGISTERED_MODEL_VERSION]),
            partition="2026-01-05",
            metadata={"champion": True, "promoted": True, "trigger": trigger},
        )
    )


def test_the_retraining_budget_stops_a_storm(home, contract_name, instance):
    """At most `drift.max_promotions` (2) drift-triggered promotions in `drift.budget_days`."""
    promotion(instance, contract_name, "drift")
    promotion(instance, contract_name, "manual")  # not drift-triggered: not counted
    report(instance, contract_name, "2026-01-06", 0.5)
    assert evaluate(home, contract_name, instance).run_requests  # 1 of 2 spent
    promotion(instance, contract_name, "drift")
    spent = evaluate(home, contract_name, instance)
    assert not spent.run_requests
    assert (
        "the retraining budget is spent: 2 automatic promotion(s) in the last 7 day(s), "
        "at most 2" in spent.skip_reason.skip_message
    )


def test_drift_that_persists_after_retraining_escalates_instead_of_retraining(
    home, contract_name, instance
):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey([contract_name, keys.DRIFT_REPORT]),
            partition="2026-01-09",
            metadata={
                "drift_share": dg.MetadataValue.float(0.6),
                "reference_version": "4",
                "persists_after_retraining": True,
            },
        )
    )
    result = evaluate(home, contract_name, instance)
    assert not result.run_requests
    assert "retraining did not remove the drift: look at the data" in (
        result.skip_reason.skip_message
    )


def served(
    instance: dg.DagsterInstance,
    day: str,
    roc_auc: float,
    version: str = "3",
    validation: float = 0.80,
    observed: float = 0.20,
    predicted: float = 0.20,
    labelled: int = 400,
    shadow: tuple[str, float] | None = None,
) -> None:
    """A day's `model_performance` of the loan contract, as the asset records it."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(["loan_default", keys.MODEL_PERFORMANCE]),
            partition=day,
            metadata={
                "model_version": version,
                "labelled_rows": labelled,
                "roc_auc": dg.MetadataValue.float(roc_auc),
                "champion_validation_roc_auc": dg.MetadataValue.float(validation),
                "observed_positive_rate": dg.MetadataValue.float(observed),
                "mean_score_labelled": dg.MetadataValue.float(predicted),
                "shadow_version": shadow[0] if shadow else "none",
                "shadow_roc_auc": dg.MetadataValue.float(shadow[1] if shadow else float("nan")),
            },
        )
    )


def evaluate_performance(home: Path, instance, cursor=None) -> dg.SensorResult:
    defs = build_definitions(make_settings(home))
    sensor = defs.get_sensor_def(keys.performance_sensor("loan_default"))
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return sensor(context)


def test_live_performance_below_the_validation_auc_launches_retraining(home, instance):
    """Concept drift: the features did not move, the labels did; three labelled days decide."""
    served(instance, "2026-01-10", 0.64, version="2")  # served by an older champion: not counted
    served(instance, "2026-01-11", 0.66)
    served(instance, "2026-01-12", 0.62)
    early = evaluate_performance(home, instance)
    assert not early.run_requests
    assert "2 of 3 labelled day(s)" in early.skip_reason.skip_message

    served(instance, "2026-01-13", 0.61)
    result = evaluate_performance(home, instance, cursor=early.cursor)
    [request] = result.run_requests
    assert request.partition_key == "2026-01-13"
    assert request.tags["mlops/trigger"] == "performance"
    assert request.tags["mlops/training_since"] == "2026-01-11"
    assert request.run_config == {
        "ops": {"loan_default__training_set": {"config": {"since": "2026-01-11"}}}
    }
    assert (
        "served ROC AUC 0.6300 is below v3's validation ROC AUC 0.8000 by more than 0.0630"
        in (request.tags["mlops/reason"])
    )
    # late labels of a day re-materialize its model_performance: no second run for the same day
    served(instance, "2026-01-13", 0.60)
    again = evaluate_performance(home, instance, cursor=result.cursor)
    assert [r.run_key for r in again.run_requests] == [request.run_key]  # Dagster launches once


def test_miscalibration_alone_launches_retraining_and_good_days_do_not(home, instance):
    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        served(instance, day, 0.79)
    fine = evaluate_performance(home, instance)
    assert not fine.run_requests and "within the policy" in fine.skip_reason.skip_message
    served(instance, "2026-01-14", 0.79, observed=0.45, predicted=0.20)
    served(instance, "2026-01-15", 0.79, observed=0.45, predicted=0.20)
    served(instance, "2026-01-16", 0.79, observed=0.45, predicted=0.20)
    [request] = evaluate_performance(home, instance, cursor=fine.cursor).run_requests
    assert (
        "observed positive rate 0.4500 vs mean predicted probability 0.2000"
        in (request.tags["mlops/reason"])
    )


def test_the_budget_covers_performance_retraining_too(home, instance):
    promotion(instance, "loan_default", "performance")
    promotion(instance, "loan_default", "drift")
    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        served(instance, day, 0.55)
    spent = evaluate_performance(home, instance)
    assert not spent.run_requests
    assert "the retraining budget is spent: 2 automatic promotion(s)" in (
        spent.skip_reason.skip_message
    )


def test_performance_retraining_leaves_drifted_days_to_the_drift_policy(home, instance):
    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        served(instance, day, 0.60)
    report(instance, "loan_default", "2026-01-12", 0.5, version="3")
    result = evaluate_performance(home, instance)
    assert not result.run_requests
    assert "the features drifted on 2026-01-12" in result.skip_reason.skip_message
    assert "left to the drift policy" in result.skip_reason.skip_message


def evaluate_rollback(home: Path, instance, cursor=None) -> dg.SensorResult:
    defs = build_definitions(make_settings(home))
    sensor = defs.get_sensor_def(keys.rollback_sensor("loan_default"))
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return sensor(context)


def test_rollback_needs_enough_shadowed_days_of_the_new_champion_and_a_gap_beyond_the_margin(
    home, instance
):
    served(instance, "2026-01-10", 0.50, version="3", shadow=("2", 0.80))  # before v4: not its
    served(instance, "2026-01-11", 0.77, version="4", shadow=("3", 0.80))
    served(instance, "2026-01-12", 0.77, version="4", shadow=("3", 0.80))
    early = evaluate_rollback(home, instance)
    assert not early.run_requests
    assert "v4 vs v3 in shadow: 2 of 3 labelled day(s)" in early.skip_reason.skip_message

    served(instance, "2026-01-13", 0.79, version="4", shadow=("3", 0.80))
    close = evaluate_rollback(home, instance, cursor=early.cursor)
    assert not close.run_requests  # 0.7767 vs 0.8000: worse, but within the margin
    assert "within 0.0" in close.skip_reason.skip_message


def test_a_new_champion_worse_than_its_shadow_is_rolled_back_once(home, instance):
    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        served(instance, day, 0.62, version="4", shadow=("3", 0.80), labelled=300)
    result = evaluate_rollback(home, instance)
    [request] = result.run_requests
    assert request.run_key == "rollback:v4"
    assert request.tags["mlops/trigger"] == "rollback"
    config = request.run_config["ops"]["loan_default__move_champion_back"]["config"]
    assert (config["to_version"], config["if_champion_is"]) == ("3", "4")
    assert config["reason"].startswith(
        "v4's labelled live ROC AUC 0.6200 vs 0.8000 of v3 (the champion it replaced, scoring in "
        "shadow) on the same 900 rows of 2026-01-11 .. 2026-01-13: worse by more than 0.09"
    )


def test_after_a_retraining_that_left_the_champion_in_place_neither_sensor_retrains_against_it(
    home, instance
):
    """The gates refused the challenger of a drift retraining against v1 (or it was rolled back):
    drift or poor live performance against v1 is not retrained again within the budget window."""
    contract = "loan_default"
    report(instance, contract, "2026-01-06", 0.5, version="1")
    [request] = evaluate(home, contract, instance).run_requests
    assert request.tags["mlops/reference_version"] == "1"
    create_run_for_test(
        instance,
        job_name=keys.training_job(contract),
        status=dg.DagsterRunStatus.SUCCESS,
        tags=request.tags,
    )
    report(instance, contract, "2026-01-07", 0.5, version="1")
    again = evaluate(home, contract, instance)
    assert not again.run_requests
    assert "already retrained against v1 in the last 7 day(s): not again against v1" in (
        again.skip_reason.skip_message
    )
    report(instance, contract, "2026-01-08", 0.5, version="2")  # a new champion: fair game
    assert evaluate(home, contract, instance).run_requests

    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        served(instance, day, 0.55, version="1")
    performance = evaluate_performance(home, instance)
    assert not performance.run_requests
    assert "not again against v1" in performance.skip_reason.skip_message


def failed_run(instance, request: dg.RunRequest, cls_name: str, message: str) -> dg.DagsterRun:
    """A retraining run that failed in its training step with this error, as Dagster records an
    error of its own (an event it could not write) or a step's error after its retries."""
    run = create_run_for_test(
        instance,
        job_name=keys.training_job("loan_default"),
        status=dg.DagsterRunStatus.FAILURE,
        run_config=request.run_config,
        tags={
            **request.tags,
            "dagster/partition": request.partition_key,
            "dagster/failure_reason": "STEP_FAILURE",
        },
    )
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=dg.DagsterEventType.STEP_FAILURE.value,
            job_name=run.job_name,
            step_key="loan_default__trained_model",
            event_specific_data=StepFailureData(
                error=SerializableErrorInfo(message, [], cls_name), user_failure_data=None
            ),
        ),
        run_id=run.run_id,
    )
    return run


def test_a_retraining_that_lost_its_database_is_requested_again_and_settles_nothing(home, instance):
    """PostgreSQL restarted under a drift retraining's step: the sensor requests the same
    retraining again at once (same partition, config and reason; at most three attempts), and
    such a run never counts as "already retrained against v1"."""
    contract = "loan_default"
    report(instance, contract, "2026-01-06", 0.5, version="1")
    first = evaluate(home, contract, instance)
    [request] = first.run_requests
    gone = "(psycopg2.OperationalError) server closed the connection unexpectedly"
    run = failed_run(instance, request, "OperationalError", gone)
    [again] = evaluate(home, contract, instance, cursor=first.cursor).run_requests
    assert (again.partition_key, again.run_config) == (request.partition_key, request.run_config)
    assert again.tags == {**request.tags, keys.RETRY_OF_TAG: run.run_id, keys.ATTEMPT_TAG: "2"}
    second = failed_run(instance, again, "OperationalError", gone)
    [third] = evaluate(home, contract, instance, cursor=first.cursor).run_requests
    assert third.tags[keys.ATTEMPT_TAG] == "3"
    failed_run(instance, third, "OperationalError", gone)
    exhausted = evaluate(home, contract, instance, cursor=first.cursor)
    assert not exhausted.run_requests  # three attempts: a person looks at the database
    assert second.run_id != run.run_id

    # the error of the step's own code is no infrastructure failure: nothing is requested again,
    # and that run settles drift against v1 for the budget window
    report(instance, contract, "2026-01-07", 0.5, version="2")
    [fresh] = evaluate(home, contract, instance, cursor=first.cursor).run_requests
    failed_run(instance, fresh, "KeyError", "'income'")
    assert not evaluate(home, contract, instance, cursor=first.cursor).run_requests
    report(instance, contract, "2026-01-08", 0.5, version="2")
    later = evaluate(home, contract, instance, cursor=first.cursor)
    assert "already retrained against v2" in later.skip_reason.skip_message


def test_performance_retraining_waits_for_a_rollback_that_is_due(home, instance):
    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        served(instance, day, 0.55, version="4", shadow=("3", 0.80))
    result = evaluate_performance(home, instance)
    assert not result.run_requests
    assert "but a rollback comes first: v4's labelled live ROC AUC 0.5500" in (
        result.skip_reason.skip_message
    )


def test_retraining_waits_until_the_drifted_days_hold_enough_rows_to_learn_from(home, instance):
    """300 rows a day: one drifted day is too little data for the new model (and reference)."""
    contract_name = "loan_default"  # drift.min_rows_since: the default 2000
    report(instance, contract_name, "2026-01-06", 0.5, rows=300)
    early = evaluate(home, contract_name, instance)
    assert not early.run_requests
    assert "only 300 rows since then, fewer than drift.min_rows_since=2000" in (
        early.skip_reason.skip_message
    )
    for day in range(7, 13):
        report(instance, contract_name, f"2026-01-{day:02d}", 0.5, rows=300)
    [request] = evaluate(home, contract_name, instance, cursor=early.cursor).run_requests
    assert request.partition_key == "2026-01-12"  # 2,100 rows since 2026-01-06
    assert request.tags["mlops/training_since"] == "2026-01-06"
