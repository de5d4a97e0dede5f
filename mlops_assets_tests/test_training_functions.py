"""Pure training pieces: the time split, the pipeline, the metrics and every gate's arithmetic."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator
from mlops_assets.training.gates import (
    BIAS_GAP,
    bias_gap,
    challenger_vs_champion,
    group_rates,
    quality_floor,
)
from mlops_assets.training.model import (
    SPLIT,
    build_pipeline,
    classification_metrics,
    positive_probability,
    split_by_time,
)
from mlops_assets_tests.conftest import LOAN


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    generator = SyntheticLoanGenerator(rows_per_day=600)
    raw = pd.concat([generator.generate(date(2026, 1, 1) + timedelta(days=d)) for d in range(5)])
    return LOAN.build_features(raw)


def test_time_split_never_trains_on_anything_later_than_validation(features):
    unlabelled = features.copy()
    unlabelled.loc[unlabelled.index[:50], "defaulted"] = pd.NA
    split = split_by_time(unlabelled, 0.2, LOAN)
    assert split["defaulted"].notna().all()
    assert len(split) == len(features) - 50
    train = split[split[SPLIT] == "train"]
    validation = split[split[SPLIT] == "validation"]
    assert train["applied_at"].max() < validation["applied_at"].min()
    assert len(validation) / len(split) == pytest.approx(0.2, abs=0.01)


def test_pipeline_learns_and_tolerates_unseen_levels(features):
    split = split_by_time(features, 0.2, LOAN)
    train, validation = split[split[SPLIT] == "train"], split[split[SPLIT] == "validation"]
    model = build_pipeline(LOAN)
    model.fit(train[LOAN.feature_columns], train["defaulted"].astype(int))
    probability = positive_probability(model, validation, LOAN)
    metrics = classification_metrics(validation["defaulted"].astype(int).to_numpy(), probability)
    assert metrics["roc_auc"] > 0.65
    assert 0 < metrics["brier"] < 0.25
    novel = validation.head(3).assign(loan_purpose="timeshare", employment_length_years=np.nan)
    assert np.isfinite(positive_probability(model, novel, LOAN)).all()


def test_metrics_with_one_class_report_nan_auc_instead_of_crashing():
    metrics = classification_metrics(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    assert np.isnan(metrics["roc_auc"]) and metrics["positive_rate"] == 0


def test_quality_floor():
    assert quality_floor(0.75, 0.7).passed
    assert not quality_floor(0.69, 0.7).passed
    assert not quality_floor(float("nan"), 0.7).passed


@pytest.mark.parametrize(
    ("challenger", "champion", "absolute", "relative", "passed"),
    [
        (0.760, 0.765, -0.01, None, True),  # a bounded regression is tolerated
        (0.750, 0.765, -0.01, None, False),  # worse by more than the margin
        (0.770, 0.765, 0.01, None, False),  # MLflow semantics: must improve by at least 0.01
        (0.780, 0.765, 0.01, None, True),
        (0.760, 0.765, None, -0.01, True),  # -0.65% relative
        (0.750, 0.765, None, -0.01, False),  # -1.96% relative
        (0.760, 0.765, -0.01, -0.001, False),  # both must hold
    ],
)
def test_challenger_vs_champion_follows_metric_threshold_semantics(
    challenger, champion, absolute, relative, passed
):
    result = challenger_vs_champion(challenger, champion, "3", absolute, relative)
    assert result.passed is passed
    assert result.numbers["absolute_change"] == pytest.approx(challenger - champion)
    assert "champion v3" in result.summary


def test_without_a_champion_the_challenger_passes_and_says_so():
    result = challenger_vs_champion(0.6, None, None, 0.05, 0.05)
    assert result.passed and "no champion yet" in result.summary


def test_bias_gap_by_group():
    labels = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0])
    probability = np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1])
    groups = pd.Series(["OWN"] * 6 + ["RENT"] * 6)
    recall = group_rates(labels, probability, groups, "recall", threshold=0.5, min_group_rows=1)
    assert recall == {"OWN": 0.75, "RENT": 0.25}
    approval = group_rates(
        labels, probability, groups, "approval_rate", threshold=0.5, min_group_rows=1
    )
    assert approval == {"OWN": 0.5, "RENT": pytest.approx(4 / 6)}
    assert not bias_gap(recall, "home_ownership", "recall", max_gap=0.4).passed
    assert bias_gap(recall, "home_ownership", "recall", max_gap=0.5).passed
    small_groups = group_rates(
        labels, probability, groups, "recall", threshold=0.5, min_group_rows=5
    )
    assert bias_gap(small_groups, "home_ownership", "recall", 0.1).name == BIAS_GAP
    assert bias_gap(small_groups, "home_ownership", "recall", 0.1).passed  # nothing to compare
    with pytest.raises(ValueError, match="bias metric must be one of"):
        group_rates(labels, probability, groups, "precision", 0.5, 1)
