"""Deterministic synthetic loan applications with a known default model and named drift scenarios.

Every day's rows depend only on (seed, day, settings), so any partition can be regenerated
exactly. The label is drawn from `true_default_probability`, which tests and benchmarks use to
compute the oracle ROC AUC a model could at best reach. Scenario transforms are applied on top of
the same base draws, so a scenario changes only what it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mlops_assets.ingestion.sources import DataSource, SourceDay

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The loan example's columns, as `loan_default.yaml` declares them (levels in the same order).
RAW_COLUMNS = [
    "application_id", "applied_at", "age", "annual_income", "credit_score", "open_accounts",
    "debt_to_income", "loan_amount", "employment_length_years", "home_ownership", "loan_purpose",
    "defaulted",
]  # fmt: skip
LABEL = "defaulted"
EVENT_TIME = "applied_at"
_REFERENCE_INCOME = 52_000.0
_HOME_LEVELS = ("RENT", "MORTGAGE", "OWN", "OTHER")  # probabilities below follow this order
_HOME_PROBABILITY_YOUNG = (0.65, 0.20, 0.10, 0.05)
_HOME_PROBABILITY_SETTLED = (0.30, 0.45, 0.20, 0.05)
_HOME_RISK = {"RENT": 0.25, "MORTGAGE": -0.15, "OWN": -0.25, "OTHER": 0.35}
_PURPOSE_LEVELS = (
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "renewable_energy",
)
# renewable_energy is allowed by the contract but only offered once the new_loan_purpose scenario starts.
_PURPOSE_PROBABILITY = (0.42, 0.20, 0.12, 0.10, 0.06, 0.10, 0.0)
if len(_PURPOSE_PROBABILITY) != len(_PURPOSE_LEVELS) or len(_HOME_PROBABILITY_YOUNG) != len(
    _HOME_LEVELS
):
    raise ValueError("The synthetic generator needs one probability per contract level")
_PURPOSE_LOG_AMOUNT = {
    "debt_consolidation": 0.0,
    "credit_card": -0.2,
    "home_improvement": 0.3,
    "car": 0.0,
    "medical": -0.5,
    "small_business": 0.5,
    "renewable_energy": 0.4,
}
_PURPOSE_RISK = {
    "debt_consolidation": 0.10,
    "credit_card": -0.05,
    "home_improvement": -0.20,
    "car": -0.30,
    "medical": 0.35,
    "small_business": 0.60,
    "renewable_energy": 0.15,
}


class DriftScenario(StrEnum):
    """How the applicant population changes from `scenario_start` on."""

    NONE = "none"
    # A recession: incomes fall by a third while debt payments stay, so debt-to-income rises.
    INCOME_DROP = "income_drop"
    # A new marketing channel brings applicants with credit scores ~70 points lower.
    CREDIT_SCORE_SHIFT = "credit_score_shift"
    # The product team launches renewable-energy loans: a third of applications, larger amounts.
    NEW_LOAN_PURPOSE = "new_loan_purpose"
    # Same applicants, but rates rose: the same features default more often (no feature drift).
    CONCEPT_CHANGE = "concept_change"
    # An upstream mapping bug: every delivered label is inverted (no feature drift).
    LABEL_ERROR = "label_error"

    @classmethod
    def parse(cls, value: str) -> DriftScenario:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"Unknown drift scenario {value!r}; choose one of: {names}") from None


@dataclass(frozen=True)
class SyntheticLoanGenerator:
    """Plain generator behind `SyntheticLoanSource`; usable directly in tests and benchmarks."""

    seed: int = 7
    rows_per_day: int = 2000
    scenario: DriftScenario = DriftScenario.NONE
    scenario_start: date | None = None
    scenario_end: date | None = None  # last day it applies (None: it lasts)
    scenario_every: int = 1  # it applies on every n-th day from the start (2: flapping)
    invalid_row_share: float = 0.0
    label_delay_days: int = 0
    as_of: date | None = None

    def __post_init__(self) -> None:
        if self.rows_per_day < 0:
            raise ValueError(f"rows_per_day must be >= 0, got {self.rows_per_day}")
        if not 0.0 <= self.invalid_row_share <= 1.0:
            raise ValueError(f"invalid_row_share must be in [0, 1], got {self.invalid_row_share}")
        if self.scenario is not DriftScenario.NONE and self.scenario_start is None:
            raise ValueError(f"Drift scenario {self.scenario.value!r} needs a scenario_start date")
        if self.scenario_every < 1:
            raise ValueError(f"scenario_every must be >= 1, got {self.scenario_every}")
        if self.scenario_end and self.scenario_start and self.scenario_end < self.scenario_start:
            raise ValueError(
                f"scenario_end {self.scenario_end} is before scenario_start {self.scenario_start}"
            )

    def scenario_active(self, day: date) -> bool:
        return (
            self.scenario is not DriftScenario.NONE
            and self.scenario_start is not None
            and self.scenario_start <= day <= (self.scenario_end or date.max)
            and (day - self.scenario_start).days % self.scenario_every == 0
        )

    def generate(self, day: date) -> pd.DataFrame:
        """One day of applications, in the contract's raw column order, sorted by event time."""
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng([self.seed, day.toordinal()])
        frame = _base_population(rng, day, int(rng.poisson(self.rows_per_day)))
        if self.scenario_active(day):
            frame = _apply_scenario(
                frame, self.scenario, np.random.default_rng([self.seed, day.toordinal(), 1])
            )
        probability = self.true_default_probability(frame)
        defaulted = rng.random(len(frame)) < probability
        if self.scenario is DriftScenario.LABEL_ERROR and self.scenario_active(day):
            defaulted = ~defaulted
        frame[LABEL] = pd.array(defaulted.astype("int8"), dtype="Int8")
        if self.as_of is not None and day > self.as_of - timedelta(days=self.label_delay_days):
            frame[LABEL] = pd.array([pd.NA] * len(frame), dtype="Int8")
        if self.invalid_row_share > 0 and len(frame):
            frame = _corrupt(
                frame,
                self.invalid_row_share,
                np.random.default_rng([self.seed, day.toordinal(), 2]),
            )
        return frame[RAW_COLUMNS]

    def true_default_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """P(default) of each row under the generator's model, given the day each row was made."""
        import numpy as np
        import pandas as pd

        income = frame["annual_income"].to_numpy(float)
        loan_to_income = frame["loan_amount"].to_numpy(float) / income
        credit = frame["credit_score"].to_numpy(float)
        debt_to_income = frame["debt_to_income"].to_numpy(float)
        employment = frame["employment_length_years"].to_numpy(float)
        logit = (
            -2.35
            - 0.012 * (credit - 680.0)
            + 2.4 * (debt_to_income - 0.25)
            + 0.6 * np.log(loan_to_income / 0.2)
            + frame["home_ownership"].map(_HOME_RISK).to_numpy(float)
            + frame["loan_purpose"].map(_PURPOSE_RISK).to_numpy(float)
            - 0.04 * np.minimum(np.nan_to_num(employment, nan=0.0), 10.0)
            + 0.3 * np.isnan(employment)
            + 0.5 * (credit < 580)
            - 0.008 * (frame["age"].to_numpy(float) - 40.0)
        )
        if self.scenario is DriftScenario.CONCEPT_CHANGE and self.scenario_start is not None:
            days = pd.to_datetime(frame[EVENT_TIME]).dt.date
            changed = days.map(self.scenario_active).to_numpy(bool)
            logit = logit + changed * (0.7 + 2.0 * (debt_to_income - 0.25))
        return 1.0 / (1.0 + np.exp(-logit))


def _choice(
    rng: np.random.Generator, levels: tuple[str, ...], probabilities: np.ndarray
) -> np.ndarray:
    """Vectorised categorical draw with one probability row per sample."""
    import numpy as np

    cumulative = np.cumsum(probabilities, axis=-1)
    index = (rng.random((len(cumulative), 1)) > cumulative).sum(axis=1)
    return np.asarray(levels, dtype=object)[np.minimum(index, len(levels) - 1)]


def _base_population(rng: np.random.Generator, day: date, n: int) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    age = np.clip(np.rint(18 + rng.gamma(4.0, 6.0, n)), 18, 85).astype("int64")
    employment = np.round(np.minimum(age - 18, rng.gamma(1.6, 4.0, n)), 1)
    employment[rng.random(n) < 0.03] = np.nan
    log_income = (
        np.log(_REFERENCE_INCOME)
        + 0.015 * (np.minimum(age, 60) - 40)
        + 0.02 * np.minimum(np.nan_to_num(employment, nan=0.0), 20)
        + rng.normal(0.0, 0.5, n)
    )
    income = np.round(np.clip(np.exp(log_income), 6_000, 5_000_000), 2)
    home_probability = np.where(
        (age < 30)[:, None], np.array(_HOME_PROBABILITY_YOUNG), np.array(_HOME_PROBABILITY_SETTLED)
    )
    home = _choice(rng, _HOME_LEVELS, home_probability)
    credit = np.clip(
        np.rint(
            rng.normal(
                600 + 1.4 * np.minimum(age, 65) + 35 * (log_income - np.log(_REFERENCE_INCOME)), 55
            )
        ),
        300,
        850,
    ).astype("int64")
    open_accounts = np.clip(rng.poisson(3 + 0.1 * (age - 18)), 0, 60).astype("int64")
    purpose = _choice(
        rng,
        _PURPOSE_LEVELS,
        np.broadcast_to(np.array(_PURPOSE_PROBABILITY), (n, len(_PURPOSE_LEVELS))),
    )
    log_amount = (
        np.log(11_000)
        + 0.45 * (log_income - np.log(_REFERENCE_INCOME))
        + pd.Series(purpose).map(_PURPOSE_LOG_AMOUNT).to_numpy(float)
        + rng.normal(0.0, 0.5, n)
    )
    amount = np.clip(np.round(np.exp(log_amount) / 25) * 25, 500, 100_000)
    debt_to_income = np.round(np.clip(rng.gamma(3.0, 0.07, n) + 0.01 * open_accounts, 0, 1.5), 4)
    start = datetime.combine(day, datetime.min.time())
    seconds = np.sort(rng.integers(0, 86_400, n))
    return pd.DataFrame(
        {
            "application_id": [f"APP-{day:%Y%m%d}-{i:06d}" for i in range(n)],
            "applied_at": pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s"),
            "age": age,
            "annual_income": income,
            "credit_score": credit,
            "open_accounts": open_accounts,
            "debt_to_income": debt_to_income,
            "loan_amount": amount,
            "employment_length_years": employment,
            "home_ownership": home,
            "loan_purpose": purpose,
        }
    )


def _apply_scenario(
    frame: pd.DataFrame, scenario: DriftScenario, rng: np.random.Generator
) -> pd.DataFrame:
    import numpy as np

    frame = frame.copy()
    if scenario is DriftScenario.INCOME_DROP:
        frame["annual_income"] = np.round(np.clip(frame["annual_income"] * 0.65, 0, None), 2)
        frame["debt_to_income"] = np.round(np.clip(frame["debt_to_income"] / 0.65, 0, 2), 4)
    elif scenario is DriftScenario.CREDIT_SCORE_SHIFT:
        frame["credit_score"] = np.clip(frame["credit_score"] - 70, 300, 850)
    elif scenario is DriftScenario.NEW_LOAN_PURPOSE:
        launched = rng.random(len(frame)) < 0.35
        frame.loc[launched, "loan_purpose"] = "renewable_energy"
        frame.loc[launched, "loan_amount"] = np.clip(
            np.round(frame.loc[launched, "loan_amount"] * 1.6 / 25) * 25, 500, 100_000
        )
    return frame


def _corrupt(frame: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Break a share of rows the way real feeds break, so quarantine has something to catch."""
    frame = frame.copy()
    count = max(1, round(share * len(frame)))
    rows = rng.choice(len(frame), size=min(count, len(frame)), replace=False)
    for kind, row in enumerate(rows):
        if kind % 4 == 0:
            frame.loc[frame.index[row], "age"] = 7
        elif kind % 4 == 1:
            frame.loc[frame.index[row], "credit_score"] = 990
        elif kind % 4 == 2:
            frame.loc[frame.index[row], "loan_purpose"] = "vacation"
        elif row > 0:
            frame.loc[frame.index[row], "application_id"] = frame["application_id"].iloc[row - 1]
    return frame


class SyntheticLoanSource(DataSource):
    """The loan example's source: deterministic synthetic applications, optionally drifting.

    Its settings come from the contract's `source.config`, and from MLOPS_SYNTHETIC_* /
    MLOPS_DRIFT_* / MLOPS_LABEL_DELAY_DAYS / MLOPS_AS_OF where set (docs/configuration.md).
    """

    seed: int = 7
    rows_per_day: int = Field(default=2000, ge=0, le=10_000_000)
    scenario: str = DriftScenario.NONE.value
    scenario_start: str | None = None
    scenario_end: str | None = None
    scenario_every: int = Field(default=1, ge=1, le=365)
    invalid_row_share: float = Field(default=0.0, ge=0, le=1)
    label_delay_days: int = Field(default=0, ge=0)
    as_of: str | None = None

    def model_post_init(self, context: Any) -> None:
        _ = self.generator  # a bad scenario or date fails when the code location loads

    @property
    def generator(self) -> SyntheticLoanGenerator:
        return SyntheticLoanGenerator(
            seed=self.seed,
            rows_per_day=self.rows_per_day,
            scenario=DriftScenario.parse(self.scenario),
            scenario_start=date.fromisoformat(self.scenario_start) if self.scenario_start else None,
            scenario_end=date.fromisoformat(self.scenario_end) if self.scenario_end else None,
            scenario_every=self.scenario_every,
            invalid_row_share=self.invalid_row_share,
            label_delay_days=self.label_delay_days,
            as_of=date.fromisoformat(self.as_of) if self.as_of else None,
        )

    def load_day(self, day: date) -> SourceDay:
        generator = self.generator
        lineage: dict[str, Any] = {
            "source": "synthetic",
            "source/seed": self.seed,
            "source/scenario": generator.scenario.value,
            "source/scenario_active": generator.scenario_active(day),
            "source/scenario_start": self.scenario_start or "",
        }
        return SourceDay(rows=generator.generate(day), lineage=lineage)
