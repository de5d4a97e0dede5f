"""Per-column drift tests with Evidently 0.7's default selection, without Evidently's cost.

`DataDriftPreset` picks a test per column from the cleaned reference size and the number of
distinct values (`evidently.legacy.calculations.stattests.registry._get_default_stattest`):

| reference rows | column | distinct values (ref + cur) | test (threshold) | drifted when |
|---|---|---|---|---|
| > 1000  | numeric     | > 5  | Wasserstein distance / std(reference) (0.1) | score >= 0.1 |
| > 1000  | numeric     | <= 5 | Jensen-Shannon distance (0.1)               | score >= 0.1 |
| > 1000  | categorical | any  | Jensen-Shannon distance (0.1)               | score >= 0.1 |
| <= 1000 | numeric     | > 5  | Kolmogorov-Smirnov p-value (0.05)           | p <= 0.05   |
| <= 1000 | either      | 3-5 (numeric), > 2 (cat) | chi-square p-value (0.05) | p < 0.05 |
| <= 1000 | either      | <= 2 | two-proportion Z-test p-value (0.05)        | p < 0.05    |

Missing values and infinities are dropped per column first, as Evidently does; the counts are
reported. The scores equal Evidently's on the same data (tested against a real Evidently run);
the dataset drift score is the share of drifted feature columns. Evidently computes every column
three times inside the preset; this computes each once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_assets.contract import LOAN_APPLICATIONS, DataContract

WASSERSTEIN = "wasserstein"
JENSEN_SHANNON = "jensenshannon"
KOLMOGOROV_SMIRNOV = "ks"
CHI_SQUARE = "chisquare"
Z_TEST = "z"
ALL_MISSING = "all_missing"
# Evidently's display names, as they appear in its report (`ValueDrift(method=...)`).
EVIDENTLY_METHOD_NAMES = {
    WASSERSTEIN: "Wasserstein distance (normed)",
    JENSEN_SHANNON: "Jensen-Shannon distance",
    KOLMOGOROV_SMIRNOV: "K-S p_value",
    CHI_SQUARE: "chi-square p_value",
    Z_TEST: "Z-test p_value",
}
DISTANCE_THRESHOLD = 0.1
P_VALUE_THRESHOLD = 0.05
LARGE_REFERENCE = 1000  # above this many reference rows, distances replace hypothesis tests


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # "numeric" or "categorical"
    test: str
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    dropped_reference: int  # missing or infinite values dropped before testing
    dropped_current: int


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]

    @property
    def share(self) -> float:
        """Share of drifted feature columns: the dataset drift score automation acts on."""
        return (
            sum(column.drifted for column in self.columns) / len(self.columns)
            if self.columns
            else 0.0
        )

    @property
    def drifted_columns(self) -> list[str]:
        return [column.column for column in self.columns if column.drifted]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(column) for column in self.columns])


def select_test(reference: pd.Series, current: pd.Series, numeric: bool) -> str:
    """Evidently's default test for one cleaned column pair."""
    distinct = pd.concat([reference, current]).nunique()
    if len(reference) > LARGE_REFERENCE:
        return WASSERSTEIN if numeric and distinct > 5 else JENSEN_SHANNON
    if numeric and distinct > 5:
        return KOLMOGOROV_SMIRNOV
    return CHI_SQUARE if distinct > 2 else Z_TEST


def column_drift(name: str, reference: pd.Series, current: pd.Series, numeric: bool) -> ColumnDrift:
    """Test one column the way Evidently's DataDriftPreset does by default."""
    reference_clean, current_clean = _clean(reference), _clean(current)
    kind = "numeric" if numeric else "categorical"
    dropped = (len(reference) - len(reference_clean), len(current) - len(current_clean))
    if reference_clean.empty or current_clean.empty:
        # Evidently refuses an empty column; a feature that stopped arriving is drift.
        return ColumnDrift(
            name,
            kind,
            ALL_MISSING,
            1.0,
            0.0,
            True,
            len(reference_clean),
            len(current_clean),
            *dropped,
        )
    test = select_test(reference_clean, current_clean, numeric)
    score = _SCORERS[test](reference_clean, current_clean, numeric)
    if test in (WASSERSTEIN, JENSEN_SHANNON):
        threshold, drifted = DISTANCE_THRESHOLD, score >= DISTANCE_THRESHOLD
    else:
        threshold = P_VALUE_THRESHOLD
        drifted = score <= threshold if test == KOLMOGOROV_SMIRNOV else score < threshold
    return ColumnDrift(
        name,
        kind,
        test,
        float(score),
        threshold,
        bool(drifted),
        len(reference_clean),
        len(current_clean),
        *dropped,
    )


def dataset_drift(
    reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract = LOAN_APPLICATIONS
) -> DriftResult:
    """Every feature column of the contract, tested; numeric/categorical as the contract says."""
    numeric = set(contract.numeric_features)
    return DriftResult(
        [
            column_drift(name, reference[name], current[name], name in numeric)
            for name in contract.feature_columns
        ]
    )


def _clean(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def _wasserstein(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    from scipy import stats

    norm = max(float(np.std(reference)), 0.001)
    return float(stats.wasserstein_distance(reference, current) / norm)


def _jensen_shannon(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    from scipy.spatial import distance

    reference_share, current_share = _binned_shares(reference, current, numeric)
    return float(distance.jensenshannon(reference_share, current_share))


def _binned_shares(
    reference: pd.Series, current: pd.Series, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's `get_binned_data` without zero-filling: Sturges bins or per-value shares."""
    if numeric and reference.nunique() > 20:
        edges = np.histogram_bin_edges(
            np.concatenate([reference.to_numpy(), current.to_numpy()]), bins="sturges"
        )
        return (
            np.histogram(reference, edges)[0] / len(reference),
            np.histogram(current, edges)[0] / len(current),
        )
    keys = _levels(reference, current)
    reference_counts = reference.value_counts().reindex(keys, fill_value=0).to_numpy()
    current_counts = current.value_counts().reindex(keys, fill_value=0).to_numpy()
    return reference_counts / len(reference), current_counts / len(current)


def _kolmogorov_smirnov(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current)[1])


def _chi_square(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    from scipy.stats import chisquare

    keys = _levels(reference, current)
    expected = reference.value_counts().reindex(keys, fill_value=0).to_numpy() * (
        len(current) / len(reference)
    )
    observed = current.value_counts().reindex(keys, fill_value=0).to_numpy()
    return float(chisquare(observed, expected)[1])


def _z_test(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    from scipy.stats import norm

    if reference.nunique() == 1 and current.nunique() == 1 and reference.iloc[0] == current.iloc[0]:
        return 1.0
    first = sorted(_levels(reference, current))[0]
    reference_share = float((reference != first).mean())
    current_share = float((current != first).mean())
    n1, n2 = len(reference), len(current)
    pooled = (reference_share * n1 + current_share * n2) / (n1 + n2)
    z = (reference_share - current_share) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _levels(reference: pd.Series, current: pd.Series) -> list:
    return list(pd.unique(pd.concat([reference, current])))


_SCORERS = {
    WASSERSTEIN: _wasserstein,
    JENSEN_SHANNON: _jensen_shannon,
    KOLMOGOROV_SMIRNOV: _kolmogorov_smirnov,
    CHI_SQUARE: _chi_square,
    Z_TEST: _z_test,
}
