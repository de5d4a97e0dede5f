"""A contract's drift retraining sensor: drift reports above the threshold launch its retraining.

Each tick reads the `drift_report` materializations recorded since its cursor (kept by the
instance, so a daemon restart resumes where it stopped), applies `RetrainingPolicy` through
`retraining_decision`, and requests at most one run. The run key names the triggering report, so a
report never launches two runs, even if the cursor is reset. A report deferred because a
retraining run was in flight (or cooling down) stays behind the cursor and is looked at again
on later ticks: once that run has failed (or was failed by run monitoring) the report launches
retraining; once it has succeeded, the report is answered.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.keys import (
    ATTEMPT_TAG,
    CONTRACT_TAG,
    DRIFT_REPORT,
    MODEL_PERFORMANCE,
    REFERENCE_VERSION_TAG,
    REGISTERED_MODEL_VERSION,
    RETRY_OF_TAG,
    TRAINING_SET,
    TRAINING_SINCE_TAG,
    TRIGGER_TAG,
    UNUSABLE_TRAINING_SET,
    failed_on_infrastructure,
    op_name,
    performance_sensor,
    retraining_sensor,
    rollback_op,
    rollback_sensor,
)
from mlops_assets.monitoring.policy import (
    DriftObservation,
    PerformanceObservation,
    RetrainingPolicy,
    performance_decision,
    retraining_decision,
    rollback_decision,
)
from mlops_assets.tasks import Task
from mlops_assets.training.gates import CHALLENGER_VS_CHAMPION

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_retraining_sensor(
    contract: DataContract,
    retraining_job: Any,
    interval_seconds: int,
    running: bool,
) -> dg.SensorDefinition:
    job_name = retraining_job.name
    window_days = contract.spec.training.window_days
    retraining_policy = RetrainingPolicy.of(contract)
    drift_key = contract.key(DRIFT_REPORT)
    registered_key = contract.key(REGISTERED_MODEL_VERSION)
    training_op = op_name(contract.key(TRAINING_SET))

    @dg.sensor(
        name=retraining_sensor(contract.name),
        job=retraining_job,
        minimum_interval_seconds=interval_seconds,
        default_status=_status(running),
        description=(
            f"Launches {job_name} (training set, model, gates, registry) when a drift report's "
            f"drifted-column share exceeds {retraining_policy.drift_threshold} in "
            f"{retraining_policy.consecutive_partitions} consecutive daily report(s)."
        ),
    )
    def drift_retraining_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        retry = infrastructure_retry(instance, job_name, "drift")
        if retry is not None:
            return dg.SensorResult(run_requests=[retry], cursor=context.cursor)
        records = _new_materializations(instance, drift_key, context.cursor)
        if not records:
            return dg.SensorResult(skip_reason="No new drift reports")
        in_flight = _in_flight(instance, job_name)
        last_retraining = instance.get_run_records(
            dg.RunsFilter(job_name=job_name, tags={TRIGGER_TAG: "drift"}), limit=1
        )
        last_at = last_retraining[0].create_timestamp if last_retraining else None
        recent_promotions = automatic_promotions(
            instance, registered_key, retraining_policy.budget_days
        )
        last_success = instance.get_run_records(
            dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
        requests: list[dg.RunRequest] = []
        reasons = []
        cursor = int(context.cursor or 0)
        deferred = False
        for record in records:
            report = _observation(record)
            decision = retraining_decision(
                report,
                _earlier(instance, drift_key, report.partition, window_days),
                retraining_policy,
                retraining_in_flight=in_flight or bool(requests),
                last_retraining_at=last_at,
                now=datetime.now(UTC),
                retrained_by=_succeeded_after(last_success, record.timestamp),
                recent_promotions=recent_promotions,
                retrained_against=_retrained_against(
                    instance, job_name, report.reference_version, retraining_policy.budget_days
                ),
            )
            context.log.info(decision.reason)
            reasons.append(decision.reason)
            deferred = deferred or decision.deferred
            if not deferred:
                cursor = record.storage_id
            if decision.retrain:
                requests.append(
                    dg.RunRequest(
                        run_key=f"drift:{report.partition}:{report.storage_id}",
                        partition_key=report.partition,
                        run_config={"ops": {training_op: {"config": {"since": decision.since}}}},
                        tags={
                            TRIGGER_TAG: "drift",
                            CONTRACT_TAG: contract.name,
                            "mlops/drift_partition": report.partition,
                            "mlops/drift_share": f"{report.drift_share:.4f}",
                            "mlops/drift_threshold": str(retraining_policy.drift_threshold),
                            REFERENCE_VERSION_TAG: report.reference_version,
                            TRAINING_SINCE_TAG: decision.since or "",
                            "mlops/reason": decision.reason[:200],
                        },
                    )
                )
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=str(cursor))
        return dg.SensorResult(skip_reason="; ".join(reasons)[-1000:], cursor=str(cursor))

    return drift_retraining_sensor


def _status(running: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def _new_materializations(
    instance: dg.DagsterInstance, key: dg.AssetKey, cursor: str | None
) -> list[dg.EventLogRecord]:
    """Materializations of `key` recorded after the sensor's cursor (a storage id), oldest first."""
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=int(cursor or 0) or None),
        limit=100,
        ascending=True,
    ).records


def _in_flight(instance: dg.DagsterInstance, job_name: str) -> bool:
    """Whether a run of the retraining job is queued or running."""
    return bool(
        instance.get_run_ids(dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES), limit=1)
    )


# Attempts against one champion while its refused challengers were only within noise of it.
MAX_ATTEMPTS_PER_CHAMPION = 3


def _retrained_against(
    instance: dg.DagsterInstance, job_name: str, version: str, days: int
) -> str | None:
    """A sensor-launched retraining against champion `version` in the last `days` days that
    settles the question (its id): it succeeded (promoted, then rolled back, or refused at
    registration), or it failed in a step because a gate found its challenger clearly worse.
    A challenger refused only within noise of the champion (the paired interval reaches 0), or a
    training set the data could not make yet (one class, too few rows), does not settle it: a
    later drifted day retrains again with more data, up to `MAX_ATTEMPTS_PER_CHAMPION` times.
    A run whose worker died or never started does not count."""
    if not version:
        return None
    records = instance.get_run_records(
        dg.RunsFilter(
            job_name=job_name,
            tags={REFERENCE_VERSION_TAG: version},
            statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
            created_after=datetime.now(UTC) - timedelta(days=days),
        ),
        limit=20,
    )
    attempts = [
        record.dagster_run
        for record in records
        if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        or record.dagster_run.tags.get("dagster/failure_reason") == "STEP_FAILURE"
    ]
    for run in attempts:
        if run.status == dg.DagsterRunStatus.SUCCESS or not _inconclusive(instance, run):
            return run.run_id
    return attempts[0].run_id if len(attempts) >= MAX_ATTEMPTS_PER_CHAMPION else None


def _inconclusive(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether a failed retraining says nothing about the champion: its training set was unusable
    for the data's shape, it failed on infrastructure, or its challenger was refused within noise."""
    for failure in _step_failures(instance, run):
        if failed_on_infrastructure(failure.error) or (
            failure.user_failure_data is not None
            and UNUSABLE_TRAINING_SET in failure.user_failure_data.metadata
        ):
            return True
    return _refused_within_noise(instance, run)


def _step_failures(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[Any]:
    """The `StepFailureData` of each failed step of `run`."""
    return [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]


def _attempt(run: dg.DagsterRun) -> int:
    """Which attempt at its sensor request `run` is (1 unless requested again)."""
    return int(run.tags.get(ATTEMPT_TAG, "1"))


# Attempts at one sensor request whose runs failed on infrastructure (~10 s each to fail).
MAX_INFRASTRUCTURE_ATTEMPTS = 3


def awaits_retry(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the sensor that launched `run` requests it again: it failed because a database or
    the tracking server went away (after its steps' own retries), and attempts remain."""
    if run.status != dg.DagsterRunStatus.FAILURE or run.tags.get(TRIGGER_TAG) not in (
        "drift",
        "performance",
    ):
        return False
    if _attempt(run) >= MAX_INFRASTRUCTURE_ATTEMPTS:
        return False
    return any(failed_on_infrastructure(f.error) for f in _step_failures(instance, run))


def infrastructure_retry(
    instance: dg.DagsterInstance, job_name: str, trigger: str
) -> dg.RunRequest | None:
    """The request again, when the latest `trigger` run of the retraining job failed on
    infrastructure: the drift or performance that asked for it is still unanswered, and a
    database restart must not cost a day (a later report would otherwise retrain)."""
    if _in_flight(instance, job_name):
        return None
    latest = instance.get_run_records(
        dg.RunsFilter(job_name=job_name, tags={TRIGGER_TAG: trigger}), limit=1
    )
    if not latest or not awaits_retry(instance, run := latest[0].dagster_run):
        return None
    return dg.RunRequest(
        run_key=f"retry:{run.run_id}",
        partition_key=run.tags.get("dagster/partition"),
        run_config=run.run_config,
        tags={
            **{name: value for name, value in run.tags.items() if name.startswith("mlops/")},
            RETRY_OF_TAG: run.run_id,
            ATTEMPT_TAG: str(_attempt(run) + 1),
        },
    )


def _refused_within_noise(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the only gate that refused the run's challenger was the comparison with the
    champion, and its paired interval of the gate metric's improvement still reached 0."""
    failed = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        if entry.dagster_event and not entry.dagster_event.event_specific_data.passed
    ]
    if len(failed) != 1 or failed[0].check_name != CHALLENGER_VS_CHAMPION:
        return False
    high = failed[0].metadata.get("change_interval_high")
    return high is not None and float(high.value) >= 0


def _succeeded_after(runs: list[dg.RunRecord], timestamp: float) -> str | None:
    """The id of the latest successful retraining run if it was created after `timestamp`."""
    if runs and runs[0].create_timestamp.timestamp() > timestamp:
        return runs[0].dagster_run.run_id
    return None


def _observation(record: dg.EventLogRecord) -> DriftObservation:
    materialization = record.asset_materialization
    assert materialization is not None and materialization.partition is not None
    metadata = materialization.metadata
    return DriftObservation(
        partition=materialization.partition,
        drift_share=float(metadata["drift_share"].value),
        storage_id=record.storage_id,
        reference_version=str(metadata["reference_version"].value)
        if "reference_version" in metadata
        else "",
        persists_after_retraining=bool(
            metadata["persists_after_retraining"].value
            if "persists_after_retraining" in metadata
            else False
        ),
        rows=int(metadata["current_rows"].value) if "current_rows" in metadata else 0,
    )


# Triggers of the runs the sensors launch; their promotions count against the budget.
AUTOMATIC = ("drift", "performance")


def automatic_promotions(instance: dg.DagsterInstance, key: dg.AssetKey, days: int) -> int:
    """Promotions recorded by `registered_model_version` (`key`) in the last `days` days whose
    run a sensor launched (its `trigger` metadata: drift or performance)."""
    since = datetime.now(UTC) - timedelta(days=days)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_timestamp=since.timestamp()), limit=1000
    ).records
    count = 0
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        promoted = "promoted" in metadata and bool(metadata["promoted"].value)
        if promoted and "trigger" in metadata and metadata["trigger"].value in AUTOMATIC:
            count += 1
    return count


def _earlier(
    instance: dg.DagsterInstance, drift_key: dg.AssetKey, partition: str, window_days: int
) -> Iterator[DriftObservation | None]:
    """The latest report of each preceding day, most recent first, fetched only as far as needed."""
    for record in _latest_of_each_day(instance, drift_key, partition, range(1, window_days)):
        yield _observation(record) if record else None


def _latest_of_each_day(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, offsets: range
) -> Iterator[dg.EventLogRecord | None]:
    """The latest materialization of `key` on each day `offsets` days before `partition`, in
    that order (None for a day without one), fetched lazily."""
    day = date.fromisoformat(partition)
    for offset in offsets:
        yield _latest_of(instance, key, (day - timedelta(days=offset)).isoformat())


def _latest_of(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def build_performance_sensor(
    contract: DataContract,
    retraining_job: Any,
    interval_seconds: int,
    running: bool,
) -> dg.SensorDefinition | None:
    """The contract's performance retraining sensor (None when its `performance` section is off).

    Each tick with new `model_performance` materializations (a new day, or late labels of an
    earlier one) applies `performance_decision` to the latest labelled days served by the current
    champion, and requests at most one retraining run, tagged `mlops/trigger=performance`.
    """
    settings = contract.spec.performance
    if settings is None:
        return None
    policy = RetrainingPolicy.of(contract)
    performance_key = contract.key(MODEL_PERFORMANCE)
    registered_key = contract.key(REGISTERED_MODEL_VERSION)
    drift_key = contract.key(DRIFT_REPORT)
    rollback_on = settings.rollback and settings.watch_days > 0
    training_op = op_name(contract.key(TRAINING_SET))
    window_days = contract.spec.training.window_days
    task, title = contract.task, contract.task.metric.title

    @dg.sensor(
        name=performance_sensor(contract.name),
        job=retraining_job,
        minimum_interval_seconds=interval_seconds,
        default_status=_status(running),
        description=(
            f"Launches {retraining_job.name} when the champion's labelled live {title} is worse "
            f"than its validation {title} beyond margin {settings.margin} and noise, or its "
            f"calibration is off by more than {settings.calibration_band}, over "
            f"{settings.labelled_days} labelled days."
        ),
    )
    def performance_retraining_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        retry = infrastructure_retry(instance, retraining_job.name, "performance")
        if retry is not None:
            return dg.SensorResult(run_requests=[retry], cursor=context.cursor)
        tick = _served_days(instance, performance_key, context.cursor, window_days, task)
        if tick is None:
            return dg.SensorResult(skip_reason="No new model_performance materializations")
        cursor, latest, days = tick
        rollback = rollback_decision(days, settings, task) if rollback_on else None
        decision = performance_decision(
            days,
            settings,
            retraining_in_flight=_in_flight(instance, retraining_job.name),
            recent_promotions=automatic_promotions(instance, registered_key, policy.budget_days),
            policy=policy,
            drift_shares=_drift_shares(instance, drift_key, [day.partition for day in days]),
            retrained_against=_retrained_against(
                instance, retraining_job.name, latest.model_version, policy.budget_days
            ),
            rollback_due=rollback.reason if rollback and rollback.rollback else None,
            task=task,
        )
        context.log.info(decision.reason)
        if not decision.retrain:
            return dg.SensorResult(skip_reason=decision.reason[-1000:], cursor=cursor)
        request = dg.RunRequest(
            run_key=f"performance:v{latest.model_version}:{latest.partition}",
            partition_key=latest.partition,
            run_config={"ops": {training_op: {"config": {"since": decision.since}}}},
            tags={
                TRIGGER_TAG: "performance",
                CONTRACT_TAG: contract.name,
                TRAINING_SINCE_TAG: decision.since or "",
                REFERENCE_VERSION_TAG: latest.model_version,
                "mlops/reason": decision.reason[:200],
            },
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return performance_retraining_sensor


def build_rollback_sensor(
    contract: DataContract,
    rollback_job: Any,
    interval_seconds: int,
    running: bool,
) -> dg.SensorDefinition | None:
    """The contract's automatic rollback (None when its `performance` section or rollback is off).

    After a promotion the previous champion scores every day in shadow (`batch_predictions`).
    Each tick with new `model_performance` materializations applies `rollback_decision` to the
    labelled days the current champion served, and requests the rollback job at most once per
    promoted version; the job moves the alias only if that version is still the champion.
    """
    settings = contract.spec.performance
    if settings is None or not settings.rollback or not settings.watch_days:
        return None
    performance_key = contract.key(MODEL_PERFORMANCE)
    move_op = rollback_op(contract.name)
    task = contract.task

    @dg.sensor(
        name=rollback_sensor(contract.name),
        job=rollback_job,
        minimum_interval_seconds=interval_seconds,
        default_status=_status(running),
        description=(
            f"Runs {rollback_job.name} when, within {settings.watch_days} days of a promotion, "
            f"the new champion's labelled live {task.metric.title} is worse than the previous "
            f"champion's (scored in shadow on the same rows) beyond margin {settings.margin} and "
            f"noise over {settings.labelled_days} labelled days."
        ),
    )
    def rollback_sensor_fn(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        tick = _served_days(
            instance, performance_key, context.cursor, settings.watch_days + 1, task
        )
        if tick is None:
            return dg.SensorResult(skip_reason="No new model_performance materializations")
        cursor, latest, days = tick
        decision = rollback_decision(days, settings, task)
        context.log.info(decision.reason)
        if not decision.rollback or _in_flight(instance, rollback_job.name):
            return dg.SensorResult(skip_reason=decision.reason[-1000:], cursor=cursor)
        request = dg.RunRequest(
            run_key=f"rollback:v{latest.model_version}",
            run_config={
                "ops": {
                    move_op: {
                        "config": {
                            "to_version": decision.to_version,
                            "reason": decision.reason,
                            "if_champion_is": latest.model_version,
                        }
                    }
                }
            },
            tags={
                TRIGGER_TAG: "rollback",
                CONTRACT_TAG: contract.name,
                "mlops/served_version": latest.model_version,
                "mlops/reason": decision.reason[:200],
            },
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return rollback_sensor_fn


def _performance(record: dg.EventLogRecord, task: Task) -> PerformanceObservation:
    materialization = record.asset_materialization
    assert materialization is not None and materialization.partition is not None
    metadata = materialization.metadata
    metric = task.metric.name

    def value(name: str, default: Any = float("nan")) -> Any:
        return metadata[name].value if name in metadata else default

    return PerformanceObservation(
        partition=materialization.partition,
        storage_id=record.storage_id,
        model_version=str(value("model_version", "")),
        labelled_rows=int(value("labelled_rows", 0)),
        value=float(value(metric)),
        champion_validation=float(value(f"champion_validation_{metric}")),
        shadow_version=str(value("shadow_version", "none")),
        shadow_value=float(value(f"shadow_{metric}")),
        validation_rows=int(value("champion_validation_rows", 0)),
        numbers={
            **{name: float(value(name)) for name in task.live_numbers},
            **{
                f"champion_{name}": float(value(f"champion_{name}", 0.0))
                for name in task.champion_numbers
            },
        },
    )


def _latest_per_day(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, window_days: int, task: Task
) -> list[PerformanceObservation]:
    """The latest `model_performance` of each day of the window ending on `partition`, most
    recent first."""
    return [
        _performance(record, task)
        for record in _latest_of_each_day(instance, key, partition, range(window_days))
        if record
    ]


def _served_days(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    cursor: str | None,
    window_days: int,
    task: Task,
) -> tuple[str, PerformanceObservation, list[PerformanceObservation]] | None:
    """For a tick of a `model_performance` sensor: its new cursor, the most recent day among the
    new materializations, and the labelled days (most recent first) the version that served it
    served since it took over; None when nothing is new."""
    new = _new_materializations(instance, key, cursor)
    if not new:
        return None
    latest = max((_performance(record, task) for record in new), key=lambda day: day.partition)
    days = _served_by_latest(_latest_per_day(instance, key, latest.partition, window_days, task))
    return str(new[-1].storage_id), latest, days


def _served_by_latest(days: list[PerformanceObservation]) -> list[PerformanceObservation]:
    """The most recent days (first in `days`) served by the same version, back to the first day
    another version served: what the champion did since it took over, not before."""
    run = days[:1]
    for day in days[1:]:
        if day.model_version != run[0].model_version:
            break
        run.append(day)
    return run


def _drift_shares(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str]
) -> dict[str, float]:
    """The latest drift share of each of `partitions` that has a drift report."""
    records = {partition: _latest_of(instance, key, partition) for partition in partitions}
    return {
        partition: _observation(record).drift_share
        for partition, record in records.items()
        if record is not None
    }
