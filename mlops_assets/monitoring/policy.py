"""When drift triggers retraining: one policy per contract, read by the sensor, the drift check
and the alert rules, so the threshold walks one path.

`retraining_decision` is the sensor's logic as a pure function of what the instance holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.schema import PerformanceSettings
from mlops_assets.tasks import NOISE_SE, Binary, Task


@dataclass(frozen=True)
class RetrainingPolicy:
    """Thresholds for drift-triggered retraining: the contract's `drift` section."""

    drift_threshold: float = 0.2  # retrain when the drifted-column share exceeds this
    consecutive_partitions: int = 1  # ...in this many consecutive daily drift reports
    cooldown_hours: float = 0.0  # no new retraining this soon after the last (0: off)
    max_promotions: int = 2  # budget: at most this many automatic promotions...
    budget_days: int = 7  # ...in this many days
    min_rows_since: int = 2000  # rows delivered since the drift began before retraining on them

    @classmethod
    def of(cls, contract: DataContract) -> RetrainingPolicy:
        drift = contract.spec.drift
        return cls(
            drift.threshold,
            drift.consecutive,
            drift.cooldown_hours,
            drift.max_promotions,
            drift.budget_days,
            drift.min_rows_since,
        )


@dataclass(frozen=True)
class DriftObservation:
    """The latest drift report of one partition, as the sensor sees it."""

    partition: str
    drift_share: float
    storage_id: int
    reference_version: str
    # The champion compared against was itself trained only on data since an earlier drift:
    # another retraining would learn the same data again (see `ESCALATION`).
    persists_after_retraining: bool = False
    rows: int = 0  # rows of the day's features the report compared


ESCALATION = "retraining did not remove the drift: look at the data"


def not_again(run_id: str, version: str, policy: RetrainingPolicy) -> str:
    """Why automation does not retrain against champion `version` again: run `run_id` already
    did within the budget window, and its challenger was clearly worse, failed, or was rolled
    back (or three attempts were refused within noise): retraining on the same data would only
    repeat it; a person looks first."""
    return (
        f"run {run_id} already retrained against v{version} in the last {policy.budget_days} "
        f"day(s): not again against v{version} (if it still serves, that run failed, the gates "
        "refused its challenger, or it was rolled back; look at that run)"
    )


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    since: str | None = None  # first partition of the drifted streak: where retraining data starts
    # Not decided yet (a retraining run in flight, a cooldown): the sensor looks at it again later.
    deferred: bool = False


def retraining_decision(
    report: DriftObservation,
    earlier: Iterable[DriftObservation | None],
    policy: RetrainingPolicy,
    retraining_in_flight: bool,
    last_retraining_at: datetime | None,
    now: datetime,
    retrained_by: str | None = None,
    recent_promotions: int = 0,
    retrained_against: str | None = None,
) -> Decision:
    """Whether `report` should launch retraining.

    `earlier` yields the latest report of each preceding day, most recent first (None where a day
    has no report); it is read only as far as the drifted streak goes, to apply the consecutive
    rule and to find where the drift began. `retrained_by` names a run of the retraining job that
    succeeded after the report was made: that run already answered it. `recent_promotions`
    counts automatic (drift- or performance-triggered) promotions in the budget window.
    `retrained_against` names an automatic retraining against the report's champion that
    succeeded in the budget window without replacing it for good (see `not_again`).
    """
    threshold = policy.drift_threshold
    if report.drift_share <= threshold:
        return Decision(
            False, f"{report.partition}: drift share {report.drift_share:.3f} <= {threshold}"
        )
    if report.persists_after_retraining:
        return Decision(
            False,
            f"{report.partition}: drift share {report.drift_share:.3f} > {threshold} against a "
            f"champion trained only on data since the drift: {ESCALATION} (not retrained)",
        )
    if retrained_by is not None:
        return Decision(
            False,
            f"{report.partition}: drifted, but run {retrained_by} retrained after this report",
        )
    streak, rows = [report.partition], report.rows
    for observation in earlier:
        if observation is None or observation.drift_share <= threshold:
            break
        streak.append(observation.partition)
        rows += observation.rows
    if len(streak) < policy.consecutive_partitions:
        return Decision(
            False,
            f"{report.partition}: drift share {report.drift_share:.3f} > {threshold}, but only "
            f"{len(streak)} of {policy.consecutive_partitions} consecutive drifted partitions",
        )
    if rows < policy.min_rows_since:
        return Decision(
            False,
            f"{report.partition}: drifted since {streak[-1]}, but only {rows} rows since then, "
            f"fewer than drift.min_rows_since={policy.min_rows_since} to learn the new data from",
        )
    if retrained_against is not None:
        return Decision(
            False,
            f"{report.partition}: drifted, but "
            + not_again(retrained_against, report.reference_version, policy),
        )
    if recent_promotions >= policy.max_promotions:
        return Decision(
            False,
            f"{report.partition}: drifted, but the retraining budget is spent: "
            f"{recent_promotions} automatic promotion(s) in the last {policy.budget_days} "
            f"day(s), at most {policy.max_promotions}",
        )
    if retraining_in_flight:
        return Decision(
            False,
            f"{report.partition}: drifted, but a retraining run is already queued or running; "
            "looked at again when it ends",
            deferred=True,
        )
    if policy.cooldown_hours and last_retraining_at is not None:
        ready_at = last_retraining_at + timedelta(hours=policy.cooldown_hours)
        if now < ready_at:
            return Decision(
                False,
                f"{report.partition}: drifted, but cooling down until {ready_at.isoformat()}",
                deferred=True,
            )
    return Decision(
        True,
        f"{report.partition}: drift share {report.drift_share:.3f} > {threshold} for {len(streak)} "
        f"consecutive partition(s) since {streak[-1]}",
        since=streak[-1],
    )


@dataclass(frozen=True)
class PerformanceObservation:
    """The latest `model_performance` of one day, as the performance sensor sees it, in the
    task's gate metric (ROC AUC, RMSE, log loss)."""

    partition: str
    storage_id: int
    model_version: str
    labelled_rows: int
    value: float  # the served model's gate metric on the labelled rows
    champion_validation: float  # the champion's validation value of it
    # The previous champion scoring in shadow after a promotion ("none" otherwise).
    shadow_version: str = "none"
    shadow_value: float = float("nan")
    # Size of the champion's validation set (0: unknown): how noisy its validation metric is.
    validation_rows: int = 0
    # The task's `live_numbers` of the day and `champion_numbers` of the champion (as
    # `champion_<name>`): what its noise and calibration rules read.
    numbers: dict[str, float] = field(default_factory=dict)


def _pooled(window: list[PerformanceObservation], name: str) -> float:
    """A day's number pooled over the window, each day weighted by its labelled rows."""
    rows = sum(day.labelled_rows for day in window)
    return sum(day.numbers.get(name, 0.0) * day.labelled_rows for day in window) / rows


def performance_decision(
    days: list[PerformanceObservation],
    settings: PerformanceSettings,
    retraining_in_flight: bool,
    recent_promotions: int,
    policy: RetrainingPolicy,
    drift_shares: dict[str, float] | None = None,
    retrained_against: str | None = None,
    rollback_due: str | None = None,
    task: Task | None = None,
) -> Decision:
    """Whether the champion's labelled live performance calls for retraining (concept drift).

    `days` are the latest labelled days served by the current champion, most recent first. Over
    the `settings.labelled_days` most recent of them (rows pooled, each day's metric weighted by
    its labelled rows): retrain when the served gate metric of the task (ROC AUC, RMSE, log loss)
    is worse than the champion's validation value by more than `margin` (`Task.margin`) and 3
    standard errors of both, or the task's calibration rule finds the predictions off on average
    (`Task.miscalibration`). The retraining data starts at the earliest of them. A day of the
    window whose drift share (`drift_shares`) is above the drift threshold leaves the decision to
    the drift policy: its consecutive rule, budget and escalation answer it; a rollback the
    rollback policy calls for (`rollback_due`) comes before retraining.
    """
    import math

    task = task or Binary()
    metric = task.metric
    window = [day for day in days if day.labelled_rows > 0][: settings.labelled_days]
    rows = sum(day.labelled_rows for day in window)
    if len(window) < settings.labelled_days or rows < settings.min_labelled_rows:
        return Decision(
            False,
            f"{len(window)} of {settings.labelled_days} labelled day(s), {rows} labelled row(s) "
            f"(at least {settings.min_labelled_rows}): too early to judge live performance",
        )
    version, latest = window[0].model_version, window[0].partition
    served = sum(d.value * d.labelled_rows for d in window if not math.isnan(d.value)) / rows
    champion = window[0]
    validation = champion.champion_validation
    numbers = {name: _pooled(window, name) for name in task.live_numbers}
    champion_numbers = {
        f"champion_{name}": champion.numbers.get(f"champion_{name}", 0.0)
        for name in task.champion_numbers
    }
    span = f"{window[-1].partition} .. {latest}"
    problems = []
    noise = NOISE_SE * math.hypot(
        task.live_error(served, rows, numbers),
        task.validation_error(validation, champion.validation_rows, champion_numbers),
    )
    allowed = max(task.margin(settings.margin, validation), noise)
    if not math.isnan(validation) and metric.improvement(served, validation) < -allowed:
        problems.append(
            f"served {metric.title} {served:.4f} is {'below' if metric.higher_is_better else 'above'}"
            f" v{version}'s validation {metric.title} {validation:.4f} by more than {allowed:.4f}"
        )
    miscalibrated = task.miscalibration(numbers, rows, settings.calibration_band, validation)
    if miscalibrated:
        problems.append(miscalibrated)
    if not problems:
        return Decision(
            False,
            f"v{version} on {span}: served {metric.title} {served:.4f} (validation "
            f"{validation:.4f}), {task.calibration_summary(numbers)}: within the policy",
        )
    reason = f"v{version} on {span} ({rows} labelled rows): " + "; ".join(problems)
    drifted = sorted(
        day.partition
        for day in window
        if (drift_shares or {}).get(day.partition, 0.0) > policy.drift_threshold
    )
    if drifted:
        return Decision(
            False,
            f"{reason}; but the features drifted on {', '.join(drifted)} (share above "
            f"{policy.drift_threshold}): left to the drift policy",
        )
    if rollback_due is not None:
        return Decision(False, f"{reason}; but a rollback comes first: {rollback_due}")
    if retrained_against is not None:
        return Decision(False, f"{reason}; but " + not_again(retrained_against, version, policy))
    if recent_promotions >= policy.max_promotions:
        return Decision(
            False,
            f"{reason}; but the retraining budget is spent: {recent_promotions} automatic "
            f"promotion(s) in the last {policy.budget_days} day(s), at most {policy.max_promotions}",
        )
    if retraining_in_flight:
        return Decision(False, f"{reason}; but a retraining run is already queued or running")
    return Decision(True, reason, since=window[-1].partition)


@dataclass(frozen=True)
class RollbackDecision:
    rollback: bool
    reason: str
    to_version: str | None = None


def rollback_decision(
    days: list[PerformanceObservation], settings: PerformanceSettings, task: Task | None = None
) -> RollbackDecision:
    """Whether a newly promoted champion should give the alias back to the version it replaced.

    `days` are the latest labelled days served by the current champion, most recent first.
    Over the `settings.labelled_days` most recent of them where the previous champion scored
    the same rows in shadow: roll back when the champion's gate metric (each day weighted by its
    labelled rows) is worse than the shadow's by more than `margin` (`Task.margin` of the
    shadow's value) and 3 standard errors.
    """
    import math

    task = task or Binary()
    metric = task.metric
    shadowed = [
        day
        for day in days
        if day.labelled_rows > 0
        and day.shadow_version not in ("", "none")
        and not math.isnan(day.shadow_value)
        and not math.isnan(day.value)
    ]
    if not shadowed:
        return RollbackDecision(False, "no labelled day scored in shadow: nothing to compare")
    shadow = shadowed[0].shadow_version
    window = [day for day in shadowed if day.shadow_version == shadow][: settings.labelled_days]
    rows = sum(day.labelled_rows for day in window)
    version = window[0].model_version
    if len(window) < settings.labelled_days or rows < settings.min_labelled_rows:
        return RollbackDecision(
            False,
            f"v{version} vs v{shadow} in shadow: {len(window)} of {settings.labelled_days} "
            f"labelled day(s), {rows} labelled row(s) (at least {settings.min_labelled_rows}): "
            "too early to compare",
        )
    served = sum(day.value * day.labelled_rows for day in window) / rows
    previous = sum(day.shadow_value * day.labelled_rows for day in window) / rows
    comparison = (
        f"v{version}'s labelled live {metric.title} {served:.4f} vs {previous:.4f} of v{shadow} "
        f"(the champion it replaced, scoring in shadow) on the same {rows} rows of "
        f"{window[-1].partition} .. {window[0].partition}"
    )
    numbers = {name: _pooled(window, name) for name in task.live_numbers}
    # Both scored the same rows: treating them as independent overstates the noise (cautious);
    # the shadow's loss spread is taken as the champion's.
    noise = NOISE_SE * math.hypot(
        task.live_error(served, rows, numbers), task.live_error(previous, rows, numbers)
    )
    allowed = max(task.margin(settings.margin, previous), noise)
    if metric.improvement(served, previous) < -allowed:
        return RollbackDecision(
            True, f"{comparison}: worse by more than {allowed:.4f}", to_version=shadow
        )
    return RollbackDecision(False, f"{comparison}: within {allowed:.4f}")
