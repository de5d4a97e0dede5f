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
    return frame[contract.feature_columns], contract.task.labels(frame, contract.label_column)


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
    model, task = contract.spec.model, contract.task
    params = model.typed_params
    if contract.estimator_factory is None:
        return task.estimator(model.estimator, params)
    try:
        estimator = contract.estimator_factory(**params)
    except TypeError as error:  # a `**params` factory passing on what its estimator refuses
        raise ContractError(
            f"{contract.where()}: model.params: {model.factory} does not take them: {error}"
        ) from error
    needed = ("fit", task.predict_method)
    missing = [m for m in needed if not callable(getattr(estimator, m, None))]
    if missing:
        raise ContractError(
            f"{contract.where()}: model.estimator: {model.factory} returned a "
            f"{type(estimator).__name__}, which has no {' or '.join(missing)}: a {task.name} "
            f"model scores rows with {task.predict_method}"
        )
    return estimator


def predict(model: Any, frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """The task's prediction per row (P(positive) for binary), from the contract's features."""
    return contract.task.predict(model, frame[contract.feature_columns])
