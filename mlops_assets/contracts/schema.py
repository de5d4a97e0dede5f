"""What a contract file (`<name>.yaml`) may say: a typed pydantic model, checked when the code location loads.

Every field a contract can set is here, with its default and allowed range; `docs/bring-your-own-data.md`
walks through them. Cross-field rules that need the whole file (a derived feature's inputs, the bias
column, drift exclusions) are checked in `contracts.contract.DataContract`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlops_assets.tasks import task_named

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"  # used in asset keys, job, sensor and resource names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericFeature(_Strict):
    """A number (`number`) or a whole number (`integer`), optionally bounded."""

    name: str
    type: Literal["number", "integer"]
    description: str = ""
    min: float | None = None
    max: float | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _range(self) -> NumericFeature:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class CategoricalFeature(_Strict):
    """A text column with a closed set of levels; other values are quarantined."""

    name: str
    type: Literal["categorical"]
    levels: list[str] = Field(min_length=1)
    description: str = ""
    nullable: bool = False

    @field_validator("levels", mode="before")
    @classmethod
    def _as_text(cls, levels: Any) -> Any:
        return [_text(level) for level in levels] if isinstance(levels, list) else levels

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: list[str]) -> list[str]:
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels repeat: {levels}")
        return levels


class _Derived(_Strict):
    function: str = Field(pattern=r"^[\w.]+:\w+$", description="module:function")
    inputs: list[str] = Field(min_length=1, description="Raw feature columns the function reads")


class DerivedNumericFeature(NumericFeature, _Derived):
    """A number computed by `function(*inputs)` from raw features."""


class DerivedCategoricalFeature(CategoricalFeature, _Derived):
    """A category computed by `function(*inputs)` from raw features."""


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="type")]
DerivedFeature = Annotated[
    DerivedNumericFeature | DerivedCategoricalFeature, Field(discriminator="type")
]


class GeneratedColumn(_Strict):
    """A delivered column (`column: name`), or one the platform makes (`generate: true`)."""

    column: str | None = None
    generate: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> GeneratedColumn:
        if not self.generate and not self.column:
            raise ValueError("name the delivered `column`, or set `generate: true`")
        return self


TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 100  # a class is stored as its index, a nullable 8-bit integer


class Label(_Strict):
    """The label column and its task: for binary, which delivered values mean the positive (and
    negative) class; for multiclass, its classes; for regression, the range a delivered number
    must lie in."""

    column: str
    task: str = Field(
        default="binary",
        description="binary (positive/negative values), multiclass (one of `classes`) or "
        "regression (a number)",
    )
    positive: list[str] | None = Field(default=None, min_length=1)
    negative: list[str] | None = Field(
        default=None, description="Omitted: every other non-missing value is negative"
    )
    classes: list[str] | None = Field(
        default=None,
        description="multiclass: the delivered values, one per class (3 to 100); any other value "
        "is quarantined",
    )
    range: tuple[float, float] | None = Field(
        default=None,
        description="regression: [min, max] of a valid label; a number outside is quarantined",
    )
    description: str = ""

    @field_validator("task")
    @classmethod
    def _known(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"{task!r} is not a task; expected one of {', '.join(TASKS)}")
        return task

    @field_validator("positive", "negative", "classes", mode="before")
    @classmethod
    def _as_text(cls, values: Any) -> Any:
        if isinstance(values, (str, int, float, bool)):
            values = [values]
        return [_text(value) for value in values] if isinstance(values, list) else values

    @model_validator(mode="after")
    def _fits_the_task(self) -> Label:
        kept = {
            "binary": ("positive", "negative"),
            "multiclass": ("classes",),
            "regression": ("range",),
        }[self.task]
        what = {
            "binary": "lists its positive (and negative) values",
            "multiclass": "lists its classes",
            "regression": "is a number (range: [min, max] bounds it)",
        }[self.task]
        for name in ("positive", "negative", "classes", "range"):
            if name not in kept and getattr(self, name) is not None:
                raise ValueError(
                    f"{name}: not a field of a {self.task} label, which {what}; leave it out"
                )
        if self.task == "regression":
            if self.range is not None and not self.range[0] < self.range[1]:
                raise ValueError(f"range: {list(self.range)} is not [min, max] with min < max")
            return self
        if self.task == "multiclass":
            return self._check_classes()
        if self.positive is None:
            raise ValueError(
                "positive: Field required: a binary label lists the delivered values that mean "
                "the positive class (e.g. positive: [1]); a label of three or more classes is "
                "task: multiclass (classes: [...]); a numeric label is task: regression"
            )
        both = set(self.positive) & set(self.negative or [])
        if both:
            raise ValueError(f"values {sorted(both)} are both positive and negative")
        return self

    def _check_classes(self) -> Label:
        classes = self.classes or []
        if not 3 <= len(classes) <= MAX_CLASSES:
            raise ValueError(
                f"classes: a multiclass label lists 3 to {MAX_CLASSES} delivered values, one per "
                f"class; got {len(classes)}"
                + (" (a label of two classes is task: binary)" if len(classes) == 2 else "")
            )
        repeated = sorted({name for name in classes if classes.count(name) > 1})
        if repeated:
            raise ValueError(f"classes: {repeated} listed more than once")
        return self


def _text(value: Any) -> str:
    """A label value or level as the text a CSV would deliver (`1`, not `1.0`). A YAML boolean is
    refused: YAML 1.1 reads unquoted Yes/No/On/Off as true/false, which no delivery then matches."""
    if isinstance(value, bool):
        raise ValueError(
            f"{str(value).lower()} is a YAML boolean: unquoted Yes, No, On, Off, True and False are "
            f'read as true/false; quote the value exactly as the data holds it ("Yes", "true")'
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class HistGradientBoostingParams(_Strict):
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_iter: int = Field(default=100, ge=1, le=10_000)
    max_depth: int | None = Field(default=None, ge=1)
    max_leaf_nodes: int | None = Field(default=31, ge=2)
    min_samples_leaf: int = Field(default=20, ge=1)
    l2_regularization: float = Field(default=0.0, ge=0)
    class_weight: Literal["balanced"] | None = None
    random_state: int = 7


class LogisticRegressionParams(_Strict):
    C: float = Field(default=1.0, gt=0)
    max_iter: int = Field(default=1000, ge=1)
    class_weight: Literal["balanced"] | None = None
    random_state: int = 7


class RandomForestParams(_Strict):
    n_estimators: int = Field(default=200, ge=1, le=5_000)
    max_depth: int | None = Field(default=None, ge=1)
    min_samples_leaf: int = Field(default=1, ge=1)
    class_weight: Literal["balanced", "balanced_subsample"] | None = None
    random_state: int = 7


class LinearRegressionParams(_Strict):
    alpha: float = Field(default=1.0, ge=0, description="L2 penalty (scikit-learn's Ridge)")


ESTIMATOR_PARAMS: dict[str, type[_Strict]] = {
    "hist_gradient_boosting": HistGradientBoostingParams,
    "logistic_regression": LogisticRegressionParams,
    "linear_regression": LinearRegressionParams,
    "random_forest": RandomForestParams,
}


FACTORY_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # module:function


class ModelSettings(_Strict):
    """The registered model: its name, MLflow experiment, estimator and decision threshold."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    experiment: str | None = Field(default=None, description="Default: the model name")
    estimator: str = Field(
        default="hist_gradient_boosting",
        description="A built-in estimator, or module:function, a factory of the team's own that "
        "returns a scikit-learn-compatible estimator (params are passed to it as keywords)",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    trusted_types: tuple[str, ...] = Field(
        default=(),
        description="Types (module.Class) the saved model holds beyond scikit-learn's: skops "
        "loads no other type, so a factory's estimator lists its own here",
    )
    decision_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Score at or above which a row is flagged positive"
    )

    @property
    def factory(self) -> str | None:
        """The `module:function` of a team's own estimator, or None for a built-in one."""
        return None if self.estimator in ESTIMATOR_PARAMS else self.estimator

    @model_validator(mode="after")
    def _params(self) -> ModelSettings:
        if self.factory is not None:
            if not re.match(FACTORY_PATTERN, self.estimator):
                raise ValueError(
                    f"estimator {self.estimator!r} is neither a built-in estimator "
                    f"({', '.join(ESTIMATOR_PARAMS)}) nor module:function"
                )
            return self  # a factory's own parameters: passed through, checked when it is called
        allowed = ESTIMATOR_PARAMS[self.estimator]
        try:
            allowed.model_validate(self.params)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise ValueError(
                f"params of {self.estimator}: {problems} (allowed: {', '.join(allowed.model_fields)})"
            ) from None
        return self

    @field_validator("trusted_types")
    @classmethod
    def _type_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        wrong = [name for name in names if not re.match(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$", name)]
        if wrong:
            raise ValueError(f"{wrong} are not module.Class names (e.g. lightgbm.basic.Booster)")
        return names

    @property
    def typed_params(self) -> dict[str, Any]:
        """Every estimator parameter: the contract's values over the documented defaults (a
        factory's parameters as written)."""
        if self.factory is not None:
            return dict(self.params)
        return ESTIMATOR_PARAMS[self.estimator].model_validate(self.params).model_dump()

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name


class TrainingSettings(_Strict):
    window_days: int = Field(default=30, ge=1, le=3_650)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_labelled_rows: int = Field(default=500, ge=2)


class BiasGate(_Strict):
    column: str
    metric: str = Field(
        default="recall",
        description="binary: recall or approval_rate; regression: relative_absolute_error; "
        "multiclass: macro_recall",
    )
    max_gap: float = Field(default=0.25, ge=0, le=1)
    min_group_rows: int = Field(default=50, ge=1)


class GateSettings(_Strict):
    min_roc_auc: float = Field(default=0.7, ge=0, le=1, description="binary: the quality floor")
    min_improvement_over_baseline: float = Field(
        default=0.1,
        gt=-1,
        lt=1,
        description="regression and multiclass: the quality floor, on the validation rows, as "
        "the share of a constant predictor's error the model removes: 1 - RMSE / RMSE of "
        "predicting the training rows' mean (regression), 1 - log loss / log loss of predicting "
        "their class shares (multiclass)",
    )
    min_absolute_change: float | None = Field(default=-0.01, ge=-1, le=1)
    min_relative_change: float | None = Field(default=None, ge=-1, le=10)
    comparison: Literal["paired_bootstrap", "point"] = Field(
        default="paired_bootstrap",
        description="paired_bootstrap: besides the change thresholds, a challenger whose 95% "
        "paired bootstrap interval of the gate metric's improvement (ROC AUC, RMSE, log loss) lies "
        "below zero fails; "
        "point: the change thresholds alone",
    )
    bias: BiasGate | None = None


class DriftSettings(_Strict):
    threshold: float = Field(default=0.2, gt=0, lt=1)
    verdicts: Literal["noise_aware", "evidently"] = Field(
        default="noise_aware",
        description="noise_aware: a column drifts only beyond sampling noise at the day's size; "
        "evidently: Evidently's fixed thresholds alone",
    )
    exclude: list[str] = Field(default_factory=list, description="Features left out of drift")
    consecutive: int = Field(default=1, ge=1, le=365)
    cooldown_hours: float = Field(default=0.0, ge=0, le=24 * 365)
    max_promotions: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Budget: at most this many automatic (drift or performance) promotions in "
        "budget_days",
    )
    budget_days: int = Field(default=7, ge=1, le=365)
    min_rows_since: int = Field(
        default=2000,
        ge=0,
        description="Retrain only once the drifted days hold this many rows: the new model and "
        "the next drift reference are learned from them alone",
    )


class PerformanceSettings(_Strict):
    """When labelled live performance launches retraining (concept drift: no feature moved)."""

    margin: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Retrain when the served gate metric is worse than the champion's validation "
        "value by more than this (and 3 standard errors): binary, ROC AUC points; regression and "
        "multiclass, a share of the validation RMSE or log loss",
    )
    calibration_band: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="...or when the predictions are off on average by more than this: binary, "
        "the observed positive rate against the mean predicted probability; multiclass, a "
        "class's share against its mean predicted probability; regression, the mean residual as "
        "a share of the validation RMSE",
    )
    labelled_days: int = Field(
        default=3, ge=1, le=90, description="Over this many most recent labelled days"
    )
    min_labelled_rows: int = Field(
        default=200, ge=1, description="Decide only with at least this many labelled rows"
    )
    watch_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description="After a promotion, the previous champion scores in shadow on the days up to "
        "this many after the new champion's training day (0: no shadow, no automatic rollback)",
    )
    rollback: bool = Field(
        default=True,
        description="Roll back by itself when the new champion's labelled live gate metric is "
        "worse than the shadow's, on the same rows, by more than `margin` over `labelled_days`",
    )


class IngestionSettings(_Strict):
    min_rows: int = Field(default=1, ge=0)
    max_rejected_share: float = Field(default=0.05, ge=0, le=1)


class FilesSource(_Strict):
    """`<url>/<YYYY-MM-DD>.<format>` per day; `${VAR}` and `${VAR:-default}` expand from the environment."""

    kind: Literal["files"]
    url: str
    format: Literal["csv", "parquet"] = "csv"
    storage_options: dict[str, str] = Field(default_factory=dict)


class PythonSource(_Strict):
    """A `DataSource` subclass of your own (`module:Class`), with its configuration."""

    kind: Literal["python"]
    resource: str = Field(pattern=r"^[\w.]+:\w+$")
    config: dict[str, Any] = Field(default_factory=dict)


Source = Annotated[FilesSource | PythonSource, Field(discriminator="kind")]


class ContractFile(_Strict):
    """One dataset and its model: everything the lifecycle of that model needs to know."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    entity: str = Field(default="row", description="What one row is, for descriptions")
    id: GeneratedColumn
    event_time: GeneratedColumn
    label: Label
    features: list[Feature] = Field(min_length=1)
    derived_features: list[DerivedFeature] = Field(default_factory=list)
    model: ModelSettings
    training: TrainingSettings = TrainingSettings()
    gates: GateSettings = GateSettings()
    drift: DriftSettings = DriftSettings()
    performance: PerformanceSettings | None = PerformanceSettings()
    ingestion: IngestionSettings = IngestionSettings()
    source: Source

    @model_validator(mode="after")
    def _fits_the_task(self) -> ContractFile:
        task = task_named(self.label.task)
        if self.model.factory is None and self.model.estimator not in task.estimators:
            raise ValueError(
                f"model.estimator: {self.model.estimator} is not a {task.name} estimator; "
                f"expected one of {', '.join(task.estimators)}, or module:function"
            )
        foreign = [
            name
            for name in task.foreign_params
            if self.model.factory is None and name in self.model.params
        ]
        if foreign:
            raise ValueError(
                f"model.params: {', '.join(foreign)} is not a parameter of a {task.name} "
                f"{self.model.estimator}"
            )
        if self.gates.bias is not None and self.gates.bias.metric not in task.bias_metrics:
            raise ValueError(
                f"gates.bias.metric: {self.gates.bias.metric!r} is not a {task.name} metric; "
                f"expected one of {', '.join(task.bias_metrics)}"
            )
        return self


def expand_variables(text: str, environ: dict[str, str]) -> str:
    """`${VAR}` / `${VAR:-default}` from `environ`, innermost first, so a default may hold `${VAR}`.

    An unset variable without a default is an error.
    """

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set (and ${{{name}}} has no default)")

    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^{}]*))?\}")
    while pattern.search(text):
        text = pattern.sub(replace, text)
    return text
