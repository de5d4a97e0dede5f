"""The task objects' arithmetic (`mlops_assets.tasks`): metrics against scikit-learn's, the
paired bootstrap in the metric's own direction, the regression and multiclass floors and bias
metrics, and a multiclass prediction's columns whatever classes a model saw."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from mlops_assets.tasks import Binary, Multiclass, Regression, metric_key
from mlops_assets.training.gates import bias_gap, challenger_vs_champion, group_rates, quality_floor

REGRESSION = Regression()
SPECIES = Multiclass(("Adelie", "Chinstrap", "Gentoo"))


def prices(rows: int = 600, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """House-price-like rows: price grows with area and rooms, plus noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"area": rng.uniform(40, 200, rows), "rooms": rng.integers(1, 6, rows)})
    price = 1500 * frame["area"] + 8000 * frame["rooms"] + rng.normal(0, 20_000, rows)
    return frame, price.to_numpy()


def test_regression_metrics_match_scikit_learn_and_the_mean_predictor():
    labels = np.array([10.0, 12.0, 9.0, 15.0])
    predictions = np.array([11.0, 12.5, 8.0, 13.0])
    metrics = REGRESSION.metrics(labels, predictions, baseline=11.0)
    assert metrics["rmse"] == pytest.approx(mean_squared_error(labels, predictions) ** 0.5)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(labels, predictions))
    assert metrics["r2"] == pytest.approx(r2_score(labels, predictions))
    assert metrics["baseline_rmse"] == pytest.approx(
        mean_squared_error(labels, np.full(4, 11.0)) ** 0.5
    )
    assert metrics["rmse_vs_baseline"] == pytest.approx(
        1 - metrics["rmse"] / metrics["baseline_rmse"]
    )
    assert np.isnan(REGRESSION.metrics(np.array([]), np.array([]))["rmse"])


@pytest.mark.parametrize("estimator", sorted(Regression.estimators))
def test_each_built_in_regressor_learns_prices_and_beats_the_mean(estimator):
    frame, price = prices()
    model = REGRESSION.estimator(estimator, {})
    model.fit(frame[:500], price[:500])
    metrics = REGRESSION.metrics(
        price[500:], REGRESSION.predict(model, frame[500:]), REGRESSION.baseline(price[:500])
    )
    assert metrics["rmse_vs_baseline"] > 0.3, metrics
    gate = quality_floor(metrics["rmse_vs_baseline"], 0.1, Regression.floor_metric)
    assert gate.passed and "RMSE improvement over the mean" in gate.summary


def test_a_lower_rmse_is_an_improvement_and_its_paired_interval_is_above_zero():
    _, price = prices(rows=400)
    rng = np.random.default_rng(0)
    good = price + rng.normal(0, 5_000, len(price))
    poor = price + rng.normal(0, 30_000, len(price))
    low, high = REGRESSION.paired_interval(price, good, poor, draws=500, confidence=0.95)
    assert 0 < low < high
    assert REGRESSION.paired_interval(price, good, good, 200, 0.95) == (0.0, 0.0)
    good_rmse, poor_rmse = (REGRESSION.metrics(price, p)["rmse"] for p in (good, poor))
    better = challenger_vs_champion(
        good_rmse, poor_rmse, "1", None, -0.01, (low, high), Regression.metric
    )
    assert better.passed and better.numbers["absolute_change"] > 0
    worse = challenger_vs_champion(
        poor_rmse, good_rmse, "1", None, -0.01, (-high, -low), Regression.metric
    )
    assert not worse.passed and "challenger RMSE" in worse.summary


def test_the_binary_interval_is_the_roc_auc_difference():
    labels = np.array([0, 1] * 200)
    rng = np.random.default_rng(1)
    strong = labels + rng.normal(0, 0.5, len(labels))
    weak = labels + rng.normal(0, 2.0, len(labels))
    low, high = Binary().paired_interval(labels, strong, weak, draws=300, confidence=0.95)
    assert 0 < low < high < 1


def test_the_regression_bias_gate_compares_group_errors_as_shares_of_the_overall_error():
    labels = np.zeros(200)
    predictions = np.r_[np.full(100, 1.0), np.full(100, 3.0)]  # group b errs 3x as much
    groups = pd.Series(["a"] * 100 + ["b"] * 100)
    rates = group_rates(labels, predictions, groups, "relative_absolute_error", 0.5, 50, REGRESSION)
    assert rates == pytest.approx({"a": 0.5, "b": 1.5})
    assert not bias_gap(rates, "region", "relative_absolute_error", 0.25).passed
    with pytest.raises(ValueError, match="bias metric of a regression model must be one of"):
        group_rates(labels, predictions, groups, "recall", 0.5, 50, REGRESSION)


def test_a_label_without_spread_is_an_explained_refusal():
    splits = np.array(["train"] * 8 + ["validation"] * 2)
    assert "nothing to learn" in REGRESSION.problem(np.full(10, 4.0), splits, 0.2)
    assert REGRESSION.problem(np.arange(10.0), splits, 0.2) is None
    assert "bunched in time" in Binary().problem(np.r_[np.zeros(8), 1, 1], splits, 0.2)


@pytest.mark.parametrize("task", [Binary(), REGRESSION], ids=lambda task: task.name)
def test_the_online_answer_reads_back_as_the_batch_score(task):
    """What /invocations answers (`served`) and what the online client reads (`score_of`)."""
    scores = np.array([0.1, 0.75, 0.5])
    answer = task.served(scores)
    assert [task.score_of(row) for row in answer] == pytest.approx(scores.tolist())
    assert answer[1] == ([0.25, 0.75] if task.name == "binary" else 0.75)


def species(rows: int = 600, seed: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """Penguin-like rows: three species told apart by bill length and flipper length."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, rows)
    frame = pd.DataFrame(
        {
            "bill": np.array([39.0, 49.0, 47.0])[labels] + rng.normal(0, 2.5, rows),
            "flipper": np.array([190.0, 196.0, 217.0])[labels] + rng.normal(0, 6, rows),
        }
    )
    return frame, labels


def test_multiclass_metrics_match_scikit_learn_and_the_class_shares():
    frame, labels = species()
    model = SPECIES.estimator("logistic_regression", {}).fit(frame[:400], labels[:400])
    scores = SPECIES.predict(model, frame[400:])
    truth = labels[400:]
    metrics = SPECIES.metrics(truth, scores, SPECIES.baseline(labels[:400]))
    assert metrics["log_loss"] == pytest.approx(log_loss(truth, scores, labels=[0, 1, 2]))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, scores.argmax(1), average="macro"))
    assert metrics["roc_auc_ovr"] == pytest.approx(
        roc_auc_score(truth, scores, multi_class="ovr", average="macro")
    )
    shares = np.bincount(labels[:400], minlength=3) / 400
    assert metrics["baseline_log_loss"] == pytest.approx(
        log_loss(truth, np.tile(shares, (len(truth), 1)), labels=[0, 1, 2])
    )
    assert metrics["log_loss_vs_baseline"] > 0.5, metrics
    assert metrics["recall_Gentoo"] == pytest.approx(np.mean(scores[truth == 2].argmax(1) == 2))
    gate = quality_floor(metrics["log_loss_vs_baseline"], 0.1, Multiclass.floor_metric)
    assert gate.passed and "log loss improvement over the class shares" in gate.summary


def test_a_class_a_model_never_saw_gets_its_column_with_probability_zero():
    frame, labels = species()
    seen = labels != 1  # no Chinstrap in training
    model = SPECIES.estimator("hist_gradient_boosting", {}).fit(frame[seen], labels[seen])
    scores = SPECIES.predict(model, frame)
    assert scores.shape == (len(frame), 3) and (scores[:, 1] == 0).all()
    columns = SPECIES.prediction_columns(scores, "score")
    assert list(columns) == ["score", "score_Adelie", "score_Chinstrap", "score_Gentoo"]
    stored = pd.DataFrame(columns)
    assert np.allclose(SPECIES.stored_scores(stored, "score"), scores)
    assert set(SPECIES.decisions(scores, 0.5)["decision"]) <= {"Adelie", "Gentoo"}
    served = SPECIES.served(scores[:3])
    assert list(served[0]) == ["Adelie", "Chinstrap", "Gentoo"]
    # what MLflow's own server (KServe) answers: the same probabilities, in this order
    assert SPECIES.served_outputs() == "[P(Adelie), P(Chinstrap), P(Gentoo)] (predict_proba)"
    assert np.allclose([SPECIES.score_of(row) for row in served], scores[:3])


def test_a_lower_log_loss_is_an_improvement_and_its_paired_interval_is_above_zero():
    _, labels = species(rows=400)
    sharp = np.full((400, 3), 0.05)
    sharp[np.arange(400), labels] = 0.9
    vague = np.full((400, 3), 1 / 3)
    low, high = SPECIES.paired_interval(labels, sharp, vague, draws=300, confidence=0.95)
    assert 0 < low < high
    assert low < np.log(3) - np.log(1 / 0.9) < high


def test_the_multiclass_bias_gate_compares_macro_recall_per_group():
    labels = np.array([0, 1, 2] * 40)
    scores = np.eye(3)[labels]  # every row right...
    groups = pd.Series(["a"] * 60 + ["b"] * 60)
    scores[60:][labels[60:] == 2] = np.eye(3)[0]  # ...but group b's Gentoo are all missed
    rates = group_rates(labels, scores, groups, "macro_recall", 0.5, 20, SPECIES)
    assert rates == pytest.approx({"a": 1.0, "b": 2 / 3})
    assert not bias_gap(rates, "island", "macro_recall", 0.25).passed


def test_a_class_missing_from_the_validation_split_is_an_explained_refusal():
    splits = np.array(["train"] * 8 + ["validation"] * 4)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 2, 0, 0, 2, 0])  # no Chinstrap validates
    problem = SPECIES.problem(labels, splits, 0.2)
    assert "holds no row of the class Chinstrap (2 rows in all)" in problem
    assert "training.validation_fraction=0.2" in problem
    assert "the class Adelie" in SPECIES.problem(np.zeros(12, dtype=int), splits, 0.2)
    assert SPECIES.problem(np.array([0, 1, 2] * 4), splits, 0.2) is None


def test_a_class_only_the_validation_split_holds_is_an_explained_refusal():
    splits = np.array(["train"] * 8 + ["validation"] * 4)
    labels = np.array([0, 2, 0, 2, 0, 2, 0, 2, 1, 0, 2, 1])  # Chinstrap arrives late
    problem = SPECIES.problem(labels, splits, 0.2)
    assert "the train split (8 of 12 rows, by event time) holds no row of the class Chinstrap" in (
        problem
    )


def test_class_names_mlflow_refuses_in_metric_names_are_made_safe():
    survey = Multiclass(("Too Little", "A+", "São Paulo"))
    labels = np.array([0, 1, 2] * 10)
    metrics = survey.metrics(labels, np.eye(3)[labels] * 0.9 + 0.1 / 3)
    assert {"recall_Too Little", "recall_A_", "recall_S_o Paulo"} <= set(metrics)
    assert set(survey.label_summary(labels)) == {"rows_Too Little", "rows_A_", "rows_S_o Paulo"}
    assert metric_key("a/b-c.d e_f") == "a/b-c.d e_f"
