"""When drift triggers retraining: one policy per contract, read by the sensor, the drift check
and the alert rules, so the threshold walks one path.

`retraining_decision` is the sensor's logic as a pure function of what the instance holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlops_assets.contracts import DataContract


@dataclass(frozen=True)
class RetrainingPolicy:
    """Thresholds for drift-triggered retraining: the contract's `drift` section."""

    drift_threshold: float = 0.2  # retrain when the drifted-column share exceeds this
    consecutive_partitions: int = 1  # ...in this many consecutive daily drift reports
    cooldown_hours: float = 0.0  # no new retraining this soon after the last (0: off)
    max_promotions: int = 2  # budget: at most this many drift-triggered promotions...
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
    counts drift-triggered promotions in the policy's budget window.
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
            f"{recent_promotions} drift-triggered promotion(s) in the last {policy.budget_days} "
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
