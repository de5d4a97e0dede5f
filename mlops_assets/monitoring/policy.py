"""When drift triggers retraining: one policy per contract, read by the sensor, the drift check
and the alert rules, so the threshold walks one path.

`retraining_decision` is the sensor's logic as a pure function of what the instance holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.schema import PerformanceSettings


@dataclass(frozen=True)
class RetrainingPolicy:
    """Thresholds for drift-triggered retraining: the contract's `drift` section."""

    drift_threshold: float = 0.2  # retrain when the drifted-column share exceeds this
    consecutive_partitions: int = 1  # ...in this many consecutive daily drift reports
    cooldown_hours: float = 0.0  # no new retraining this soon after the last (0: off)
    max_promotions: int = 2  # budget: at most this many automatic promotions...
    budget_days: int = 7  # ...in this many days

    @classmethod
    def of(cls, contract: DataContract) -> RetrainingPolicy:
        drift = contract.spec.drift
        return cls(
            drift.threshold,
            drift.consecutive,
            drift.cooldown_hours,
            drift.max_promotions,
            drift.budget_days,
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


ESCALATION = "retraining did not remove the drift: look at the data"


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
) -> Decision:
    """Whether `report` should launch retraining.

    `earlier` yields the latest report of each preceding day, most recent first (None where a day
    has no report); it is read only as far as the drifted streak goes, to apply the consecutive
    rule and to find where the drift began. `retrained_by` names a run of the retraining job that
    succeeded after the report was made: that run already answered it. `recent_promotions`
    counts automatic (drift- or performance-triggered) promotions in the budget window.
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
    streak = [report.partition]
    for observation in earlier:
        if observation is None or observation.drift_share <= threshold:
            break
        streak.append(observation.partition)
    if len(streak) < policy.consecutive_partitions:
        return Decision(
            False,
            f"{report.partition}: drift share {report.drift_share:.3f} > {threshold}, but only "
            f"{len(streak)} of {policy.consecutive_partitions} consecutive drifted partitions",
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
    """The latest `model_performance` of one day, as the performance sensor sees it."""

    partition: str
    storage_id: int
    model_version: str
    labelled_rows: int
    roc_auc: float
    champion_validation_roc_auc: float
    observed_positive_rate: float
    mean_score: float


def performance_decision(
    days: list[PerformanceObservation],
    settings: PerformanceSettings,
    retraining_in_flight: bool,
    recent_promotions: int,
    policy: RetrainingPolicy,
) -> Decision:
    """Whether the champion's labelled live performance calls for retraining (concept drift).

    `days` are the latest labelled days served by the current champion, most recent first. Over
    the `settings.labelled_days` most recent of them (rows pooled, each day's ROC AUC weighted by
    its labelled rows): retrain when the served ROC AUC is below the champion's validation ROC
    AUC by more than `margin`, or the observed positive rate and the mean predicted probability
    differ by more than `calibration_band`. The retraining data starts at the earliest of them.
    """
    import math

    window = [day for day in days if day.labelled_rows > 0][: settings.labelled_days]
    rows = sum(day.labelled_rows for day in window)
    if len(window) < settings.labelled_days or rows < settings.min_labelled_rows:
        return Decision(
            False,
            f"{len(window)} of {settings.labelled_days} labelled day(s), {rows} labelled row(s) "
            f"(at least {settings.min_labelled_rows}): too early to judge live performance",
        )
    version, latest = window[0].model_version, window[0].partition
    served = sum(d.roc_auc * d.labelled_rows for d in window if not math.isnan(d.roc_auc)) / rows
    validation = window[0].champion_validation_roc_auc
    observed = sum(d.observed_positive_rate * d.labelled_rows for d in window) / rows
    predicted = sum(d.mean_score * d.labelled_rows for d in window) / rows
    span = f"{window[-1].partition} .. {latest}"
    problems = []
    if not math.isnan(validation) and served < validation - settings.margin:
        problems.append(
            f"served ROC AUC {served:.4f} is below v{version}'s validation ROC AUC "
            f"{validation:.4f} by more than {settings.margin}"
        )
    if abs(observed - predicted) > settings.calibration_band:
        problems.append(
            f"observed positive rate {observed:.4f} vs mean predicted probability "
            f"{predicted:.4f}: off by more than {settings.calibration_band}"
        )
    if not problems:
        return Decision(
            False,
            f"v{version} on {span}: served ROC AUC {served:.4f} (validation {validation:.4f}), "
            f"observed rate {observed:.4f} vs predicted {predicted:.4f}: within the policy",
        )
    reason = f"v{version} on {span} ({rows} labelled rows): " + "; ".join(problems)
    if recent_promotions >= policy.max_promotions:
        return Decision(
            False,
            f"{reason}; but the retraining budget is spent: {recent_promotions} automatic "
            f"promotion(s) in the last {policy.budget_days} day(s), at most {policy.max_promotions}",
        )
    if retraining_in_flight:
        return Decision(False, f"{reason}; but a retraining run is already queued or running")
    return Decision(True, reason, since=window[-1].partition)
