"""Estimator factories as a team writes them (`model.estimator: module:function` in a contract).

The estimator's own library is imported inside the factory, so loading the code location does
not pay for it.
"""

from typing import Any


def lightgbm_classifier(**params: Any) -> Any:
    """LightGBM's scikit-learn classifier, quiet, with the contract's `model.params`."""
    from lightgbm import LGBMClassifier

    return LGBMClassifier(verbose=-1, **params)


def linear_regression(**params: Any) -> Any:
    """A regressor: no predict_proba, so no binary classifier."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression(**params)


def random_forest_classifier(n_estimators: int = 100, max_depth: int | None = None) -> Any:
    """A factory with named parameters: a contract's `model.params` are checked against them."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=0)
