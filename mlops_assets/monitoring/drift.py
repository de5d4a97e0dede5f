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

Noise-aware verdicts (the default; `drift.verdicts: evidently` turns them off): at a few hundred
rows a day, a fixed distance threshold flags sampling noise. A column then counts as drifted only
when Evidently's verdict says so *and* its score is beyond what sampling alone produces at that
size: a high percentile of the same test's distance (a low one of its p-value) between
disjoint random splits of the reference into a pseudo-reference and a pseudo-current day of the
current side's size, so the floor holds both samples' noise (`NoiseFloors`, computed once per
reference and size, cached with the profile; distances rescaled by sqrt(1/m + 1/n) to the actual
sizes). The quantile is per contract (`family_quantile`): with few columns one noisy column is
already a large share, so each is held to more until undrifted days cross the drift threshold on
at most 0.5% of days for independent columns (99.83% for 3 columns at 0.2; 99% from 5 columns
on). Where days are large, the floor is far inside Evidently's threshold and the verdicts equal Evidently's.
Chi-square, whose p is 0 whenever a day holds a level the reference lacks, is judged on the unseen
rows' share and the seen levels' p-value, each against its own floor (`NoiseFloors.judge`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from mlops_assets.contracts import DataContract

WASSERSTEIN = "wasserstein"
JENSEN_SHANNON = "jensenshannon"
KOLMOGOROV_SMIRNOV = "ks"
CHI_SQUARE = "chisquare"
Z_TEST = "z"
ALL_MISSING = "all_missing"
# What a drift report row is about: a model input, the predictions, or the delivered labels.
FEATURE, PREDICTION, LABEL = "feature", "prediction", "label"
UNSEEN_SHARE = "unseen_share"  # chi-square's second floor: the day's rows in unseen levels
_CHI_SQUARE_SEEN = "chisquare_seen"  # its first, cached apart from the older p-only floors
_DISTANCES = (WASSERSTEIN, JENSEN_SHANNON)  # drift above a threshold; other tests: p-values
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
NOISE_AWARE = "noise_aware"
EVIDENTLY = "evidently"
VERDICTS = (NOISE_AWARE, EVIDENTLY)
NOISE_QUANTILE = 0.99  # a column drifts when its score is beyond 99% of sampling-only scores
NOISE_DRAWS = 400
# Undrifted days whose share may exceed the drift threshold by sampling alone (`family_quantile`):
# half the 1% target, for what independence misses (derived features move with their inputs).
FAMILY_ALARMS = 0.005
# Samples of more rows than this estimate the floor at this size and scale it by sqrt(size): the
# noise of these distances shrinks as 1/sqrt(n), and beyond it the floor is far inside 0.1 anyway.
NOISE_SAMPLE_CAP = 2_000
NOISE_REFERENCE_RATIO = 4  # pseudo-reference rows per pseudo-current row in a simulation


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
    evidently_drifted: bool = False  # Evidently's own verdict (threshold only)
    noise_floor: float | None = None  # the score sampling alone reaches at this size (see above)
    # feature: counts in the drift share; prediction, label: reported with their own verdict
    role: str = FEATURE

    @property
    def held_back(self) -> bool:
        """Evidently calls it drifted, but the score is within sampling noise at this size."""
        return self.evidently_drifted and not self.drifted


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]  # the features', then the prediction's and the label's, if any

    @property
    def features(self) -> list[ColumnDrift]:
        return [column for column in self.columns if column.role == FEATURE]

    @property
    def share(self) -> float:
        """Share of drifted feature columns: the dataset drift score automation acts on."""
        return self._share([column.drifted for column in self.features])

    @property
    def evidently_share(self) -> float:
        """The share Evidently's own verdicts give (what its HTML report shows)."""
        return self._share([column.evidently_drifted for column in self.features])

    @property
    def drifted_columns(self) -> list[str]:
        """The drifted feature columns."""
        return [column.column for column in self.features if column.drifted]

    @property
    def held_back_columns(self) -> list[ColumnDrift]:
        """Columns Evidently alone would call drifted, held back as sampling noise."""
        return [column for column in self.columns if column.held_back]

    def outcome(self, role: str) -> ColumnDrift | None:
        """The `prediction` or `label` row, if the report has one."""
        return next((column for column in self.columns if column.role == role), None)

    @staticmethod
    def _share(verdicts: list[bool]) -> float:
        return sum(verdicts) / len(verdicts) if verdicts else 0.0

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(column) for column in self.columns])


@dataclass(frozen=True)
class ColumnReference:
    """One reference column, cleaned and summarised once: all any test needs from that side."""

    values: pd.Series  # cleaned (missing and infinite values dropped), original order
    dropped: int
    sorted_values: np.ndarray | None  # numeric columns: ascending
    std: float  # numeric columns: population standard deviation (Evidently's normaliser)
    distinct: int
    counts: pd.Series | None  # value -> count (None where only Wasserstein or KS will read it)

    @classmethod
    def of(cls, values: pd.Series, numeric: bool, with_counts: bool = True) -> ColumnReference:
        clean = clean_values(values, numeric)
        if numeric:
            array = clean.to_numpy()
            ordered = np.sort(array)
            distinct = int(np.count_nonzero(np.diff(ordered)) + 1) if len(ordered) else 0
            std = float(np.std(array)) if len(array) else 0.0
            return cls(
                clean,
                len(values) - len(clean),
                ordered,
                std,
                distinct,
                clean.value_counts(sort=False) if with_counts else None,
            )
        counts = clean.value_counts(sort=False)
        return cls(clean, len(values) - len(clean), None, 0.0, len(counts), counts)


@dataclass(frozen=True)
class ReferenceProfile:
    """Every feature column of a reference dataset, summarised once per model version."""

    columns: dict[str, ColumnReference]

    @classmethod
    def of(cls, reference: pd.DataFrame, contract: DataContract) -> ReferenceProfile:
        numeric = set(contract.numeric_features)
        return cls(
            {
                name: ColumnReference.of(reference[name], name in numeric)
                for name in contract.drift_columns
            }
        )


def select_test(reference: ColumnReference, current: pd.Series, numeric: bool) -> str:
    """Evidently's default test for one cleaned column pair."""
    if len(reference.values) > LARGE_REFERENCE:
        return (
            WASSERSTEIN
            if numeric and _more_distinct_than(5, reference, current)
            else JENSEN_SHANNON
        )
    if numeric and _more_distinct_than(5, reference, current):
        return KOLMOGOROV_SMIRNOV
    return CHI_SQUARE if _more_distinct_than(2, reference, current) else Z_TEST


def _more_distinct_than(limit: int, reference: ColumnReference, current: pd.Series) -> bool:
    """Whether reference and current together hold more than `limit` distinct values."""
    if reference.distinct > limit:
        return True
    return pd.concat([reference.values, current]).nunique() > limit


def column_drift(
    name: str,
    reference: pd.Series | ColumnReference,
    current: pd.Series,
    numeric: bool,
    noise: NoiseFloors | None = None,
) -> ColumnDrift:
    """Test one column the way Evidently's DataDriftPreset does by default.

    With `noise`, the verdict is noise-aware: drifted only beyond the noise floor at this size.
    """
    if not isinstance(reference, ColumnReference):
        reference = ColumnReference.of(reference, numeric)
    current_clean = clean_values(current, numeric)
    kind = "numeric" if numeric else "categorical"
    sizes = (
        len(reference.values),
        len(current_clean),
        reference.dropped,
        len(current) - len(current_clean),
    )
    if reference.values.empty or current_clean.empty:
        # Evidently refuses an empty column; a feature that stopped arriving is drift.
        return ColumnDrift(name, kind, ALL_MISSING, 1.0, 0.0, True, *sizes, evidently_drifted=True)
    test = select_test(reference, current_clean, numeric)
    score = float(_SCORERS[test](reference, current_clean, numeric))
    if test in _DISTANCES:
        threshold, drifted = DISTANCE_THRESHOLD, score >= DISTANCE_THRESHOLD
    else:
        threshold = P_VALUE_THRESHOLD
        drifted = score <= threshold if test == KOLMOGOROV_SMIRNOV else score < threshold
    floor, verdict = None, bool(drifted)
    if noise is not None and drifted:  # only a drifted verdict can be noise
        floor, verdict = noise.judge(name, test, reference, current_clean, score)
    return ColumnDrift(
        name,
        kind,
        test,
        score,
        threshold,
        bool(verdict),
        *sizes,
        evidently_drifted=bool(drifted),
        noise_floor=floor,
    )


def outcome_drift(
    name: str, role: str, reference: pd.Series, current: pd.Series, numeric: bool
) -> ColumnDrift:
    """The drift of the predictions or of the labels (`role`): Evidently's default test and its
    verdict. Reported beside the features, not counted in the share: a prediction moves with the
    features it is made of, and labels arrive late."""
    return replace(column_drift(name, reference, current, numeric), role=role)


def dataset_drift(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    contract: DataContract,
    noise: NoiseFloors | None = None,
) -> DriftResult:
    """Every drift column of the contract, tested; numeric/categorical as the contract says.

    Pass a `ReferenceProfile` (built once per model version) to pay only for the current side.
    Verdicts follow the contract's `drift.verdicts`: noise-aware (with `noise`, or floors made
    here) unless it says `evidently`.
    """
    profile = (
        reference
        if isinstance(reference, ReferenceProfile)
        else ReferenceProfile.of(reference, contract)
    )
    numeric = set(contract.numeric_features)
    if contract.spec.drift.verdicts == NOISE_AWARE and noise is None:
        noise = NoiseFloors.for_contract(profile, contract)
    if contract.spec.drift.verdicts == EVIDENTLY:
        noise = None
    return DriftResult(
        [
            column_drift(name, profile.columns[name], current[name], name in numeric, noise)
            for name in contract.drift_columns
        ]
    )


@dataclass
class NoiseFloors:
    """Per column, test and sample size: the score sampling alone reaches (see the module doc).

    Computed on first use and kept in `floors` (JSON-friendly), so a drift report can store and
    reload them next to the reference profile: they depend only on the reference, the size and
    the quantile (`family_quantile`: stricter per column when a few columns make the share).
    """

    profile: ReferenceProfile
    numeric: frozenset[str]
    floors: dict[str, float] = field(default_factory=dict)
    quantile: float = NOISE_QUANTILE
    seed: int = 0

    @classmethod
    def for_contract(
        cls, profile: ReferenceProfile, contract: DataContract, floors: dict | None = None
    ) -> NoiseFloors:
        """Floors at the per-column quantile the contract's column count and threshold need."""
        return cls(
            profile,
            frozenset(contract.numeric_features),
            floors if floors is not None else {},
            family_quantile(len(contract.drift_columns), contract.spec.drift.threshold),
        )

    @property
    def draws(self) -> int:
        """Simulated comparisons per floor: about 4 beyond the quantile (400 at 99%), so that the
        estimated floor is rarely below the true one."""
        return max(NOISE_DRAWS, math.ceil(4 / (1 - self.quantile)))

    def judge(
        self,
        column: str,
        test: str,
        reference: ColumnReference,
        current: pd.Series,
        score: float,
    ) -> tuple[float, bool]:
        """(floor, noise-aware verdict) for a column Evidently calls drifted.

        Chi-square's p is 0 whenever the day holds a level the reference lacks, and sampling
        alone often does that where the reference has rare levels: there the share of unseen
        rows and the p-value of the seen levels are each held to their own floor (half the
        column's false-alarm budget each), so neither a rare level nor a shift hides the other.
        """
        floor = self.floor(column, test, len(current))
        if test in _DISTANCES:
            return floor, score > floor
        if test != CHI_SQUARE:
            return floor, score < floor
        # p > 0: no unseen level, and Evidently's p is already the seen levels' p
        seen_p, unseen = (score, 0.0) if score > 0 else _chi_square_parts(reference, current)
        return floor, unseen > self.floor(column, UNSEEN_SHARE, len(current)) or seen_p < floor

    def floor(self, column: str, test: str, size: int) -> float:
        """The floor for a current side of `size` rows (simulated once per size bucket). For
        chi-square, the floor of the seen levels' p-value; UNSEEN_SHARE: of the unseen rows."""
        reference_rows = len(self.profile.columns[column].values)
        current, pseudo_reference = _split_sizes(reference_rows, size)
        if current < 1:  # too small a reference to split: Evidently's threshold alone
            if test == UNSEEN_SHARE:
                return 0.0
            return DISTANCE_THRESHOLD if test in _DISTANCES else P_VALUE_THRESHOLD

        def key(name: str) -> str:
            return f"{column}|{name}|{current}|{pseudo_reference}|q{self.quantile:.5f}"

        stored = _CHI_SQUARE_SEEN if test == CHI_SQUARE else test
        if key(stored) not in self.floors:
            simulated_test = CHI_SQUARE if test == UNSEEN_SHARE else test
            for name, value in self._simulate(column, simulated_test, current, pseudo_reference):
                self.floors[key(name)] = value
        if test in _DISTANCES:  # their noise scales as sqrt(1/m + 1/n)
            actual = 1 / reference_rows + 1 / size
            simulated = 1 / pseudo_reference + 1 / current
            return self.floors[key(stored)] * math.sqrt(actual / simulated)
        return self.floors[key(stored)]

    def _simulate(
        self, column: str, test: str, current: int, pseudo_reference: int
    ) -> list[tuple[str, float]]:
        """The test's score between disjoint random splits of the reference into a pseudo-reference
        and a pseudo-current day: both sides' sampling noise, as a real day against it has.
        (floor name, floor) pairs: chi-square gives two, each at half the column's budget."""
        numeric = column in self.numeric
        values = self.profile.columns[column].values.to_numpy()
        rng = np.random.default_rng([self.seed, current, pseudo_reference, len(values)])
        chi_square = test == CHI_SQUARE
        floors = 2 if chi_square else 1
        budget = (1 - self.quantile) / floors
        scores = []
        for _ in range(self.draws * floors):
            drawn = rng.choice(len(values), pseudo_reference + current, replace=False)
            reference = ColumnReference.of(
                pd.Series(values[drawn[current:]]), numeric, with_counts=test not in _ORDERED
            )
            day = pd.Series(values[drawn[:current]])
            scores.append(
                _chi_square_parts(reference, day)
                if chi_square
                else _SCORERS[test](reference, day, numeric)
            )
        if chi_square:
            seen, unseen = np.array(scores).T
            return [
                (_CHI_SQUARE_SEEN, float(np.quantile(seen, budget))),
                (UNSEEN_SHARE, float(np.quantile(unseen, 1 - budget))),
            ]
        return [(test, float(np.quantile(scores, 1 - budget if test in _DISTANCES else budget)))]


def family_quantile(columns: int, threshold: float, alarms: float = FAMILY_ALARMS) -> float:
    """The per-column noise quantile at which undrifted days exceed the drift `threshold` share on
    at most `alarms` of days (columns taken as independent), and never looser than 99%.

    With 12 columns a share above 0.2 takes 3 noisy columns and 99% per column already suffices;
    with 3 columns one noisy column is a share of 0.33, so each is held to ~99.83%.
    """
    from scipy.stats import binom

    if columns < 1:
        return NOISE_QUANTILE
    needed = math.floor(threshold * columns) + 1  # fewest drifted columns whose share > threshold
    low, high = 0.0, 1 - NOISE_QUANTILE
    if binom.sf(needed - 1, columns, high) <= alarms:
        return NOISE_QUANTILE
    for _ in range(50):  # bisection on the per-column false-alarm rate
        middle = (low + high) / 2
        low, high = (
            (middle, high) if binom.sf(needed - 1, columns, middle) <= alarms else (low, middle)
        )
    return 1 - low


def _split_sizes(reference_rows: int, size: int) -> tuple[int, int]:
    """(pseudo-current, pseudo-reference) rows for simulating a day of `size` rows: the day's size
    bucket, capped at NOISE_SAMPLE_CAP and at half the reference; the pseudo-reference is the rest
    of the reference, up to NOISE_REFERENCE_RATIO times the pseudo-current (distances are then
    rescaled to the actual sizes, which keeps a thousand-draw simulation cheap)."""
    current = min(_size_bucket(size), NOISE_SAMPLE_CAP, reference_rows // 2)
    return current, min(reference_rows - current, NOISE_REFERENCE_RATIO * current)


_ORDERED = (WASSERSTEIN, KOLMOGOROV_SMIRNOV)  # tests that read sorted values, never counts


def _size_bucket(size: int) -> int:
    """Sizes within ~10% share a floor: two significant digits (317 -> 320, 4_180 -> 4_200)."""
    if size < 100:
        return max(size, 1)
    digits = 10 ** (len(str(size)) - 2)
    return round(size / digits) * digits


def clean_values(values: pd.Series, numeric: bool) -> pd.Series:
    """Drop missing values (and infinities in numeric columns), keeping order."""
    if numeric:  # na_value: a nullable integer column holds pd.NA, not NaN
        array = values.to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(array[np.isfinite(array)])
    return values.dropna()


def _wasserstein(reference: ColumnReference, current: pd.Series, numeric: bool) -> float:
    """`scipy.stats.wasserstein_distance / max(std(reference), 0.001)`, as Evidently computes it.

    The same arithmetic as scipy's `_cdf_distance` (so the same floats), but the reference is
    sorted once per model version, the current side once, and the two are merged by inserting
    the current values after equal reference values (where scipy's stable sort puts them).
    """
    norm = max(reference.std, 0.001)
    ordered_reference = reference.sorted_values
    ordered_current = np.sort(current.to_numpy(dtype=float))
    slots = ordered_reference.searchsorted(ordered_current, "right")
    merged = np.insert(ordered_reference, slots, ordered_current)
    deltas = np.diff(merged)
    is_current = np.zeros(len(merged), dtype=bool)
    is_current[slots + np.arange(len(ordered_current))] = True
    # Values at or below each merged point, per side. Within a run of equal values the counts are
    # complete only at its last position, but every other position there has zero width.
    from_current = np.cumsum(is_current)[:-1]
    reference_cdf = (np.arange(1, len(merged)) - from_current) / len(ordered_reference)
    current_cdf = from_current / len(ordered_current)
    return float(np.sum(np.multiply(np.abs(reference_cdf - current_cdf), deltas)) / norm)


def _jensen_shannon(reference: ColumnReference, current: pd.Series, numeric: bool) -> float:
    from scipy.spatial import distance

    reference_share, current_share = _binned_shares(reference, current, numeric)
    return float(distance.jensenshannon(reference_share, current_share))


def _binned_shares(
    reference: ColumnReference, current: pd.Series, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's `get_binned_data` without zero-filling: Sturges bins or per-value shares."""
    size = len(reference.values)
    if numeric and reference.distinct > 20:
        combined = np.concatenate([reference.values.to_numpy(), current.to_numpy()])
        edges = np.histogram_bin_edges(combined, bins="sturges")
        return np.histogram(reference.values, edges)[0] / size, np.histogram(current, edges)[
            0
        ] / len(current)
    current_counts = current.value_counts(sort=False)
    keys = reference.counts.index.union(current_counts.index, sort=False)
    return (
        reference.counts.reindex(keys, fill_value=0).to_numpy() / size,
        current_counts.reindex(keys, fill_value=0).to_numpy() / len(current),
    )


def _kolmogorov_smirnov(reference: ColumnReference, current: pd.Series, numeric: bool) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference.values, current)[1])


def _chi_square(reference: ColumnReference, current: pd.Series, numeric: bool) -> float:
    from scipy.stats import chisquare

    current_counts = current.value_counts(sort=False)
    keys = reference.counts.index.union(current_counts.index, sort=False)
    expected = reference.counts.reindex(keys, fill_value=0).to_numpy() * (
        len(current) / len(reference.values)
    )
    observed = current_counts.reindex(keys, fill_value=0).to_numpy()
    return float(chisquare(observed, expected)[1])


def _chi_square_parts(reference: ColumnReference, current: pd.Series) -> tuple[float, float]:
    """(chi-square p-value of the day's rows in levels the reference holds, share of its rows in
    levels it lacks): the two things Evidently's p (0 whenever a level is unseen) mixes."""
    from scipy.stats import chisquare

    seen = current.isin(reference.counts.index)
    unseen = 1 - float(seen.mean())
    observed = current[seen].value_counts(sort=False).reindex(reference.counts.index, fill_value=0)
    if observed.sum() == 0 or len(observed) < 2:
        return 1.0, unseen  # nothing to compare among the seen levels
    expected = reference.counts.to_numpy() * (observed.sum() / len(reference.values))
    return float(chisquare(observed.to_numpy(), expected)[1]), unseen


def _z_test(reference: ColumnReference, current: pd.Series, numeric: bool) -> float:
    from scipy.stats import norm

    values = reference.values
    if values.nunique() == 1 and current.nunique() == 1 and values.iloc[0] == current.iloc[0]:
        return 1.0
    first = sorted(pd.unique(pd.concat([values, current])))[0]
    reference_share = float((values != first).mean())
    current_share = float((current != first).mean())
    n1, n2 = len(values), len(current)
    pooled = (reference_share * n1 + current_share * n2) / (n1 + n2)
    z = (reference_share - current_share) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


_SCORERS = {
    WASSERSTEIN: _wasserstein,
    JENSEN_SHANNON: _jensen_shannon,
    KOLMOGOROV_SMIRNOV: _kolmogorov_smirnov,
    CHI_SQUARE: _chi_square,
    Z_TEST: _z_test,
}
