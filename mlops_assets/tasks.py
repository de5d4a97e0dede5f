"""What differs between tasks, as one object per task: its built-in estimators, what a prediction
is, its metrics and the one the gates compare, the per-row loss the challenger's paired bootstrap
resamples, the baseline a quality floor is measured against, and the bias gate's group metric.

Training, the gates and serving ask `task_of(contract)` instead of testing the task themselves;
adding a task is adding one such object (and a shipped example). A multiclass task holds its
contract's classes (`for_label`), the others are stateless. The live rules of the performance
policy (`monitoring.policy`) ask the task too: what a day's labelled rows record for them
(`live_summary`), how noisy the gate metric is at a size (`live_error`), and the calibration rule
(`miscalibration`).

scikit-learn is imported inside the methods so that loading the code location stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Multinomial weights per chunk of bootstrap draws: a chunk holds draws x rows weights.
_DRAWS_PER_CHUNK = 100
# How many standard errors a live gap must exceed, on top of the policy's margin or band, to count:
# sampling alone rarely goes this far (about 1 in 700 one-sided), so a few hundred labelled rows a
# day do not retrain or roll back on noise.
NOISE_SE = 3.0


@dataclass(frozen=True)
class Metric:
    """A metric the gates can compare: its name in MLflow and the metadata, and its direction."""

    name: str
    title: str
    higher_is_better: bool

    def improvement(self, challenger: float, champion: float) -> float:
        """How much better `challenger` is than `champion`, in the metric's unit (< 0: worse)."""
        return challenger - champion if self.higher_is_better else champion - challenger


class LabelEncoding:
    """Delivered label values -> labels the task learns, missing (not known yet), or invalid."""

    dtype: ClassVar[str]  # as the raw and feature tables store the label (pandera's name)

    def encode(self, values: pd.Series) -> tuple[pd.Series, pd.Series]:
        """(labels as `dtype`, mask of delivered values that are no label)."""
        raise NotImplementedError

    def describe(self) -> str:
        """What a label value may be, for a quarantine reason."""
        raise NotImplementedError

    def meaning(self) -> str:
        """What the stored label means, for the table's column description."""
        raise NotImplementedError

    def checks(self) -> dict[str, Any]:
        """The stored column's pandera checks (`isin`, `ge`, `le`)."""
        raise NotImplementedError


@dataclass(frozen=True)
class ClassLabels(LabelEncoding):
    """Delivered values -> 1 (positive) / 0 (negative) / missing / invalid."""

    positive: frozenset[str]
    negative: frozenset[str] | None
    dtype: ClassVar[str] = "Int8"  # nullable 0/1

    def encode(self, values: pd.Series) -> tuple[pd.Series, pd.Series]:
        import pandas as pd

        delivered = values.notna() & (values.astype("string").str.strip() != "")
        text = values.map(_label_text, na_action="ignore")
        positive = text.isin(self.positive)
        negative = text.isin(self.negative) if self.negative is not None else ~positive
        encoded = pd.Series(pd.NA, index=values.index, dtype="Int8")
        encoded[delivered & positive] = 1
        encoded[delivered & negative & ~positive] = 0
        return encoded, delivered & encoded.isna()

    def describe(self) -> str:
        negative = (
            ", ".join(sorted(self.negative)) if self.negative is not None else "anything else"
        )
        return f"positive: {', '.join(sorted(self.positive))}; negative: {negative}"

    def meaning(self) -> str:
        return f"1 = {self.describe()}"

    def checks(self) -> dict[str, Any]:
        return {"isin": (0, 1)}


@dataclass(frozen=True)
class NumericLabels(LabelEncoding):
    """Delivered values -> numbers within the declared range / missing / invalid."""

    minimum: float | None
    maximum: float | None
    dtype: ClassVar[str] = "float64"

    def encode(self, values: pd.Series) -> tuple[pd.Series, pd.Series]:
        import numpy as np
        import pandas as pd

        delivered = values.notna() & (values.astype("string").str.strip() != "").fillna(False)
        number = pd.to_numeric(values, errors="coerce").astype(float)
        invalid = delivered & (number.isna() | ~np.isfinite(number.fillna(0)))
        if self.minimum is not None:
            invalid |= number < self.minimum
        if self.maximum is not None:
            invalid |= number > self.maximum
        return number.where(delivered & ~invalid), invalid

    def describe(self) -> str:
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"a number in [{low}, {high}]"

    def meaning(self) -> str:
        return f"the value to predict, {self.describe()}"

    def checks(self) -> dict[str, Any]:
        return {"ge": self.minimum, "le": self.maximum}


@dataclass(frozen=True)
class ClassIndices(LabelEncoding):
    """Delivered values -> the index of their class in the contract's `classes` / missing /
    invalid (a value that is no declared class)."""

    classes: tuple[str, ...]
    dtype: ClassVar[str] = "Int8"  # nullable class index; a contract holds at most 100 classes

    def encode(self, values: pd.Series) -> tuple[pd.Series, pd.Series]:
        import pandas as pd

        delivered = values.notna() & (values.astype("string").str.strip() != "").fillna(False)
        index = values.map(_label_text, na_action="ignore").map(
            {name: position for position, name in enumerate(self.classes)}
        )
        known = delivered & index.notna()
        encoded = pd.Series(pd.NA, index=values.index, dtype="Int8")
        encoded[known] = index[known].astype(int)
        return encoded, delivered & ~known

    def describe(self) -> str:
        return f"one of the classes {', '.join(self.classes)}"

    def meaning(self) -> str:
        return ", ".join(f"{position} = {name}" for position, name in enumerate(self.classes))

    def checks(self) -> dict[str, Any]:
        return {"isin": tuple(range(len(self.classes)))}


def metric_key(name: str) -> str:
    """A class name as MLflow accepts it in a metric or tag name (letters, digits, `_-./ `; any
    other character becomes `_`)."""
    import re

    return re.sub(r"[^\w\-./ ]", "_", name, flags=re.ASCII)


def _label_text(value: Any) -> str:
    """A delivered label value as text; whole floats lose their `.0` so `1.0` matches `1`."""
    value = value.item() if hasattr(value, "item") else value  # numpy scalars to Python
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


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


def rate_allowance(predicted: float, rows: float, band: float) -> float:
    """How far an observed rate may stand from a mean predicted probability `predicted` on
    `rows` rows: `band`, or 3 standard errors of a rate at that size if more."""
    import math

    return max(band, NOISE_SE * math.sqrt(max(predicted * (1 - predicted), 1e-12) / rows))


class Task:
    """The behaviour of one kind of label; subclasses are stateless singletons (`TASKS`)."""

    name: ClassVar[str]
    metric: ClassVar[Metric]  # the metric the gates compare
    # What a team's factory estimator must offer (`fit` and this), and what MLflow's pyfunc calls.
    predict_method: ClassVar[str]
    # Built-in estimator name -> (module, class), in this task's form.
    estimators: ClassVar[dict[str, tuple[str, str]]]
    bias_metrics: ClassVar[tuple[str, ...]]
    # Built-in estimator parameters other tasks' forms have and this one's lack.
    foreign_params: ClassVar[tuple[str, ...]] = ()
    # The quality floor: this metric (higher is better) at least the contract's `gates.<setting>`.
    floor_metric: ClassVar[Metric]
    floor_setting: ClassVar[str]
    # The validation metrics a trained model's card holds: name -> (ge, le, nullable).
    card_metrics: ClassVar[dict[str, tuple[float | None, float | None, bool]]]
    # The metrics of served predictions on the day's labelled rows (`model_performance`).
    served_metrics: ClassVar[tuple[str, ...]]
    # Registration tags the performance policy reads beside `validation_<metric>`.
    validation_counts: ClassVar[tuple[str, ...]]
    # What a prediction (the `score` column) is, and its bounds.
    score_description: ClassVar[str]
    score_range: ClassVar[tuple[float | None, float | None]] = (None, None)
    # What `live_summary` records per labelled day (`model_performance` metadata), and the
    # champion's validation numbers (`champion_<name>`, from its registry tags) the live rules
    # compare them with.
    live_numbers: ClassVar[tuple[str, ...]] = ("loss_std",)
    champion_numbers: ClassVar[tuple[str, ...]] = ("validation_loss_std",)

    def for_label(self, label: Any) -> Task:
        """The task of a contract's `label` section (multiclass: with its classes)."""
        return self

    def decision_values(self) -> tuple[str, ...] | None:
        """The values of a prediction's `decision` column, or None where it has none."""
        return None

    def decisions(self, scores: np.ndarray, threshold: float) -> dict[str, Any]:
        """Columns a prediction adds beside its score (binary: the decision at `threshold`)."""
        return {}

    def score_columns(self, prefix: str) -> dict[str, str]:
        """The stored columns of one model's predictions (`score`, `shadow_score`), described."""
        return {prefix: self.score_description}

    def prediction_columns(self, scores: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        """`predict`'s output as the columns of `score_columns`."""
        return {prefix: scores}

    def stored_scores(self, frame: pd.DataFrame, prefix: str) -> np.ndarray:
        """`predict`'s output back from the columns of `score_columns`."""
        return frame[prefix].to_numpy(dtype=float)

    def served(self, scores: np.ndarray) -> list[Any]:
        """The online server's `predictions`, as MLflow's scoring server answers for the model's
        pyfunc method (`predict_method`)."""
        return [float(score) for score in scores]

    def score_of(self, served: Any) -> float:
        """The score back from one of the online server's `predictions` (`served`)."""
        return float(served)

    def served_outputs(self) -> str:
        """What MLflow's own server (a KServe deployment) answers per row: the model's pyfunc
        method, `predict_method`."""
        return "the predicted value (predict)"

    def prediction_summary(self, scores: np.ndarray, threshold: float) -> dict[str, float]:
        """A batch's summary: its mean score, and (binary) the share decided positive."""
        import numpy as np

        return {"mean_score": float(np.mean(scores)) if len(scores) else float("nan")}

    def served_floor(self, gates: Any) -> float | None:
        """The quality floor in the served metric's own unit, for an alert rule; None where the
        floor is relative (regression: against the mean of the training labels)."""
        return None

    def drift_prediction(self, scores: np.ndarray) -> tuple[pd.Series, bool]:
        """What the drift report compares of the predictions, and whether it is numeric: the
        score (binary: P(positive); regression: the value)."""
        import pandas as pd

        return pd.Series(scores, dtype=float), True

    def drift_label(self, labels: pd.Series) -> tuple[pd.Series, bool]:
        """The delivered labels as the drift report compares them, and whether numeric: the
        classes (as text), or the numbers for a regression."""
        return labels.dropna().astype(str).reset_index(drop=True), False

    def live_summary(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """What the live rules need of a day's labelled rows beside the gate metric: the spread
        of the per-row loss the metric averages (its noise) and what calibration compares."""
        raise NotImplementedError

    def metric_error(self, value: float, rows: float, loss_std: float) -> float:
        """The standard error of the gate metric, a mean of per-row losses with this spread,
        measured on `rows` rows (0 when the spread or the size is unknown)."""
        import math

        if rows < 1 or not loss_std > 0:
            return 0.0
        return loss_std / math.sqrt(rows)

    def live_error(self, value: float, rows: float, numbers: dict[str, float]) -> float:
        """The standard error of the served gate metric `value` of `rows` labelled rows, with
        the days' pooled `live_summary`."""
        return self.metric_error(value, rows, numbers.get("loss_std", 0.0))

    def validation_error(self, value: float, rows: float, numbers: dict[str, float]) -> float:
        """The standard error of the champion's validation gate metric on its `rows` rows."""
        return self.metric_error(value, rows, numbers.get("champion_validation_loss_std", 0.0))

    def margin(self, margin: float, reference: float) -> float:
        """`performance.margin` in the gate metric's unit: a share of the `reference` value (the
        validation or shadow error) for an error metric, absolute for a score in [0, 1]."""
        return margin * reference

    def miscalibration(
        self, numbers: dict[str, float], rows: float, band: float, validation: float
    ) -> str | None:
        """Why the served predictions are off on average on these labelled rows (beyond
        `performance.calibration_band` and 3 standard errors), or None."""
        raise NotImplementedError

    def calibration_summary(self, numbers: dict[str, float]) -> str:
        """The calibration numbers, for a decision that finds nothing wrong."""
        raise NotImplementedError

    def estimator(self, name: str, params: dict[str, Any]) -> Any:
        """The built-in estimator `name` of this task, with `params`."""
        import importlib

        if name not in self.estimators:
            raise ValueError(
                f"{name!r} is not a built-in {self.name} estimator ({', '.join(self.estimators)})"
            )
        module, cls = self.estimators[name]
        extra = {"early_stopping": False} if name == "hist_gradient_boosting" else {}
        own = {key: value for key, value in params.items() if key not in self.foreign_params}
        return getattr(importlib.import_module(module), cls)(**extra, **own)

    def encoding(self, label: Any) -> LabelEncoding:
        """How the contract's `label` section reads delivered values."""
        raise NotImplementedError

    def labels(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """The label column as the estimator learns it."""
        raise NotImplementedError

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray:
        """One prediction per row: what is stored, served and compared against labels."""
        raise NotImplementedError

    def metrics(
        self, labels: np.ndarray, predictions: np.ndarray, baseline: float | None = None
    ) -> dict[str, float]:
        """Every metric of the task on these rows (NaN where it is undefined); `baseline` is the
        constant prediction a quality floor compares with (`baseline`)."""
        raise NotImplementedError

    def label_summary(self, labels: np.ndarray) -> dict[str, float]:
        """What the validation labels hold, for the registry's tags: how far its metric can be
        trusted (binary: positives; regression: the labels' mean and spread)."""
        raise NotImplementedError

    def baseline(self, train_labels: np.ndarray) -> Any:
        """The constant prediction learned from the training labels alone: their mean (the
        positive rate, for binary; the class shares, for multiclass)."""
        import numpy as np

        return float(np.mean(np.asarray(train_labels, dtype=float)))

    def row_weights_metric(
        self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """The gate metric per row of `weights` (draws x rows multinomial counts)."""
        raise NotImplementedError

    def problem(
        self, labels: np.ndarray, splits: np.ndarray, validation_fraction: float
    ) -> str | None:
        """Why these labels (with their `train`/`validation` split per row, by event time) cannot
        train and validate a model, in the data's terms; None if they can."""
        raise NotImplementedError

    def group_metric(
        self, labels: np.ndarray, predictions: np.ndarray, metric: str, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """For the bias gate: per row, whether it counts in a group's denominator, and its value;
        a group's metric is the mean value over its counted rows."""
        raise NotImplementedError

    def group_value(
        self,
        labels: np.ndarray,
        predictions: np.ndarray,
        metric: str,
        threshold: float,
        rows: np.ndarray,
    ) -> tuple[int, float]:
        """For the bias gate: the rows of one group (a mask) in the metric's denominator, and the
        group's metric (the mean of `group_metric`'s values over them)."""
        counted, values = self.group_metric(labels, predictions, metric, threshold)
        denominator = rows & counted
        value = float(values[denominator].mean()) if denominator.any() else float("nan")
        return int(denominator.sum()), value

    def paired_interval(
        self,
        labels: np.ndarray,
        challenger: np.ndarray,
        champion: np.ndarray,
        draws: int,
        confidence: float,
        seed: int = 0,
    ) -> tuple[float, float]:
        """The `confidence` interval of the gate metric's improvement of `challenger` over
        `champion`, over bootstrap resamples of the rows, the same rows for both in each draw
        (paired). Each draw is a multinomial weighting of the rows; draws where the metric is
        undefined are skipped. Seeded: the same inputs give the same interval."""
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
                self.metric.improvement(
                    self.row_weights_metric(labels, challenger, weights),
                    self.row_weights_metric(labels, champion, weights),
                )
            )
        difference = np.concatenate(differences)
        difference = difference[~np.isnan(difference)]
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(difference, [tail, 100 - tail])
        return float(low), float(high)


class Binary(Task):
    """Two classes; a prediction is P(positive)."""

    name = "binary"
    metric = Metric("roc_auc", "ROC AUC", higher_is_better=True)
    predict_method = "predict_proba"
    estimators: ClassVar[dict[str, tuple[str, str]]] = {
        "hist_gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingClassifier"),
        "logistic_regression": ("sklearn.linear_model", "LogisticRegression"),
        "random_forest": ("sklearn.ensemble", "RandomForestClassifier"),
    }
    bias_metrics = ("recall", "approval_rate")
    floor_metric = metric
    floor_setting = "min_roc_auc"
    served_metrics = ("roc_auc", "pr_auc", "brier", "log_loss", "positive_rate")
    validation_counts = ("validation_rows", "validation_positives")
    score_description = "P(positive class)"
    score_range = (0.0, 1.0)
    live_numbers = ("observed_positive_rate", "mean_score_labelled")
    champion_numbers = ("validation_positives",)
    card_metrics: ClassVar[dict[str, tuple[float | None, float | None, bool]]] = {
        "roc_auc": (0, 1, True),
        "pr_auc": (0, 1, True),
        "brier": (0, 1, False),
        "log_loss": (0, None, False),
    }

    def decision_values(self) -> tuple[str, ...] | None:
        return ("positive", "negative")

    def decisions(self, scores: np.ndarray, threshold: float) -> dict[str, Any]:
        import numpy as np

        return {"decision": np.where(scores >= threshold, "positive", "negative")}

    def served(self, scores: np.ndarray) -> list[Any]:
        """[[P(negative), P(positive)], ...], as `predict_proba`."""
        return [[float(1 - p), float(p)] for p in scores]

    def score_of(self, served: Any) -> float:
        return float(served[1])

    def served_outputs(self) -> str:
        return "[P(negative), P(positive)] (predict_proba)"

    def prediction_summary(self, scores: np.ndarray, threshold: float) -> dict[str, float]:
        nan = float("nan")
        return {
            **super().prediction_summary(scores, threshold),
            "positive_rate": float((scores >= threshold).mean()) if len(scores) else nan,
        }

    def served_floor(self, gates: Any) -> float | None:
        return gates.min_roc_auc

    def live_summary(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        import numpy as np

        return {
            "observed_positive_rate": float(np.mean(labels)),
            "mean_score_labelled": float(np.mean(scores)),
        }

    def live_error(self, value: float, rows: float, numbers: dict[str, float]) -> float:
        observed = numbers["observed_positive_rate"]
        return auc_standard_error(value, observed * rows, (1 - observed) * rows)

    def validation_error(self, value: float, rows: float, numbers: dict[str, float]) -> float:
        positives = numbers.get("champion_validation_positives", 0.0)
        return auc_standard_error(value, positives, rows - positives)

    def margin(self, margin: float, reference: float) -> float:
        return margin

    def miscalibration(
        self, numbers: dict[str, float], rows: float, band: float, validation: float
    ) -> str | None:
        """The observed positive rate against the mean predicted probability."""

        observed, predicted = numbers["observed_positive_rate"], numbers["mean_score_labelled"]
        allowed = rate_allowance(predicted, rows, band)
        if abs(observed - predicted) <= allowed:
            return None
        return (
            f"observed positive rate {observed:.4f} vs mean predicted probability "
            f"{predicted:.4f}: off by more than {allowed:.4f}"
        )

    def calibration_summary(self, numbers: dict[str, float]) -> str:
        return (
            f"observed rate {numbers['observed_positive_rate']:.4f} vs predicted "
            f"{numbers['mean_score_labelled']:.4f}"
        )

    def encoding(self, label: Any) -> LabelEncoding:
        negative = label.negative
        return ClassLabels(frozenset(label.positive), frozenset(negative) if negative else None)

    def labels(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        return frame[column].astype(int).to_numpy()

    def label_summary(self, labels: np.ndarray) -> dict[str, float]:
        return {"positives": int(labels.sum())}

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(features)[:, 1]

    def metrics(
        self, labels: np.ndarray, predictions: np.ndarray, baseline: float | None = None
    ) -> dict[str, float]:
        """ROC AUC, PR AUC, Brier score and log loss; AUCs are NaN when only one class is
        present (a constant `baseline` has ROC AUC 0.5 whatever it is, so it is not used)."""
        import numpy as np
        from sklearn.metrics import (
            average_precision_score,
            brier_score_loss,
            log_loss,
            roc_auc_score,
        )

        both = len(np.unique(labels)) == 2
        nan = float("nan")
        return {
            "roc_auc": float(roc_auc_score(labels, predictions)) if both else nan,
            "pr_auc": float(average_precision_score(labels, predictions)) if both else nan,
            "brier": float(brier_score_loss(labels, predictions)),
            "log_loss": float(log_loss(labels, predictions, labels=[0, 1])),
            "positive_rate": float(np.mean(labels)),
            "rows": float(len(labels)),
        }

    def row_weights_metric(
        self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """ROC AUC per draw from one sort (Mann-Whitney, ties between scores counted half), so
        1,000 draws over 10,000 rows take about a second."""
        import numpy as np

        order = np.argsort(predictions, kind="stable")
        ordered, positive = np.asarray(predictions)[order], labels[order]
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
            return (positives * (before + 0.5 * tied)).sum(axis=1) / np.where(
                pairs > 0, pairs, np.nan
            )

    def problem(
        self, labels: np.ndarray, splits: np.ndarray, validation_fraction: float
    ) -> str | None:
        positives = int(labels.sum())
        if positives in (0, len(labels)):
            return (
                f"all {len(labels)} labelled rows are {'positive' if positives else 'negative'}: "
                f"the model needs both classes (widen training.window_days or training.since)"
            )
        for split in ("train", "validation"):
            rows = labels[splits == split]
            if len(set(rows.tolist())) < 2:
                held = "positive" if rows[0] == 1 else "negative"
                return (
                    f"the {split} split ({len(rows)} of {len(labels)} rows, by event time) holds "
                    f"only {held} rows although the set has {positives} positive(s): the classes "
                    "are bunched in time; widen training.window_days or change "
                    f"training.validation_fraction={validation_fraction}"
                )
        return None

    def group_metric(
        self, labels: np.ndarray, predictions: np.ndarray, metric: str, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """`recall`: positives flagged; `approval_rate`: rows not flagged (declined, for a
        lender, when P(positive) >= threshold)."""
        import numpy as np

        flagged = (predictions >= threshold).astype(float)
        if metric == "recall":
            return labels == 1, flagged
        return np.ones(len(labels), dtype=bool), 1 - flagged


class Regression(Task):
    """A numeric label; a prediction is the value. The quality floor is measured against a
    predictor of the training rows' mean, so it holds whatever the label's unit."""

    name = "regression"
    metric = Metric("rmse", "RMSE", higher_is_better=False)
    predict_method = "predict"
    estimators: ClassVar[dict[str, tuple[str, str]]] = {
        "hist_gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingRegressor"),
        "linear_regression": ("sklearn.linear_model", "Ridge"),
        "random_forest": ("sklearn.ensemble", "RandomForestRegressor"),
    }
    bias_metrics = ("relative_absolute_error",)
    foreign_params = ("class_weight",)
    floor_metric = Metric("rmse_vs_baseline", "RMSE improvement over the mean", True)
    floor_setting = "min_improvement_over_baseline"
    served_metrics = ("rmse", "mae", "r2", "mean_label")
    validation_counts = ("validation_rows", "validation_loss_std")
    score_description = "The predicted value"
    card_metrics: ClassVar[dict[str, tuple[float | None, float | None, bool]]] = {
        "rmse": (0, None, False),
        "mae": (0, None, False),
        "r2": (None, 1, True),
        "baseline_rmse": (0, None, False),
        "rmse_vs_baseline": (None, 1, True),
        "loss_std": (0, None, False),
    }

    live_numbers = ("loss_std", "mean_residual", "residual_std")

    def encoding(self, label: Any) -> LabelEncoding:
        low, high = label.range or (None, None)
        return NumericLabels(low, high)

    def drift_label(self, labels: pd.Series) -> tuple[pd.Series, bool]:
        return labels.dropna().astype(float).reset_index(drop=True), True

    def live_summary(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """The spread of the squared errors, and the mean and spread of the residuals (label -
        prediction)."""
        import numpy as np

        residuals = np.asarray(labels, float) - np.asarray(scores, float)
        return {
            "loss_std": float(np.std(residuals**2)),
            "mean_residual": float(np.mean(residuals)),
            "residual_std": float(np.std(residuals)),
        }

    def metric_error(self, value: float, rows: float, loss_std: float) -> float:
        """RMSE is the root of the mean squared error: its error is the MSE's over 2 RMSE."""
        return super().metric_error(value, rows, loss_std) / (2 * value) if value > 0 else 0.0

    def miscalibration(
        self, numbers: dict[str, float], rows: float, band: float, validation: float
    ) -> str | None:
        """The mean residual against 0, `band` a share of the validation RMSE: a model whose
        predictions are too high or too low on average."""
        import math

        residual = numbers["mean_residual"]
        allowed = max(
            band * validation, NOISE_SE * numbers["residual_std"] / math.sqrt(max(rows, 1))
        )
        if abs(residual) <= allowed:
            return None
        side = "above" if residual > 0 else "below"
        return (
            f"mean residual {residual:+.4f} (labels {side} the predictions): off by more than "
            f"{allowed:.4f}"
        )

    def calibration_summary(self, numbers: dict[str, float]) -> str:
        return f"mean residual {numbers['mean_residual']:+.4f}"

    def labels(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        return frame[column].astype(float).to_numpy()

    def label_summary(self, labels: np.ndarray) -> dict[str, float]:
        import numpy as np

        return {"label_mean": float(np.mean(labels)), "label_std": float(np.std(labels))}

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray:
        import numpy as np

        return np.asarray(model.predict(features), dtype=float)

    def metrics(
        self, labels: np.ndarray, predictions: np.ndarray, baseline: float | None = None
    ) -> dict[str, float]:
        """RMSE, MAE and R², and the RMSE and MAE of a constant `baseline` (the training rows'
        mean; these rows' own mean without one) on the same rows."""
        import numpy as np

        labels, predictions = np.asarray(labels, float), np.asarray(predictions, float)
        if not len(labels):
            return dict.fromkeys(
                (
                    "rmse",
                    "mae",
                    "r2",
                    "baseline_rmse",
                    "baseline_mae",
                    "rmse_vs_baseline",
                    "loss_std",
                ),
                float("nan"),
            ) | {"rows": 0.0}
        constant = float(np.mean(labels)) if baseline is None else baseline
        errors, baseline_errors = predictions - labels, constant - labels
        rmse = float(np.sqrt(np.mean(errors**2)))
        baseline_rmse = float(np.sqrt(np.mean(baseline_errors**2)))
        spread = float(np.sum((labels - labels.mean()) ** 2))
        return {
            "rmse": rmse,
            "mae": float(np.mean(np.abs(errors))),
            "r2": 1 - float(np.sum(errors**2)) / spread if spread else float("nan"),
            "baseline_rmse": baseline_rmse,
            "baseline_mae": float(np.mean(np.abs(baseline_errors))),
            # the share of the baseline's error the model removes (0: no better; 1: exact)
            "rmse_vs_baseline": 1 - rmse / baseline_rmse if baseline_rmse else float("nan"),
            "loss_std": float(np.std(errors**2)),  # the squared errors': how noisy the RMSE is
            "mean_label": float(np.mean(labels)),
            "rows": float(len(labels)),
        }

    def row_weights_metric(
        self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """RMSE per draw: the weighted mean of the squared errors, per row of `weights`."""
        import numpy as np

        squared = (np.asarray(predictions, float) - labels) ** 2
        return np.sqrt((weights * squared).sum(axis=1) / weights.sum(axis=1))

    def problem(
        self, labels: np.ndarray, splits: np.ndarray, validation_fraction: float
    ) -> str | None:
        import numpy as np

        if not np.all(np.isfinite(labels)):
            return "labels hold infinite values"
        if len(np.unique(labels)) < 2:
            return f"all {len(labels)} labelled rows have the label {labels[0]:g}: nothing to learn"
        return None

    def group_metric(
        self, labels: np.ndarray, predictions: np.ndarray, metric: str, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """`relative_absolute_error`: every row counts, with its absolute error over the mean
        absolute error of all rows (a group's value is its MAE as a share of the overall MAE, so
        the gate's limit holds whatever the label's unit)."""
        import numpy as np

        errors = np.abs(np.asarray(predictions, float) - labels)
        overall = float(errors.mean()) if len(errors) else 0.0
        return np.ones(len(labels), dtype=bool), errors / overall if overall else errors


# Log loss of a probability clipped here (a class predicted impossible still has a finite loss).
_MIN_PROBABILITY = 1e-15


@dataclass(frozen=True)
class Multiclass(Task):
    """Three or more classes, `classes` in the contract's order; a prediction is one probability
    per class (a row of `predict_proba`). The gate metric is log loss, a per-row loss the paired
    bootstrap resamples; the quality floor is measured against predicting the training rows'
    class shares, so it holds whatever the number of classes."""

    classes: tuple[str, ...] = ()
    name: ClassVar[str] = "multiclass"
    metric: ClassVar[Metric] = Metric("log_loss", "log loss", higher_is_better=False)
    predict_method: ClassVar[str] = "predict_proba"
    estimators: ClassVar[dict[str, tuple[str, str]]] = Binary.estimators
    bias_metrics: ClassVar[tuple[str, ...]] = ("macro_recall",)
    floor_metric: ClassVar[Metric] = Metric(
        "log_loss_vs_baseline", "log loss improvement over the class shares", True
    )
    floor_setting: ClassVar[str] = "min_improvement_over_baseline"
    served_metrics: ClassVar[tuple[str, ...]] = ("log_loss", "macro_f1", "roc_auc_ovr", "accuracy")
    validation_counts: ClassVar[tuple[str, ...]] = ("validation_rows", "validation_loss_std")
    score_description: ClassVar[str] = "P(the predicted class)"
    score_range: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)
    card_metrics: ClassVar[dict[str, tuple[float | None, float | None, bool]]] = {
        "log_loss": (0, None, False),
        "macro_f1": (0, 1, False),
        "roc_auc_ovr": (0, 1, True),
        "accuracy": (0, 1, False),
        "baseline_log_loss": (0, None, False),
        "log_loss_vs_baseline": (None, 1, True),
        "loss_std": (0, None, False),
    }

    def for_label(self, label: Any) -> Task:
        return Multiclass(tuple(label.classes))

    def _counts(self, indices: np.ndarray) -> np.ndarray:
        """Rows per class, in the contract's order, of these class indices."""
        import numpy as np

        return np.bincount(np.asarray(indices, dtype=int), minlength=len(self.classes))

    @property
    def live_numbers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (
            "loss_std",
            *(f"observed_share_{name}" for name in self.classes),
            *(f"mean_probability_{name}" for name in self.classes),
        )

    def live_summary(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """The spread of the per-row log loss, and per class its share of the labels and its
        mean predicted probability."""
        import numpy as np

        labels = np.asarray(labels, dtype=int)
        shares = self._counts(labels) / max(len(labels), 1)
        means = np.asarray(scores, float).mean(axis=0)
        return {
            "loss_std": float(np.std(self._row_loss(labels, scores))),
            **{f"observed_share_{n}": float(v) for n, v in zip(self.classes, shares, strict=True)},
            **{f"mean_probability_{n}": float(v) for n, v in zip(self.classes, means, strict=True)},
        }

    def miscalibration(
        self, numbers: dict[str, float], rows: float, band: float, validation: float
    ) -> str | None:
        """Per class, its observed share against its mean predicted probability; the class
        furthest off beyond `band` (and noise) is named."""

        worst = None
        for name in self.classes:
            observed = numbers[f"observed_share_{name}"]
            predicted = numbers[f"mean_probability_{name}"]
            allowed = rate_allowance(predicted, rows, band)
            excess = abs(observed - predicted) - allowed
            if excess > 0 and (worst is None or excess > worst[0]):
                worst = (excess, name, observed, predicted, allowed)
        if worst is None:
            return None
        _, name, observed, predicted, allowed = worst
        return (
            f"observed share of {name} {observed:.4f} vs its mean predicted probability "
            f"{predicted:.4f}: off by more than {allowed:.4f}"
        )

    def calibration_summary(self, numbers: dict[str, float]) -> str:
        gaps = {
            name: numbers[f"observed_share_{name}"] - numbers[f"mean_probability_{name}"]
            for name in self.classes
        }
        name = max(gaps, key=lambda n: abs(gaps[n]))
        return f"class shares within {abs(gaps[name]):.4f} of the mean predicted probabilities"

    def encoding(self, label: Any) -> LabelEncoding:
        return ClassIndices(tuple(label.classes))

    def labels(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        return frame[column].astype(int).to_numpy()

    def decision_values(self) -> tuple[str, ...] | None:
        return self.classes

    def decisions(self, scores: np.ndarray, threshold: float) -> dict[str, Any]:
        """The most probable class (the threshold is binary's)."""
        import numpy as np

        return {"decision": np.asarray(self.classes, dtype=object)[np.argmax(scores, axis=1)]}

    def score_columns(self, prefix: str) -> dict[str, str]:
        return {
            prefix: self.score_description,
            **{f"{prefix}_{name}": f"P({name})" for name in self.classes},
        }

    def prediction_columns(self, scores: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        import numpy as np

        return {
            prefix: np.max(scores, axis=1),
            **{f"{prefix}_{name}": scores[:, i] for i, name in enumerate(self.classes)},
        }

    def stored_scores(self, frame: pd.DataFrame, prefix: str) -> np.ndarray:
        return frame[[f"{prefix}_{name}" for name in self.classes]].to_numpy(dtype=float)

    def drift_prediction(self, scores: np.ndarray) -> tuple[pd.Series, bool]:
        """The predicted classes."""
        import pandas as pd

        return pd.Series(self.decisions(scores, 0.5)["decision"], dtype=object), False

    def drift_label(self, labels: pd.Series) -> tuple[pd.Series, bool]:
        """The classes by name."""
        import pandas as pd

        names = [self.classes[int(index)] for index in labels.dropna()]
        return pd.Series(names, dtype=object), False

    def served(self, scores: np.ndarray) -> list[Any]:
        """One {class: probability} per row."""
        return [dict(zip(self.classes, map(float, row), strict=True)) for row in scores]

    def score_of(self, served: Any) -> Any:
        """The row of probabilities, in the contract's class order."""
        return [float(served[name]) for name in self.classes]

    def served_outputs(self) -> str:
        return f"[{', '.join(f'P({name})' for name in self.classes)}] (predict_proba)"

    def prediction_summary(self, scores: np.ndarray, threshold: float) -> dict[str, float]:
        """The mean probability of the predicted class, and the share predicted per class."""
        import numpy as np

        predicted = np.argmax(scores, axis=1) if len(scores) else np.array([], dtype=int)
        shares = self._counts(predicted) / max(len(predicted), 1)
        return {
            "mean_score": float(np.mean(np.max(scores, axis=1))) if len(scores) else float("nan"),
            **{
                f"share_{name}": float(share)
                for name, share in zip(self.classes, shares, strict=True)
            },
        }

    def predict(self, model: Any, features: pd.DataFrame) -> np.ndarray:
        """A column per declared class, whichever classes the model saw in training (one it never
        saw has probability 0)."""
        import numpy as np

        probabilities = np.asarray(model.predict_proba(features), dtype=float)
        learned = getattr(model, "classes_", None)
        if learned is None or probabilities.shape[1] == len(self.classes):
            return probabilities
        scores = np.zeros((len(probabilities), len(self.classes)))
        scores[:, np.asarray(learned, dtype=int)] = probabilities
        return scores

    def baseline(self, train_labels: np.ndarray) -> Any:
        """The training rows' class shares, as a list (it is stored in the model card)."""

        counts = self._counts(train_labels)
        return (counts / max(counts.sum(), 1)).tolist()

    def label_summary(self, labels: np.ndarray) -> dict[str, float]:

        counts = self._counts(labels)
        return {
            f"rows_{metric_key(name)}": int(count)
            for name, count in zip(self.classes, counts, strict=True)
        }

    @staticmethod
    def _row_loss(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
        import numpy as np

        picked = scores[np.arange(len(labels)), np.asarray(labels, dtype=int)]
        return -np.log(np.clip(picked, _MIN_PROBABILITY, 1.0))

    def metrics(
        self, labels: np.ndarray, predictions: np.ndarray, baseline: Any = None
    ) -> dict[str, float]:
        """Log loss, macro F1 and one-vs-rest ROC AUC (both over the classes these rows hold),
        accuracy, recall per class (NaN for a class the rows lack), and the log loss of the
        `baseline` class shares (these rows' own without one)."""
        import numpy as np
        from sklearn.metrics import f1_score, roc_auc_score

        labels = np.asarray(labels, dtype=int)
        scores = np.asarray(predictions, dtype=float).reshape(len(labels), len(self.classes))
        nan = float("nan")
        if not len(labels):
            return dict.fromkeys(
                (*self.card_metrics, *(f"recall_{metric_key(name)}" for name in self.classes)),
                nan,
            ) | {"rows": 0.0}
        counts = self._counts(labels)
        shares = counts / len(labels) if baseline is None else np.asarray(baseline, dtype=float)
        losses = self._row_loss(labels, scores)
        loss = float(losses.mean())
        baseline_loss = float(self._row_loss(labels, np.tile(shares, (len(labels), 1))).mean())
        predicted = np.argmax(scores, axis=1)
        present = np.flatnonzero(counts)
        recalls = {
            f"recall_{metric_key(name)}": float(np.mean(predicted[labels == i] == i))
            if counts[i]
            else nan
            for i, name in enumerate(self.classes)
        }
        return {
            "log_loss": loss,
            "macro_f1": float(
                f1_score(labels, predicted, labels=present, average="macro", zero_division=0)
            ),
            "roc_auc_ovr": float(
                np.mean([roc_auc_score(labels == i, scores[:, i]) for i in present])
            )
            if len(present) > 1
            else nan,
            "accuracy": float(np.mean(predicted == labels)),
            "baseline_log_loss": baseline_loss,
            "log_loss_vs_baseline": 1 - loss / baseline_loss if baseline_loss else nan,
            "loss_std": float(losses.std()),  # the per-row losses': how noisy the log loss is
            **recalls,
            "rows": float(len(labels)),
        }

    def row_weights_metric(
        self, labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """Log loss per draw: the weighted mean of the rows' losses, per row of `weights`."""
        losses = self._row_loss(labels, predictions)
        return (weights * losses).sum(axis=1) / weights.sum(axis=1)

    def problem(
        self, labels: np.ndarray, splits: np.ndarray, validation_fraction: float
    ) -> str | None:
        import numpy as np

        labels = np.asarray(labels, dtype=int)
        seen = [self.classes[i] for i in np.unique(labels)]
        if len(seen) < 2:
            return (
                f"all {len(labels)} labelled rows are of the class {seen[0]}: the model needs at "
                "least two classes (widen training.window_days or training.since)"
            )
        trained = set(np.unique(labels[splits == "train"]).tolist())
        validated = set(np.unique(labels[splits == "validation"]).tolist())
        if len(trained) < 2:
            return (
                f"the train split ({int(np.sum(splits == 'train'))} rows, by event time) holds "
                f"only the class {self.classes[min(trained)]}: the classes are bunched in time; "
                "widen training.window_days"
            )
        counts = self._counts(labels)

        def named(indices: list[int]) -> str:
            return ", ".join(f"{self.classes[i]} ({counts[i]} rows in all)" for i in indices)

        rows = {split: int(np.sum(splits == split)) for split in ("train", "validation")}
        if unseen := sorted(validated - trained):
            return (
                f"the train split ({rows['train']} of {len(labels)} rows, by event time) holds "
                f"no row of the class {named(unseen)}, which the validation split has: the "
                "model could not predict it; widen training.window_days"
            )
        if missing := sorted(trained - validated):
            return (
                f"the validation split ({rows['validation']} of {len(labels)} rows, by event "
                f"time) holds no row of the class {named(missing)}: the model could not be "
                "judged on it; widen training.window_days or raise training.validation_fraction="
                f"{validation_fraction}"
            )
        return None

    def group_metric(
        self, labels: np.ndarray, predictions: np.ndarray, metric: str, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, whether its class was predicted (a group's `macro_recall` averages it per
        class first: `group_value`)."""
        import numpy as np

        correct = np.argmax(predictions, axis=1) == np.asarray(labels, dtype=int)
        return np.ones(len(labels), dtype=bool), correct.astype(float)

    def group_value(
        self,
        labels: np.ndarray,
        predictions: np.ndarray,
        metric: str,
        threshold: float,
        rows: np.ndarray,
    ) -> tuple[int, float]:
        """`macro_recall`: the mean over the classes the group holds of the share of its rows of
        that class predicted as it."""
        import numpy as np

        _, correct = self.group_metric(labels, predictions, metric, threshold)
        labels = np.asarray(labels, dtype=int)[rows]
        correct = correct[rows]
        if not len(labels):
            return 0, float("nan")
        return len(labels), float(np.mean([correct[labels == c].mean() for c in np.unique(labels)]))


TASKS: dict[str, Task] = {task.name: task for task in (Binary(), Multiclass(), Regression())}


def task_named(name: str) -> Task:
    """The task object of a contract's `label.task` (without a multiclass label's classes:
    `Task.for_label` adds them)."""
    return TASKS[name]
