"""The data contract: one declaration of the dataset from which every schema and column list derives.

Adapting the platform to another tabular dataset means editing `LOAN_APPLICATIONS` below (and the
feature function in `mlops_assets.features.engineering`), nothing else. The pandera models, their
Dagster types, the `dagster/column_schema` metadata and the column lists used by training and drift
detection are all computed from it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_pandera import pandera_schema_to_dagster_type
from pandera.typing import Series


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column with its allowed closed range."""

    name: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    nullable: bool = False
    # Columns this one is computed from (derived features only): the column lineage shown in the UI.
    inputs: tuple[str, ...] = ()

    @property
    def pandas_dtype(self) -> str:
        return "int64" if self.integer else "float64"


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical column with the closed set of levels it may take."""

    name: str
    description: str
    levels: tuple[str, ...]
    nullable: bool = False
    inputs: tuple[str, ...] = ()

    @property
    def pandas_dtype(self) -> str:
        return "object"


Column = NumericColumn | CategoricalColumn


@dataclass(frozen=True)
class DataContract:
    """A tabular, event-timed, labelled dataset: the id, the event time, features and a late label."""

    name: str
    id_column: str
    event_time_column: str
    label_column: str
    label_description: str
    # Features as they arrive from the source.
    raw_features: tuple[Column, ...]
    # Features the feature function computes from the raw ones (each names its inputs).
    derived_features: tuple[Column, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [self.id_column, self.event_time_column, self.label_column]
        names += [column.name for column in self.raw_features + self.derived_features]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"Contract {self.name!r} declares these columns twice: {duplicated}")
        raw_names = {column.name for column in self.raw_features}
        for column in self.derived_features:
            unknown = [name for name in column.inputs if name not in raw_names]
            if not column.inputs or unknown:
                raise ValueError(
                    f"Derived feature {column.name!r} must name its raw input columns; "
                    f"unknown inputs: {unknown or 'none given'}"
                )

    @cached_property
    def version(self) -> str:
        """A short fingerprint of the declaration: the code version of the assets it shapes.

        Changing a column, range or level changes it, and the Dagster UI marks those assets
        as changed since their last materialization.
        """
        import hashlib

        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]

    # ---- column lists used downstream -------------------------------------------------------
    @property
    def feature_columns(self) -> list[str]:
        """Every model input: raw features then derived ones."""
        return [column.name for column in self.raw_features + self.derived_features]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.raw_features + self.derived_features if _is_numeric(c)]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.raw_features + self.derived_features if not _is_numeric(c)]

    @property
    def raw_columns(self) -> list[str]:
        """Columns a source must deliver, in order."""
        return [
            self.id_column,
            self.event_time_column,
            *(column.name for column in self.raw_features),
            self.label_column,
        ]

    @property
    def feature_table_columns(self) -> list[str]:
        """Columns of the feature table, in order."""
        return [self.id_column, self.event_time_column, *self.feature_columns, self.label_column]

    def empty_raw_frame(self) -> pd.DataFrame:
        """A zero-row frame with the raw columns and their types."""
        dtypes = {self.id_column: "object", self.event_time_column: "datetime64[ns]"}
        dtypes |= {column.name: column.pandas_dtype for column in self.raw_features}
        dtypes[self.label_column] = "Int8"
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})

    def column(self, name: str) -> Column:
        for column in self.raw_features + self.derived_features:
            if column.name == name:
                return column
        raise KeyError(f"Column {name!r} is not a feature of contract {self.name!r}")

    # ---- pandera models and Dagster types ----------------------------------------------------
    @cached_property
    def raw_model(self) -> type[pa.DataFrameModel]:
        """The pandera model a source's accepted rows satisfy."""
        return self._model("Raw", self.raw_features)

    @cached_property
    def features_model(self) -> type[pa.DataFrameModel]:
        """The pandera model of the feature table."""
        return self._model("Features", self.raw_features + self.derived_features)

    @cached_property
    def training_model(self) -> type[pa.DataFrameModel]:
        """The feature table restricted to labelled rows, each assigned to the train or validation split."""
        split = pa.Field(isin=["train", "validation"], description="Time-based split")
        return self._model(
            "Training", self.raw_features + self.derived_features, label_nullable=False, split=split
        )

    @cached_property
    def raw_dagster_type(self) -> dg.DagsterType:
        return pandera_dagster_type(self.raw_model)

    @cached_property
    def features_dagster_type(self) -> dg.DagsterType:
        return pandera_dagster_type(self.features_model)

    @cached_property
    def training_dagster_type(self) -> dg.DagsterType:
        return pandera_dagster_type(self.training_model)

    def column_schema(self, stage: Literal["raw", "features", "training"]) -> dg.TableSchema:
        """The `dagster/column_schema` the UI shows for a stage, taken from its Dagster type."""
        dagster_type = {
            "raw": self.raw_dagster_type,
            "features": self.features_dagster_type,
            "training": self.training_dagster_type,
        }[stage]
        return dagster_type.metadata["schema"].schema

    def column_lineage(self, upstream: dg.AssetKey) -> dg.TableColumnLineage:
        """Feature-table column lineage: pass-through columns and derived columns' declared inputs."""
        passthrough = [self.id_column, self.event_time_column, self.label_column]
        passthrough += [column.name for column in self.raw_features]
        deps = {
            name: [dg.TableColumnDep(asset_key=upstream, column_name=name)] for name in passthrough
        }
        for column in self.derived_features:
            deps[column.name] = [
                dg.TableColumnDep(asset_key=upstream, column_name=name) for name in column.inputs
            ]
        return dg.TableColumnLineage(deps_by_column=deps)

    def _model(
        self,
        stage: str,
        features: tuple[Column, ...],
        label_nullable: bool = True,
        split: object | None = None,
    ) -> type[pa.DataFrameModel]:
        annotations: dict[str, object] = {
            self.id_column: Series[str],
            self.event_time_column: Series[pd.Timestamp],
        }
        attributes: dict[str, object] = {
            self.id_column: pa.Field(unique=True, description="Unique application identifier"),
            self.event_time_column: pa.Field(description="When the event happened (UTC, naive)"),
        }
        for column in features:
            annotations[column.name], attributes[column.name] = _series_and_field(column)
        annotations[self.label_column] = Series[pd.Int8Dtype]
        attributes[self.label_column] = pa.Field(
            isin=[0, 1], nullable=label_nullable, description=self.label_description
        )
        if split is not None:
            annotations["split"], attributes["split"] = Series[str], split
        class_name = f"{stage}{_camel(self.name)}"

        class Config:
            title = class_name
            strict = True
            coerce = True
            description = f"{stage} {self.name.replace('_', ' ')} (contract {self.name!r})"

        attributes["__annotations__"] = annotations
        attributes["Config"] = Config
        return type(class_name, (pa.DataFrameModel,), attributes)


def _is_numeric(column: Column) -> bool:
    return isinstance(column, NumericColumn)


def _series_and_field(column: Column) -> tuple[object, object]:
    if isinstance(column, NumericColumn):
        checks: dict[str, float] = {}
        if column.minimum is not None:
            checks["ge"] = column.minimum
        if column.maximum is not None:
            checks["le"] = column.maximum
        series = Series[int] if column.integer else Series[float]
        return series, pa.Field(nullable=column.nullable, description=column.description, **checks)
    return Series[str], pa.Field(
        isin=list(column.levels), nullable=column.nullable, description=column.description
    )


def pandera_dagster_type(model: type[pa.DataFrameModel]) -> dg.DagsterType:
    """The Dagster type of a pandera model (validated on every output, schema shown in the UI)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return pandera_schema_to_dagster_type(model)


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


CREDIT_SCORE_BANDS = ("poor", "fair", "good", "very_good", "exceptional")

LOAN_APPLICATIONS = DataContract(
    name="loan_applications",
    id_column="application_id",
    event_time_column="applied_at",
    label_column="defaulted",
    label_description="1 if the loan defaulted, 0 if repaid; null until the outcome is known",
    raw_features=(
        NumericColumn("age", "Applicant age in years", 18, 100, integer=True),
        NumericColumn("annual_income", "Declared gross annual income (USD)", 0, 10_000_000),
        NumericColumn("credit_score", "Bureau credit score (FICO scale)", 300, 850, integer=True),
        NumericColumn("open_accounts", "Number of open credit lines", 0, 100, integer=True),
        NumericColumn("debt_to_income", "Monthly debt payments / monthly income", 0, 2),
        NumericColumn("loan_amount", "Requested principal (USD)", 500, 200_000),
        NumericColumn(
            "employment_length_years",
            "Years with current employer; null when not declared",
            0,
            70,
            nullable=True,
        ),
        CategoricalColumn("home_ownership", "Housing status", ("RENT", "MORTGAGE", "OWN", "OTHER")),
        CategoricalColumn(
            "loan_purpose",
            "Declared purpose of the loan",
            (
                "debt_consolidation",
                "credit_card",
                "home_improvement",
                "car",
                "medical",
                "small_business",
                "renewable_energy",
            ),
        ),
    ),
    derived_features=(
        NumericColumn(
            "loan_to_income",
            "Requested principal / max(annual income, 1000 USD)",
            0,
            None,
            inputs=("loan_amount", "annual_income"),
        ),
        NumericColumn(
            "log_annual_income",
            "Natural log of (1 + annual income)",
            0,
            None,
            inputs=("annual_income",),
        ),
        CategoricalColumn(
            "credit_score_band",
            "FICO band: poor <580, fair <670, good <740, very_good <800, exceptional",
            CREDIT_SCORE_BANDS,
            inputs=("credit_score",),
        ),
    ),
)

RawLoanApplications = LOAN_APPLICATIONS.raw_model
LoanFeatures = LOAN_APPLICATIONS.features_model
RawLoanApplicationsType = LOAN_APPLICATIONS.raw_dagster_type
LoanFeaturesType = LOAN_APPLICATIONS.features_dagster_type
