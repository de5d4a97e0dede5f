"""A loaded contract: the one declaration of a dataset from which every schema and column list derives.

The pandera models, their Dagster types, the `dagster/column_schema` and column-lineage metadata,
the label's 0/1 encoding, the derived features and the column lists used by training, drift and
serving all come from a contract file (`schema.ContractFile`). Nothing outside a contract file and
its feature module names a dataset column.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

from mlops_assets.contracts.frames import (
    FLOAT,
    INT,
    NULLABLE_INT,
    TEXT,
    TIMESTAMP,
    ColumnSpec,
    FrameSpec,
)
from mlops_assets.contracts.schema import (
    CategoricalFeature,
    ContractFile,
    DerivedCategoricalFeature,
    NumericFeature,
)
from mlops_assets.tasks import LabelEncoding, Task, task_named

if TYPE_CHECKING:
    import pandas as pd

Column = NumericFeature | CategoricalFeature
SPLIT = "split"  # column the training set adds: "train" or "validation"


class ContractError(ValueError):
    """A contract file the platform cannot use; the message names the file and the field."""


class DataContract:
    """A contract file, validated as a whole, with everything derived from it."""

    def __init__(self, spec: ContractFile, path: Path | None = None, fingerprint: str = "") -> None:
        self.spec = spec
        self.path = path
        self._fingerprint = fingerprint or spec.model_dump_json()
        self.derive_functions = self._check()
        self.estimator_factory = self._estimator_factory()

    # ---- identity -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model_name(self) -> str:
        return self.spec.model.name

    @property
    def trusted_types(self) -> tuple[str, ...]:
        """Types its saved models may hold beyond scikit-learn's (a team's own estimator's)."""
        return self.spec.model.trusted_types

    @cached_property
    def version(self) -> str:
        """A short fingerprint of the file: the code version of the assets it shapes."""
        return hashlib.sha256(self._fingerprint.encode()).hexdigest()[:12]

    def key(self, stage: str) -> dg.AssetKey:
        """The asset key of a stage of this contract's lifecycle, e.g. `loan_default/features`."""
        return dg.AssetKey([self.name, stage])

    def where(self) -> str:
        return str(self.path) if self.path else f"contract {self.name!r}"

    # ---- columns ------------------------------------------------------------------------------
    @property
    def id_column(self) -> str:
        return self.spec.id.column or "row_id"

    @property
    def event_time_column(self) -> str:
        return self.spec.event_time.column or "event_time"

    @property
    def label_column(self) -> str:
        return self.spec.label.column

    @property
    def task(self) -> Task:
        """What the label's task decides: estimators, predictions, metrics, gates (`tasks`)."""
        return task_named(self.spec.label.task).for_label(self.spec.label)

    @property
    def generates_id(self) -> bool:
        return self.spec.id.generate

    @property
    def generates_event_time(self) -> bool:
        return self.spec.event_time.generate

    @property
    def raw_features(self) -> list[Column]:
        return list(self.spec.features)

    @property
    def derived_features(self) -> list[Column]:
        return list(self.spec.derived_features)

    @property
    def label(self) -> LabelEncoding:
        """How delivered label values become labels, as the task reads them."""
        return self.task.encoding(self.spec.label)

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
    def drift_columns(self) -> list[str]:
        """Features compared by drift reports: all but those the contract leaves out."""
        return [name for name in self.feature_columns if name not in self.spec.drift.exclude]

    @property
    def delivered_columns(self) -> list[str]:
        """Columns a source delivers (the label may be missing until outcomes are known)."""
        generated = {self.id_column} if self.generates_id else set()
        generated |= {self.event_time_column} if self.generates_event_time else set()
        return [name for name in self.raw_columns if name not in generated]

    @property
    def raw_columns(self) -> list[str]:
        """Columns of the raw table, in order (generated id and event time included)."""
        return [
            self.id_column,
            self.event_time_column,
            *(column.name for column in self.raw_features),
            self.label_column,
        ]

    @property
    def feature_table_columns(self) -> list[str]:
        return [self.id_column, self.event_time_column, *self.feature_columns, self.label_column]

    def column(self, name: str) -> Column:
        for column in self.raw_features + self.derived_features:
            if column.name == name:
                return column
        raise KeyError(f"Column {name!r} is not a feature of contract {self.name!r}")

    def pandas_dtype(self, name: str) -> str:
        """The pandas dtype a feature column is stored with (int64, Int64, float64, object)."""
        return _pandas_dtype(self.column(name))

    def empty_raw_frame(self) -> pd.DataFrame:
        """A zero-row frame with the raw columns and their types."""
        import pandas as pd

        dtypes = {self.id_column: "object", self.event_time_column: "datetime64[ns]"}
        dtypes |= {column.name: _pandas_dtype(column) for column in self.raw_features}
        dtypes[self.label_column] = self.label.dtype
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})

    # ---- features -----------------------------------------------------------------------------
    def build_features(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The feature table: raw columns passed through plus each derived feature, contract order."""
        import pandas as pd

        features = raw.copy()
        for column in self.spec.derived_features:
            function = self.derive_functions[column.name]
            values = function(*(raw[name] for name in column.inputs))
            features[column.name] = (
                pd.Series(values, index=raw.index).astype(object)
                if isinstance(column, DerivedCategoricalFeature)
                else pd.Series(values, index=raw.index).astype(float)
            )
        return features[self.feature_table_columns].reset_index(drop=True)

    # ---- table specs: pandera models and Dagster types -------------------------------------
    @cached_property
    def frames(self) -> dict[str, FrameSpec]:
        """Every table the lifecycle writes that the contract shapes, by stage."""
        camel = _camel(self.name)
        everything = self.raw_features + self.derived_features
        split = ColumnSpec(SPLIT, TEXT, "Time-based split", isin=("train", "validation"))
        task = self.task
        low, high = task.score_range
        decided = task.decision_values()
        shadow = "the previous champion's, after a promotion (empty otherwise)"
        predictions = (
            ColumnSpec(self.id_column, TEXT, unique=True),
            ColumnSpec(self.event_time_column, TIMESTAMP),
            *(
                ColumnSpec(name, FLOAT, meaning, ge=low, le=high)
                for name, meaning in task.score_columns("score").items()
            ),
            *(
                [ColumnSpec("decision", TEXT, "What the score decides", isin=decided)]
                if decided
                else []
            ),
            ColumnSpec("model_version", TEXT, "Registry version that scored the row"),
            *(
                ColumnSpec(name, FLOAT, f"{meaning}: {shadow}", nullable=True, ge=low, le=high)
                for name, meaning in task.score_columns("shadow_score").items()
            ),
            ColumnSpec("shadow_version", TEXT, "Version that scored in shadow", nullable=True),
        )
        return {
            "raw": FrameSpec(f"Raw{camel}", self._columns(self.raw_features)),
            "features": FrameSpec(f"Features{camel}", self._columns(everything)),
            "training": FrameSpec(
                f"Training{camel}", (*self._columns(everything, label_nullable=False), split)
            ),
            "predictions": FrameSpec(f"Predictions{camel}", predictions),
        }

    @property
    def raw_model(self) -> type:
        """The pandera model a day's accepted rows satisfy (built on first use)."""
        return self.frames["raw"].pandera_model()

    @property
    def features_model(self) -> type:
        return self.frames["features"].pandera_model()

    @property
    def training_model(self) -> type:
        """Labelled feature rows, each in the train or validation split."""
        return self.frames["training"].pandera_model()

    @cached_property
    def dagster_types(self) -> dict[str, dg.DagsterType]:
        return {stage: frame.dagster_type() for stage, frame in self.frames.items()}

    def column_schema(
        self, stage: Literal["raw", "features", "training", "predictions"]
    ) -> dg.TableSchema:
        """The `dagster/column_schema` the UI shows for a stage."""
        return self.frames[stage].table_schema()

    def column_lineage(self, upstream: dg.AssetKey) -> dg.TableColumnLineage:
        """Feature-table lineage: pass-through columns and each derived column's declared inputs."""
        passthrough = [self.id_column, self.event_time_column, self.label_column]
        passthrough += [column.name for column in self.raw_features]
        deps = {
            name: [dg.TableColumnDep(asset_key=upstream, column_name=name)] for name in passthrough
        }
        for column in self.spec.derived_features:
            deps[column.name] = [
                dg.TableColumnDep(asset_key=upstream, column_name=name) for name in column.inputs
            ]
        return dg.TableColumnLineage(deps_by_column=deps)

    def _columns(
        self, features: list[Column], label_nullable: bool = True
    ) -> tuple[ColumnSpec, ...]:
        return (
            ColumnSpec(self.id_column, TEXT, f"Unique {self.spec.entity} id", unique=True),
            ColumnSpec(self.event_time_column, TIMESTAMP, "When the event happened (UTC, naive)"),
            *(_column_spec(column) for column in features),
            ColumnSpec(
                self.label_column,
                self.label.dtype,
                f"{self.label.meaning()}; null until known. {self.spec.label.description}",
                nullable=label_nullable,
                **self.label.checks(),
            ),
        )

    # ---- checks across fields -----------------------------------------------------------------
    def _check(self) -> dict[str, Callable[..., Any]]:
        spec = self.spec
        names = [self.id_column, self.event_time_column, self.label_column]
        names += [column.name for column in spec.features + spec.derived_features]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            self._fail("features", f"columns declared twice: {duplicated}")
        if SPLIT in names:
            self._fail("features", f"{SPLIT!r} is reserved for the training split")
        raw = {column.name for column in spec.features}
        functions = {}
        for index, column in enumerate(spec.derived_features):
            unknown = [name for name in column.inputs if name not in raw]
            if unknown:
                self._fail(
                    f"derived_features[{index}].inputs",
                    f"{unknown} are not raw features; choose from {sorted(raw)}",
                )
            functions[column.name] = self._import(
                f"derived_features[{index}].function", column.function
            )
        categorical = [c.name for c in spec.features + spec.derived_features if not _is_numeric(c)]
        if spec.gates.bias is not None and spec.gates.bias.column not in categorical:
            self._fail(
                "gates.bias.column",
                f"{spec.gates.bias.column!r} is not a categorical feature; choose from "
                f"{categorical or 'none (remove gates.bias)'}",
            )
        features = [c.name for c in spec.features + spec.derived_features]
        unknown = [name for name in spec.drift.exclude if name not in features]
        if unknown:
            self._fail("drift.exclude", f"{unknown} are not features; choose from {features}")
        if len(spec.drift.exclude) >= len(features):
            self._fail("drift.exclude", "leaves no feature for drift reports")
        return functions

    def _estimator_factory(self) -> Callable[..., Any] | None:
        """A team's own `model.estimator` factory, imported, its `model.params` bound to it."""
        model = self.spec.model
        if model.factory is None:
            return None
        factory = self._import("model.estimator", model.factory)
        try:
            inspect.signature(factory).bind(**model.params)
        except TypeError as error:
            self._fail("model.params", f"{model.factory} does not take them: {error}")
        except ValueError:  # a builtin without a signature: checked when it is called
            pass
        return factory

    def _import(self, field: str, target: str) -> Callable[..., Any]:
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            self._fail(field, f"cannot import module {module_name!r}: {error}")
        function = getattr(module, attribute, None)
        if not callable(function):
            self._fail(field, f"{module_name!r} has no function {attribute!r}")
        return function

    def _fail(self, field: str, problem: str) -> None:
        raise ContractError(f"{self.where()}: {field}: {problem}")


def _is_numeric(column: Column) -> bool:
    return isinstance(column, NumericFeature)


def _integer_dtype(column: NumericFeature) -> str:
    """Whole numbers are int64, or pandas' nullable Int64 where the contract allows gaps."""
    return NULLABLE_INT if column.nullable else INT


def _pandas_dtype(column: Column) -> str:
    if isinstance(column, NumericFeature):
        return _integer_dtype(column) if column.type == "integer" else FLOAT
    return "object"


def _column_spec(column: Column) -> ColumnSpec:
    if isinstance(column, NumericFeature):
        return ColumnSpec(
            column.name,
            _integer_dtype(column) if column.type == "integer" else FLOAT,
            column.description,
            nullable=column.nullable,
            ge=None if column.min is None else _whole(column.min),
            le=None if column.max is None else _whole(column.max),
        )
    return ColumnSpec(
        column.name, TEXT, column.description, nullable=column.nullable, isin=tuple(column.levels)
    )


def _whole(bound: float) -> float:
    """A bound as the user wrote it: `18`, not `18.0`, in schemas and rejection reasons."""
    return int(bound) if float(bound).is_integer() else bound


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def load_contract(
    path: Path, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> DataContract:
    """Read, validate and expand one contract file; `overrides` set dotted fields (env overrides)."""
    import yaml
    from pydantic import ValidationError

    from mlops_assets.contracts.schema import expand_variables

    try:
        text = path.read_text()
        document = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        raise ContractError(f"{path}: not a readable YAML file: {error}") from None
    if not isinstance(document, dict):
        raise ContractError(f"{path}: expected a mapping of fields, got {type(document).__name__}")
    document.setdefault("name", path.stem)
    source = document.get("source")
    if isinstance(source, dict) and isinstance(source.get("url"), str):
        try:
            source["url"] = expand_variables(source["url"], dict(environ))
        except ValueError as error:
            raise ContractError(f"{path}: source.url: {error}") from None
        if source.get("kind") == "files" and "://" not in source["url"]:
            source["url"] = str((path.parent / source["url"]).resolve())
    for dotted, (value, variable) in (overrides or {}).items():
        _set_dotted(document, dotted, value, variable)
    try:
        spec = ContractFile.model_validate(document)
    except ValidationError as error:
        raise ContractError(_describe(path, error, overrides or {})) from None
    return DataContract(spec, path, fingerprint=text + repr(sorted((overrides or {}).items())))


def _set_dotted(document: dict[str, Any], dotted: str, value: Any, variable: str) -> None:
    target = document
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if child is None:
            if part == "bias":  # an override of a bias setting needs a bias gate to change
                return
            child = target[part] = {}
        target = child
    target[leaf] = value


def _describe(path: Path, error: Any, overrides: Mapping[str, Any]) -> str:
    """Pydantic's errors as `file: field: problem` lines, naming the variable for env overrides."""
    variables = {dotted: variable for dotted, (_, variable) in overrides.items()}
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"] if not _is_tag(part))
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; docs/bring-your-own-data.md lists them)"
        elif problem["type"] == "literal_error" and "expected" in problem.get("ctx", {}):
            message = f"{problem['input']!r} is not allowed; expected {problem['ctx']['expected']}"
        elif problem["type"] == "union_tag_invalid":
            context = problem.get("ctx", {})
            message = (
                f"{context.get('tag')!r} is not allowed; expected {context.get('expected_tags')}"
            )
        named = re.match(r"^Value error, ([\w.]+): (.*)$", message, re.DOTALL)
        if named:  # a check across fields names the field it is about
            location = ".".join(filter(None, (location, named.group(1))))
            message = named.group(2)
        source = f" (from {variables[location]})" if location in variables else ""
        lines.append(f"{path}: {location or 'file'}: {message}{source}")
    return "\n".join(lines)


def _is_tag(part: Any) -> bool:
    """Pydantic inserts the discriminator value (`number`, `files`...) into locations; drop it."""
    return isinstance(part, str) and part in {
        "number", "integer", "categorical", "files", "python",
    }  # fmt: skip


def load_contracts(
    folder: Path, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> list[DataContract]:
    """Every `*.yaml` contract of a folder (or one file), validated; names and model names unique."""
    paths = [folder] if folder.is_file() else sorted(folder.glob("*.yaml"))
    if not paths:
        raise ContractError(f"{folder}: no contract files (*.yaml) found; set MLOPS_CONTRACTS")
    contracts = [load_contract(path, environ, overrides) for path in paths]
    for attribute in ("name", "model_name"):
        seen: dict[str, Path | None] = {}
        for contract in contracts:
            value = getattr(contract, attribute)
            if value in seen:
                raise ContractError(
                    f"{contract.path}: {attribute.replace('_name', '.name')}: {value!r} is also "
                    f"used by {seen[value]}; each contract needs its own"
                )
            seen[value] = contract.path
    return contracts
