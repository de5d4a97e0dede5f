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
    """The latest `model_performance` of one day, as the performance sensor sees it."""

    partition: str
    storage_id: int
    model_version: str
    labelled_rows: int
    roc_auc: float
    champion_validation_roc_auc: float
    observed_positive_rate: float
    mean_score: float
    # The previous champion scoring in shadow after a promotion ("none" otherwise).
    shadow_version: str = "none"
    shadow_roc_auc: float = float("nan")
    # Size of the champion's validation set (0: unknown): how noisy its validation ROC AUC is.
    validation_rows: int = 0
    validation_positives: int = 0


def auc_standard_error(auc: float, positives: float, negatives: float) -> float:
    """Standard error of a ROC AUC measured on this many positives and negatives (Hanley and
    McNeil, 1982); 0 when a count is unknown (0)."""
    import math

    if positives < 1 or negatives < 1 or math.isnan(auc):
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


# How many standard errors a gap must exceed, on top of the policy's margin, to count: sampling
# alone rarely goes this far (about 1 in 700 one-sided), so a few hundred labelled rows a day do
# not retrain or roll back on noise.
NOISE_SE = 3.0


def performance_decision(
    days: list[PerformanceObservation],
    settings: PerformanceSettings,
    retraining_in_flight: bool,
    recent_promotions: int,
    policy: RetrainingPolicy,
    drift_shares: dict[str, float] | None = None,
    retrained_against: str | None = None,
    rollback_due: str | None = None,
) -> Decision:
    """Whether the champion's labelled live performance calls for retraining (concept drift).

    `days` are the latest labelled days served by the current champion, most recent first. Over
    the `settings.labelled_days` most recent of them (rows pooled, each day's ROC AUC weighted by
    its labelled rows): retrain when the served ROC AUC is below the champion's validation ROC
    AUC by more than `margin`, or the observed positive rate and the mean predicted probability
    differ by more than `calibration_band`. The retraining data starts at the earliest of them.
    A day of the window whose drift share (`drift_shares`) is above the drift threshold leaves
    the decision to the drift policy: its consecutive rule, budget and escalation answer it; a
    rollback the rollback policy calls for (`rollback_due`) comes before retraining. The
    calibration rule also needs the gap beyond sampling noise (3 standard errors).
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
    champion = window[0]
    validation = champion.champion_validation_roc_auc
    observed = sum(d.observed_positive_rate * d.labelled_rows for d in window) / rows
    predicted = sum(d.mean_score * d.labelled_rows for d in window) / rows
    span = f"{window[-1].partition} .. {latest}"
    problems = []
    auc_noise = NOISE_SE * math.hypot(
        auc_standard_error(served, observed * rows, (1 - observed) * rows),
        auc_standard_error(
            validation,
            champion.validation_positives,
            champion.validation_rows - champion.validation_positives,
        ),
    )
    if not math.isnan(validation) and served < validation - max(settings.margin, auc_noise):
        problems.append(
            f"served ROC AUC {served:.4f} is below v{version}'s validation ROC AUC "
            f"{validation:.4f} by more than {max(settings.margin, auc_noise):.4f}"
        )
    noise = NOISE_SE * math.sqrt(max(predicted * (1 - predicted), 1e-12) / rows)
    if abs(observed - predicted) > max(settings.calibration_band, noise):
        problems.append(
            f"observed positive rate {observed:.4f} vs mean predicted probability "
            f"{predicted:.4f}: off by more than {max(settings.calibration_band, noise):.4f}"
        )
    if not problems:
        return Decision(
            False,
            f"v{version} on {span}: served ROC AUC {served:.4f} (validation {validation:.4f}), "
            f"observed rate {observed:.4f} vs predicted {predicted:.4f}: within the policy",
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
    days: list[PerformanceObservation], settings: PerformanceSettings
) -> RollbackDecision:
    """Whether a newly promoted champion should give the alias back to the version it replaced.

    `days` are the latest labelled days served by the current champion, most recent first.
    Over the `settings.labelled_days` most recent of them where the previous champion scored
    the same rows in shadow: roll back when the champion's ROC AUC (each day weighted by its
    labelled rows) is below the shadow's by more than `margin`.
    """
    import math

    shadowed = [
        day
        for day in days
        if day.labelled_rows > 0
        and day.shadow_version not in ("", "none")
        and not math.isnan(day.shadow_roc_auc)
        and not math.isnan(day.roc_auc)
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
    served = sum(day.roc_auc * day.labelled_rows for day in window) / rows
    previous = sum(day.shadow_roc_auc * day.labelled_rows for day in window) / rows
    comparison = (
        f"v{version}'s labelled live ROC AUC {served:.4f} vs {previous:.4f} of v{shadow} "
        f"(the champion it replaced, scoring in shadow) on the same {rows} rows of "
        f"{window[-1].partition} .. {window[0].partition}"
    )
    positives = sum(day.observed_positive_rate * day.labelled_rows for day in window)
    # Both scored the same rows: treating them as independent overstates the noise (cautious).
    noise = NOISE_SE * math.hypot(
        auc_standard_error(served, positives, rows - positives),
        auc_standard_error(previous, positives, rows - positives),
    )
    allowed = max(settings.margin, noise)
    if served < previous - allowed:
        return RollbackDecision(
            True, f"{comparison}: worse by more than {allowed:.4f}", to_version=shadow
        )
    return RollbackDecision(False, f"{comparison}: within {allowed:.4f}")
