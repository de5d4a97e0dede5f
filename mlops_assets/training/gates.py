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
) -> GateResult:
    """MLflow `MetricThreshold` semantics for a greater-is-better metric.

    The challenger passes when `challenger - champion >= min_absolute_change` and
    `(challenger - champion) / champion >= min_relative_change` (each only when set). Negative
    thresholds tolerate a bounded regression. With no champion, the gate passes and says so.
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
    summary = (
        f"challenger ROC AUC {challenger:.4f} vs champion v{champion_version} {champion:.4f} "
        f"on the challenger's validation rows: " + ("; ".join(failures) or "within thresholds")
    )
    return GateResult(
        CHALLENGER_VS_CHAMPION,
        not failures,
        summary,
        {
            "challenger_roc_auc": challenger,
            "champion_roc_auc": champion,
            "champion_version": champion_version,
            "absolute_change": change,
            "relative_change": relative,
            "min_absolute_change": min_absolute_change,
            "min_relative_change": min_relative_change,
        },
    )


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
    champion_auc = (
        classification_metrics(labels, positive_probability(champion, validation, contract))[
            "roc_auc"
        ]
        if champion is not None
        else None
    )
    results = [
        quality_floor(challenger_auc, gates.min_roc_auc),
        challenger_vs_champion(
            challenger_auc,
            champion_auc,
            champion_version,
            gates.min_absolute_change,
            gates.min_relative_change,
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
