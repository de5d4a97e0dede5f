"""The model, as plain functions: the training set split, the pipeline, its metrics.

scikit-learn is imported inside the functions so that loading the code location stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_assets.contracts import SPLIT, ContractError, DataContract
from mlops_assets.contracts.schema import CategoricalFeature

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["SPLIT", "TRAIN", "VALIDATION"]
TRAIN = "train"
VALIDATION = "validation"


def split_by_time(
    features: pd.DataFrame, validation_fraction: float, contract: DataContract
) -> pd.DataFrame:
    """Labelled rows with a `split` column: the latest `validation_fraction` of rows validate.

    Rows are ordered by event time, and rows sharing an event time by a hash of their id (a fixed
    order whatever the delivery's sorting), then cut by position: nothing trained on is later than
    a validation row, and a day whose rows all carry one (generated) event time still splits.
    """
    import math

    import numpy as np
    import pandas as pd

    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    labelled = features[features[contract.label_column].notna()]
    if labelled.empty:
        return labelled.reset_index(drop=True).assign(**{SPLIT: pd.Series(dtype=object)})
    tie_break = pd.util.hash_pandas_object(labelled[contract.id_column], index=False)
    order = np.lexsort((tie_break.to_numpy(), labelled[contract.event_time_column].to_numpy()))
    labelled = labelled.iloc[order].reset_index(drop=True)
    validating = min(max(math.ceil(len(labelled) * validation_fraction), 1), len(labelled) - 1)
    split = np.where(np.arange(len(labelled)) >= len(labelled) - validating, VALIDATION, TRAIN)
    return labelled.assign(**{SPLIT: split})


def features_and_label(
    frame: pd.DataFrame, contract: DataContract
) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[contract.feature_columns], frame[contract.label_column].astype(int).to_numpy()


def build_pipeline(contract: DataContract) -> Any:
    """Preprocessing from the contract's column lists + the contract's estimator and parameters.

    Categories come from the contract, not from the data, so a level absent from a training
    window still has its column, and an unknown one is ignored rather than failing a prediction.
    Missing categories get a column of their own (all zeros); missing numbers the median plus an
    indicator. Linear models get standardized numbers.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    model = contract.spec.model
    levels = [
        list(column.levels)
        for name in contract.categorical_features
        if isinstance(column := contract.column(name), CategoricalFeature)
    ]
    numeric: Any = SimpleImputer(strategy="median", add_indicator=True)
    if model.estimator == "logistic_regression":
        numeric = make_pipeline(numeric, StandardScaler())
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, contract.numeric_features),
            (
                "categorical",
                OneHotEncoder(categories=levels, handle_unknown="ignore", sparse_output=False),
                contract.categorical_features,
            ),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", _estimator(contract))])


def _estimator(contract: DataContract) -> Any:
    model = contract.spec.model
    params = model.typed_params
    if contract.estimator_factory is not None:
        try:
            estimator = contract.estimator_factory(**params)
        except TypeError as error:  # a `**params` factory passing on what its estimator refuses
            raise ContractError(
                f"{contract.where()}: model.params: {model.factory} does not take them: {error}"
            ) from error
        missing = [m for m in ("fit", "predict_proba") if not callable(getattr(estimator, m, None))]
        if missing:
            raise ContractError(
                f"{contract.where()}: model.estimator: {model.factory} returned a "
                f"{type(estimator).__name__}, which has no {' or '.join(missing)}: the model "
                "scores rows with a classifier's predict_proba"
            )
        return estimator
    if model.estimator == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**params)
    if model.estimator == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**params)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(early_stopping=False, **params)


def positive_probability(model: Any, frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """P(positive class) per row, from the contract's feature columns."""
    return model.predict_proba(frame[contract.feature_columns])[:, 1]


def classification_metrics(labels: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score and log loss; AUCs are NaN when only one class is present."""
    import numpy as np
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    both_classes = len(np.unique(labels)) == 2
    return {
        "roc_auc": float(roc_auc_score(labels, probability)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, probability))
        if both_classes
        else float("nan"),
        "brier": float(brier_score_loss(labels, probability)),
        "log_loss": float(log_loss(labels, probability, labels=[0, 1])),
        "positive_rate": float(np.mean(labels)),
        "rows": float(len(labels)),
    }
