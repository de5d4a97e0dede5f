"""Pure training pieces: the time split, the pipeline, the metrics and every gate's arithmetic."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator
from mlops_assets.training.gates import (
    BIAS_GAP,
    bias_gap,
    challenger_vs_champion,
    group_rates,
    paired_bootstrap,
    quality_floor,
)
from mlops_assets.training.model import (
    SPLIT,
    build_pipeline,
    predict,
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
    probability = predict(model, validation, LOAN)
    metrics = LOAN.task.metrics(validation["defaulted"].astype(int).to_numpy(), probability)
    assert metrics["roc_auc"] > 0.65
    assert 0 < metrics["brier"] < 0.25
    novel = validation.head(3).assign(loan_purpose="timeshare", employment_length_years=np.nan)
    assert np.isfinite(predict(model, novel, LOAN)).all()


def test_metrics_with_one_class_report_nan_auc_instead_of_crashing():
    metrics = LOAN.task.metrics(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
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
    with pytest.raises(ValueError, match="bias metric of a binary model must be one of"):
        group_rates(labels, probability, groups, "precision", 0.5, 1)


def scores(rows: int, signal: float, seed: int):
    """Labels and a model's scores whose ROC AUC grows with `signal`."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    return (
        labels,
        lambda s, noise_seed: labels * s + np.random.default_rng(noise_seed).normal(0, 1, rows),
    )


@pytest.mark.parametrize("rows", [200, 5000])
def test_a_small_validation_set_neither_promotes_a_clearly_worse_model_nor_blocks_a_better_one(
    rows,
):
    labels, model = scores(rows, 0, seed=rows)
    strong, weak = model(1.5, 1), model(0.3, 2)  # ROC AUC about 0.85 and 0.58
    champion_auc = roc_auc_score(labels, strong)

    worse = challenger_vs_champion(
        roc_auc_score(labels, weak), champion_auc, "1", -0.01, None,
        paired_bootstrap(labels, weak, strong),
    )  # fmt: skip
    assert not worse.passed
    assert worse.numbers["change_interval_high"] < 0 and "interval is below zero" in worse.summary

    better = challenger_vs_champion(
        champion_auc, roc_auc_score(labels, weak), "1", -0.01, None,
        paired_bootstrap(labels, strong, weak),
    )  # fmt: skip
    assert better.passed and better.numbers["change_interval_low"] > 0
    assert "95% paired bootstrap interval" in better.summary


def test_a_tolerance_cannot_promote_a_model_the_data_show_to_be_worse():
    """On 20,000 rows a challenger 0.005 worse is certainly worse: the point change is within a
    -0.01 tolerance, but its whole interval is below zero, so it fails. A retrain that reproduces
    the champion's scores has the interval (0, 0) and passes."""
    labels, _ = scores(20_000, 0, seed=7)
    noise = np.random.default_rng(8).normal(0, 1, 20_000)
    champion = labels * 1.0 + noise
    challenger = labels * 0.97 + noise  # the same errors, a little less signal
    low, high = paired_bootstrap(labels, challenger, champion)
    change = roc_auc_score(labels, challenger) - roc_auc_score(labels, champion)
    assert -0.01 < change < 0 and high < 0
    result = challenger_vs_champion(
        roc_auc_score(labels, challenger), roc_auc_score(labels, champion), "1", -0.01, None,
        (low, high),
    )  # fmt: skip
    assert not result.passed and "interval is below zero" in result.summary
    point_only = challenger_vs_champion(
        roc_auc_score(labels, challenger), roc_auc_score(labels, champion), "1", -0.01, None
    )
    assert point_only.passed  # what the tolerance alone would have done
    assert paired_bootstrap(labels, champion, champion) == (0.0, 0.0)


def test_the_bootstrap_matches_sklearn_and_is_deterministic():
    labels, model = scores(2000, 0, seed=11)
    a, b = np.round(model(1.0, 5), 1), model(0.5, 6)  # rounded: many ties
    assert paired_bootstrap(labels, a, b) == paired_bootstrap(labels, a, b)
    low, high = paired_bootstrap(labels, a, b, draws=2000)
    point = roc_auc_score(labels, a) - roc_auc_score(labels, b)
    assert low < point < high and high - low < 0.1


def test_budget_and_escalation_in_the_pure_decision():
    from datetime import UTC, datetime

    from mlops_assets.monitoring.policy import (
        DriftObservation,
        RetrainingPolicy,
        retraining_decision,
    )

    now = datetime(2026, 1, 10, tzinfo=UTC)
    policy = RetrainingPolicy(max_promotions=1, budget_days=3)
    drifted = DriftObservation("2026-01-10", 0.5, 1, "2", rows=2000)
    assert retraining_decision(drifted, [], policy, False, None, now, recent_promotions=0).retrain
    assert not retraining_decision(
        drifted, [], policy, False, None, now, recent_promotions=1
    ).retrain
    persists = DriftObservation(
        "2026-01-10", 0.5, 1, "2", persists_after_retraining=True, rows=2000
    )
    decision = retraining_decision(persists, [], policy, False, None, now)
    assert not decision.retrain and "look at the data" in decision.reason


def test_a_factory_that_returns_no_classifier_is_refused_naming_the_field(tmp_path):
    from mlops_assets.contracts import ContractError, load_contracts
    from mlops_assets_tests.conftest import edited_contracts

    def regressor(document: dict) -> None:
        document["model"].update(
            estimator="mlops_assets_tests.estimators:linear_regression", params={}
        )

    folder = edited_contracts(tmp_path, "loan_default", regressor)
    contract = load_contracts(folder / "loan_default.yaml", {"MLOPS_HOME": str(tmp_path)})[0]
    with pytest.raises(ContractError) as error:
        build_pipeline(contract)
    assert (
        "model.estimator: mlops_assets_tests.estimators:linear_regression returned a "
        "LinearRegression, which has no predict_proba"
    ) in str(error.value)

    def passed_on(document: dict) -> None:  # a **params factory whose estimator refuses one
        document["model"]["estimator"] = "mlops_assets_tests.estimators:linear_regression"

    folder = edited_contracts(tmp_path / "passed_on", "loan_default", passed_on)
    contract = load_contracts(folder / "loan_default.yaml", {"MLOPS_HOME": str(tmp_path)})[0]
    with pytest.raises(ContractError, match=r"model\.params: .*unexpected keyword argument"):
        build_pipeline(contract)
