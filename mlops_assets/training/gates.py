"""Validation gates a model must pass before it may become champion: pure functions + thresholds.

The same evaluation runs as blocking asset checks on `trained_model` (visible in the UI, and
stopping the registry step of that run) and again inside `registered_model_version` at the moment
of promotion, against whatever model is champion then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.contracts import DataContract
from mlops_assets.training.model import (
    classification_metrics,
    features_and_label,
    positive_probability,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The challenger-vs-champion comparison: a paired bootstrap of the ROC AUC difference on the
# same validation rows, this many draws, and the two-sided interval's confidence.
BOOTSTRAP_DRAWS = 1000
CONFIDENCE = 0.95
_DRAWS_PER_CHUNK = 100  # bounds memory: a chunk holds draws x rows weights

QUALITY_FLOOR = "quality_floor"
CHALLENGER_VS_CHAMPION = "challenger_not_worse_than_champion"
BIAS_GAP = "bias_gap_within_limit"
GATE_NAMES = (QUALITY_FLOOR, CHALLENGER_VS_CHAMPION, BIAS_GAP)
BIAS_METRICS = ("recall", "approval_rate")


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)


def quality_floor(roc_auc: float, min_roc_auc: float) -> GateResult:
    passed = not math.isnan(roc_auc) and roc_auc >= min_roc_auc
    return GateResult(
        QUALITY_FLOOR,
        passed,
        f"validation ROC AUC {roc_auc:.4f} {'>=' if passed else '<'} floor {min_roc_auc:.4f}",
        {"roc_auc": roc_auc, "min_roc_auc": min_roc_auc},
    )


def challenger_vs_champion(
    challenger: float,
    champion: float | None,
    champion_version: str | None,
    min_absolute_change: float | None,
    min_relative_change: float | None,
    interval: tuple[float, float] | None = None,
) -> GateResult:
    """Whether the challenger is not worse than the champion (MLflow `MetricThreshold` semantics
    for the point change, plus a paired bootstrap interval when given).

    The challenger passes when `challenger - champion >= min_absolute_change` and
    `(challenger - champion) / champion >= min_relative_change` (each only when set; negative
    values tolerate a bounded regression) and, with `interval` (the confidence interval of the
    difference from `paired_bootstrap`), unless the whole interval lies below zero: a tolerance
    then cannot promote a model the data show to be worse, however small the difference. With no
    champion, the gate passes and says so.
    """
    if champion is None:
        return GateResult(
            CHALLENGER_VS_CHAMPION,
            True,
            "no champion yet: the first model passes",
            {"challenger": challenger},
        )
    change = challenger - champion
    relative = change / champion if champion else float("inf")
    failures = []
    if min_absolute_change is not None and change < min_absolute_change:
        failures.append(f"change {change:+.4f} < min_absolute_change {min_absolute_change:+.4f}")
    if min_relative_change is not None and relative < min_relative_change:
        failures.append(
            f"relative change {relative:+.2%} < min_relative_change {min_relative_change:+.2%}"
        )
    if interval is not None and interval[1] < 0:
        failures.append(
            f"the whole {CONFIDENCE:.0%} interval is below zero: the challenger is worse on "
            "these rows"
        )
    shown = (
        f" ({CONFIDENCE:.0%} paired bootstrap interval {interval[0]:+.4f} .. {interval[1]:+.4f})"
        if interval is not None
        else ""
    )
    summary = (
        f"challenger ROC AUC {challenger:.4f} vs champion v{champion_version} {champion:.4f} "
        f"on the challenger's validation rows, change {change:+.4f}{shown}: "
        + ("; ".join(failures) or "within thresholds")
    )
    numbers: dict[str, Any] = {
        "challenger_roc_auc": challenger,
        "champion_roc_auc": champion,
        "champion_version": champion_version,
        "absolute_change": change,
        "relative_change": relative,
        "min_absolute_change": min_absolute_change,
        "min_relative_change": min_relative_change,
    }
    if interval is not None:
        numbers.update(
            {
                "change_interval_low": interval[0],
                "change_interval_high": interval[1],
                "interval_confidence": CONFIDENCE,
                "bootstrap_draws": BOOTSTRAP_DRAWS,
            }
        )
    return GateResult(CHALLENGER_VS_CHAMPION, not failures, summary, numbers)


def paired_bootstrap(
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    draws: int = BOOTSTRAP_DRAWS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """The `confidence` interval of ROC AUC(challenger) - ROC AUC(champion) over bootstrap
    resamples of the rows, the same rows for both models in each draw (paired).

    Each draw is a multinomial weighting of the rows; the weighted AUCs come from one sort per
    model (Mann-Whitney with ties counted half), so 1,000 draws over 10,000 rows take about a
    second. Draws without both classes are skipped. Seeded: the same inputs give the same interval.
    """
    import numpy as np

    labels = np.asarray(labels, dtype=float)
    rng = np.random.default_rng(seed)
    rows = len(labels)
    differences = []
    for start in range(0, draws, _DRAWS_PER_CHUNK):
        size = min(_DRAWS_PER_CHUNK, draws - start)
        picks = rng.integers(0, rows, size=(size, rows)) + rows * np.arange(size)[:, None]
        weights = np.bincount(picks.ravel(), minlength=size * rows).reshape(size, rows)
        differences.append(
            _weighted_auc(challenger, labels, weights) - _weighted_auc(champion, labels, weights)
        )
    difference = np.concatenate(differences)
    difference = difference[~np.isnan(difference)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(difference, [tail, 100 - tail])
    return float(low), float(high)


def _weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per row of `weights` (draws x rows), ties between scores counted as half."""
    import numpy as np

    order = np.argsort(scores, kind="stable")
    ordered, positive = np.asarray(scores)[order], labels[order]
    weights = weights[:, order].astype(float)
    positives, negatives = weights * positive, weights * (1 - positive)
    below = np.cumsum(negatives, axis=1)
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    ends = np.r_[starts[1:], len(ordered)] - 1
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(ordered)]))
    before = np.where(starts > 0, below[:, np.maximum(starts - 1, 0)], 0.0)[:, group]
    tied = below[:, ends][:, group] - before
    pairs = positives.sum(axis=1) * negatives.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positives * (before + 0.5 * tied)).sum(axis=1) / np.where(pairs > 0, pairs, np.nan)


def group_rates(
    labels: np.ndarray,
    probability: np.ndarray,
    groups: pd.Series,
    metric: str,
    threshold: float,
    min_group_rows: int,
) -> dict[str, float]:
    """Per-group `recall` (positives flagged) or `approval_rate` (rows not flagged).

    A row is flagged (declined, for a lender) when P(positive) >= threshold.
    Groups with fewer than `min_group_rows` rows in the metric's denominator are left out.
    """
    import pandas as pd

    if metric not in BIAS_METRICS:
        raise ValueError(f"bias metric must be one of {BIAS_METRICS}, got {metric!r}")
    flagged = probability >= threshold
    rates = {}
    for group in sorted(pd.unique(groups.dropna())):
        member = (groups == group).to_numpy()
        denominator = member & (labels == 1) if metric == "recall" else member
        if denominator.sum() >= min_group_rows:
            share = flagged[denominator].mean()
            rates[str(group)] = float(share if metric == "recall" else 1 - share)
    return rates


def bias_gap(rates: dict[str, float], column: str, metric: str, max_gap: float) -> GateResult:
    if len(rates) < 2:
        return GateResult(
            BIAS_GAP, True, f"fewer than two {column} groups large enough to compare", {}
        )
    gap = max(rates.values()) - min(rates.values())
    passed = gap <= max_gap
    return GateResult(
        BIAS_GAP,
        passed,
        f"{metric} gap across {column} groups {gap:.4f} {'<=' if passed else '>'} limit {max_gap:.4f}",
        {"gap": gap, "max_gap": max_gap, "column": column, "metric": metric, "by_group": rates},
    )


def evaluate_gates(
    contract: DataContract,
    challenger: Any,
    validation: pd.DataFrame,
    champion: Any | None,
    champion_version: str | None,
) -> list[GateResult]:
    """Every gate of the contract for `challenger`, scored on `validation` next to the `champion`."""
    gates = contract.spec.gates
    _, labels = features_and_label(validation, contract)
    probability = positive_probability(challenger, validation, contract)
    challenger_auc = classification_metrics(labels, probability)["roc_auc"]
    champion_auc, interval = None, None
    if champion is not None:
        champion_probability = positive_probability(champion, validation, contract)
        champion_auc = classification_metrics(labels, champion_probability)["roc_auc"]
        if gates.comparison == "paired_bootstrap":
            interval = paired_bootstrap(labels, probability, champion_probability)
    results = [
        quality_floor(challenger_auc, gates.min_roc_auc),
        challenger_vs_champion(
            challenger_auc,
            champion_auc,
            champion_version,
            gates.min_absolute_change,
            gates.min_relative_change,
            interval,
        ),
    ]
    if gates.bias is None:
        results.append(GateResult(BIAS_GAP, True, "no bias gate in the contract", {}))
        return results
    rates = group_rates(
        labels,
        probability,
        validation[gates.bias.column],
        gates.bias.metric,
        contract.spec.model.decision_threshold,
        gates.bias.min_group_rows,
    )
    results.append(bias_gap(rates, gates.bias.column, gates.bias.metric, gates.bias.max_gap))
    return results
