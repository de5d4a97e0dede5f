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
from mlops_assets.tasks import Binary, Metric, Task
from mlops_assets.training.model import features_and_label, predict

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The challenger-vs-champion comparison: a paired bootstrap of the gate metric's difference on
# the same validation rows, this many draws, and the two-sided interval's confidence.
BOOTSTRAP_DRAWS = 1000
CONFIDENCE = 0.95

QUALITY_FLOOR = "quality_floor"
CHALLENGER_VS_CHAMPION = "challenger_not_worse_than_champion"
BIAS_GAP = "bias_gap_within_limit"
GATE_NAMES = (QUALITY_FLOOR, CHALLENGER_VS_CHAMPION, BIAS_GAP)


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)


def quality_floor(value: float, floor: float, metric: Metric = Binary.metric) -> GateResult:
    """Whether the validation `metric` (higher is better) is at least `floor`."""
    passed = not math.isnan(value) and value >= floor
    return GateResult(
        QUALITY_FLOOR,
        passed,
        f"validation {metric.title} {value:.4f} {'>=' if passed else '<'} floor {floor:.4f}",
        {metric.name: value, f"min_{metric.name}": floor},
    )


def challenger_vs_champion(
    challenger: float,
    champion: float | None,
    champion_version: str | None,
    min_absolute_change: float | None,
    min_relative_change: float | None,
    interval: tuple[float, float] | None = None,
    metric: Metric = Binary.metric,
) -> GateResult:
    """Whether the challenger is not worse than the champion on `metric` (MLflow
    `MetricThreshold` semantics for the point change, plus a paired bootstrap interval when given).

    The change is the improvement in the metric's direction (challenger - champion for ROC AUC,
    champion - challenger for RMSE). The challenger passes when `change >= min_absolute_change`
    and `change / |champion| >= min_relative_change` (each only when set; negative values
    tolerate a bounded regression) and, with `interval` (the confidence interval of the change
    from `Task.paired_interval`), unless the whole interval lies below zero: a tolerance then
    cannot promote a model the data show to be worse, however small the difference. With no
    champion, the gate passes and says so.
    """
    if champion is None:
        return GateResult(
            CHALLENGER_VS_CHAMPION,
            True,
            "no champion yet: the first model passes",
            {"challenger": challenger},
        )
    change = metric.improvement(challenger, champion)
    relative = change / abs(champion) if champion else float("inf")
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
        f"challenger {metric.title} {challenger:.4f} vs champion v{champion_version} {champion:.4f} "
        f"on the challenger's validation rows, change {change:+.4f}{shown}: "
        + ("; ".join(failures) or "within thresholds")
    )
    numbers: dict[str, Any] = {
        f"challenger_{metric.name}": challenger,
        f"champion_{metric.name}": champion,
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
    task: Task | None = None,
) -> tuple[float, float]:
    """The `confidence` interval of the gate metric's improvement of `challenger` over
    `champion` (ROC AUC difference for binary) over paired bootstrap resamples of the rows."""
    return (task or Binary()).paired_interval(labels, challenger, champion, draws, confidence, seed)


def group_rates(
    labels: np.ndarray,
    predictions: np.ndarray,
    groups: pd.Series,
    metric: str,
    threshold: float,
    min_group_rows: int,
    task: Task | None = None,
) -> dict[str, float]:
    """Per-group `metric` of the task (`Task.group_value`: binary `recall`, positives flagged,
    or `approval_rate`, rows not flagged; regression `relative_absolute_error`; multiclass
    `macro_recall`).

    Groups with fewer than `min_group_rows` rows in the metric's denominator are left out.
    """
    import pandas as pd

    task = task or Binary()
    if metric not in task.bias_metrics:
        raise ValueError(
            f"bias metric of a {task.name} model must be one of {task.bias_metrics}, got {metric!r}"
        )
    rates = {}
    for group in sorted(pd.unique(groups.dropna())):
        rows = (groups == group).to_numpy()
        counted, value = task.group_value(labels, predictions, metric, threshold, rows)
        if counted >= min_group_rows:
            rates[str(group)] = value
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
    baseline: Any = None,
) -> list[GateResult]:
    """Every gate of the contract for `challenger`, scored on `validation` next to the `champion`,
    on the task's metric; `baseline` is the constant prediction the quality floor measures
    against where the task has one (the training labels' mean)."""
    gates, task = contract.spec.gates, contract.task
    _, labels = features_and_label(validation, contract)
    predictions = predict(challenger, validation, contract)
    scores = task.metrics(labels, predictions, baseline)
    challenger_score = scores[task.metric.name]
    champion_score, interval = None, None
    if champion is not None:
        champion_predictions = predict(champion, validation, contract)
        champion_score = task.metrics(labels, champion_predictions, baseline)[task.metric.name]
        if gates.comparison == "paired_bootstrap":
            interval = task.paired_interval(
                labels, predictions, champion_predictions, BOOTSTRAP_DRAWS, CONFIDENCE
            )
    results = [
        quality_floor(
            scores[task.floor_metric.name],
            getattr(gates, task.floor_setting),
            task.floor_metric,
        ),
        challenger_vs_champion(
            challenger_score,
            champion_score,
            champion_version,
            gates.min_absolute_change,
            gates.min_relative_change,
            interval,
            task.metric,
        ),
    ]
    if gates.bias is None:
        results.append(GateResult(BIAS_GAP, True, "no bias gate in the contract", {}))
        return results
    rates = group_rates(
        labels,
        predictions,
        validation[gates.bias.column],
        gates.bias.metric,
        contract.spec.model.decision_threshold,
        gates.bias.min_group_rows,
        task,
    )
    results.append(bias_gap(rates, gates.bias.column, gates.bias.metric, gates.bias.max_gap))
    return results
