"""Table specs: one description of a table's columns that gives its Dagster type and its pandera model.

The Dagster type (with the `dagster/column_schema` the UI shows) is built when the code location
loads, without importing pandas or pandera: every run worker, step process and sensor tick loads
the code location, and those two imports cost more than Dagster itself. The pandera model is built
on first use, by the type check that validates each output, with the same checks
`dagster_pandera.pandera_schema_to_dagster_type` would apply (a test compares the two).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import dagster as dg

# Column dtypes, as pandera names them in a schema.
INT = "int64"
NULLABLE_INT = "Int64"  # a whole number with gaps (pd.NA)
FLOAT = "float64"
TEXT = "str"
TIMESTAMP = "datetime64[ns]"
LABEL = "Int8"  # nullable 0/1
BOOL = "bool"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str
    description: str | None = None
    nullable: bool = False
    unique: bool = False
    ge: float | None = None
    le: float | None = None
    isin: tuple[Any, ...] | None = None

    def table_column(self) -> dg.TableColumn:
        """The column as dagster-pandera shows it: dtype, nullability, uniqueness, checks."""
        other = []
        if self.ge is not None:
            other.append(f">= {self.ge}")
        if self.le is not None:
            other.append(f"<= {self.le}")
        if self.isin is not None:
            other.append(f"isin({list(self.isin)})")
        return dg.TableColumn(
            name=self.name,
            type=self.dtype,
            description=self.description,
            constraints=dg.TableColumnConstraints(
                nullable=self.nullable, unique=self.unique, other=other
            ),
        )

    def pandera_field(self) -> tuple[Any, Any]:
        import pandas as pd
        import pandera.pandas as pa
        from pandera.typing import Series

        series = {
            INT: Series[int],
            NULLABLE_INT: Series[pd.Int64Dtype],
            FLOAT: Series[float],
            TEXT: Series[str],
            TIMESTAMP: Series[pd.Timestamp],
            LABEL: Series[pd.Int8Dtype],
            BOOL: Series[bool],
        }[self.dtype]
        checks = {
            name: value
            for name, value in (("ge", self.ge), ("le", self.le), ("isin", self.isin))
            if value is not None
        }
        if "isin" in checks:
            checks["isin"] = list(checks["isin"])
        field = pa.Field(
            nullable=self.nullable, unique=self.unique, description=self.description, **checks
        )
        return series, field


@dataclass(frozen=True)
class FrameSpec:
    """A table: its title (the Dagster type's name), description and columns."""

    title: str
    columns: tuple[ColumnSpec, ...]
    description: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def table_schema(self) -> dg.TableSchema:
        return dg.TableSchema(columns=[column.table_column() for column in self.columns])

    def pandera_model(self) -> type:
        """The pandera `DataFrameModel` (strict: no other columns; coerce: cast to the dtypes)."""
        return _pandera_model(self)

    def dagster_type(self) -> dg.DagsterType:
        """The Dagster type: the schema for the UI now, pandera validation of every output later."""
        return _dagster_type(self)


@functools.cache
def _pandera_model(spec: FrameSpec) -> type:
    import pandera.pandas as pa

    annotations: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column in spec.columns:
        annotations[column.name], attributes[column.name] = column.pandera_field()

    class Config:
        title = spec.title
        description = spec.description
        strict = True
        coerce = True

    return type(
        spec.title,
        (pa.DataFrameModel,),
        {**attributes, "__annotations__": annotations, "Config": Config},
    )


@functools.cache
def _dagster_type(spec: FrameSpec) -> dg.DagsterType:
    """Cached: tables every contract shares (model cards, drift columns) get one Dagster type."""

    def type_check(_context: dg.TypeCheckContext, value: object) -> dg.TypeCheck:
        import pandas as pd
        import pandera.errors

        if not isinstance(value, pd.DataFrame):
            return dg.TypeCheck(
                success=False,
                description=f"Must be a pandas DataFrame, not {type(value).__name__}.",
            )
        try:
            spec.pandera_model().validate(value, lazy=True)
        except pandera.errors.SchemaErrors as error:
            return dg.TypeCheck(success=False, description=str(error))
        return dg.TypeCheck(success=True)

    return dg.DagsterType(
        type_check_fn=type_check,
        name=spec.title,
        description=spec.description,
        metadata={"schema": dg.MetadataValue.table_schema(spec.table_schema())},
    )


# The value of a table asset: a pandas DataFrame at run time. Asset signatures say `Table` rather
# than `pd.DataFrame` because Dagster resolves their annotations when the code location loads.
Table = Any
