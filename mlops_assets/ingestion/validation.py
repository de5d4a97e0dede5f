"""Split delivered rows into those that satisfy the contract and those quarantined, with reasons.

Coercion happens here, column by column, before pandera sees the data: once pandera fails to
coerce a value it reports the column's later checks without a row index, and the per-row reasons
that quarantine needs would be lost. Pandera then validates what parsed; its lazy failure cases
become the remaining per-row reasons.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.schema import NumericFeature

if TYPE_CHECKING:
    import pandas as pd

SOURCE_ROW = "source_row"
REJECTION_REASON = "rejection_reason"


@dataclass
class ValidationResult:
    """Accepted rows (typed, contract order) and rejected rows (as delivered, with reasons)."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    ignored_columns: list[str] = field(default_factory=list)
    # Each rejected row's reasons, in `rejected`'s order: the joined text column cannot be split
    # back, as a reason may itself hold "; " (a label's values, a check's arguments).
    reasons: list[list[str]] = field(default_factory=list)

    @property
    def delivered_rows(self) -> int:
        return len(self.accepted) + len(self.rejected)

    @property
    def rejected_share(self) -> float:
        return len(self.rejected) / self.delivered_rows if self.delivered_rows else 0.0

    def reason_counts(self) -> dict[str, int]:
        """How many rejected rows each kind of reason (column + check) accounts for."""
        counts: dict[str, int] = defaultdict(int)
        for reasons in self.reasons:
            for reason in reasons:
                counts[_reason_kind(reason)] += 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))


def quarantine_schema(contract: DataContract) -> dg.TableSchema:
    """Columns of the quarantine table: the delivered values as text, where they came from and why."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                SOURCE_ROW, "int64", description="0-based row number in the delivered data"
            ),
            *(
                dg.TableColumn(name, "string", description="As delivered")
                for name in contract.delivered_columns
            ),
            dg.TableColumn(
                REJECTION_REASON, "string", description="Every contract violation, '; '-separated"
            ),
        ]
    )


def validate_rows(
    frame: pd.DataFrame, contract: DataContract, day: date | None = None
) -> ValidationResult:
    """Validate `frame` against `contract`; with `day`, event times must fall on that day.

    A generated id is `<day>-<row>` in delivery order; a generated event time is the day itself.
    """
    import pandas as pd
    import pandera.pandas as pa

    frame = frame.reset_index(drop=True)
    if (contract.generates_id or contract.generates_event_time) and day is None:
        raise ValueError(f"Contract {contract.name!r} generates ids or event times: pass the day")
    reasons: dict[int, list[str]] = defaultdict(list)
    ignored = [name for name in frame.columns if name not in contract.delivered_columns]
    missing = [
        name
        for name in contract.delivered_columns
        if name not in frame.columns and name != contract.label_column
    ]
    if missing:
        message = f"missing column(s): {', '.join(missing)}"
        for row in range(len(frame)):
            reasons[row].append(message)
        return _result(frame, contract, reasons, contract.empty_raw_frame(), ignored)

    typed = pd.DataFrame(index=frame.index)
    for name in contract.raw_columns:
        if name == contract.id_column and contract.generates_id:
            typed[name] = [f"{day.isoformat()}-{row:06d}" for row in frame.index]  # type: ignore[union-attr]
        elif name == contract.event_time_column and contract.generates_event_time:
            typed[name] = pd.Series(pd.Timestamp(day), index=frame.index, dtype="datetime64[ns]")
        elif name not in frame.columns:  # labels not delivered yet
            typed[name] = pd.Series(None, index=frame.index, dtype=contract.label.dtype)
        else:
            typed[name] = _coerce(frame[name], name, contract, reasons)

    if day is not None:
        event_time = typed[contract.event_time_column]
        outside = event_time.notna() & (event_time.dt.date != day)
        for row in outside[outside].index:
            reasons[row].append(
                f"{contract.event_time_column}: {event_time[row]} is outside partition {day.isoformat()}"
            )

    ids = typed[contract.id_column]
    first_seen = (
        ids[ids.notna()].reset_index().groupby(contract.id_column)["index"].transform("min")
    )
    first_seen.index = ids[ids.notna()].index
    for row in first_seen[first_seen != first_seen.index].index:
        reasons[row].append(f"{contract.id_column}: duplicate of source row {first_seen[row]}")

    candidates = typed.drop(index=list(reasons))
    candidates = _cast_integers(candidates, contract)
    try:
        contract.raw_model.validate(candidates, lazy=True)
    except pa.errors.SchemaErrors as errors:
        for case in errors.failure_cases.itertuples():
            message = f"{case.column}: {case.failure_case!r} failed {case.check}"
            rows = candidates.index if pd.isna(case.index) else [int(case.index)]
            for row in rows:
                reasons[row].append(message)
    accepted = candidates.drop(index=[row for row in reasons if row in candidates.index])
    return _result(frame, contract, reasons, accepted, ignored)


def _coerce(
    values: pd.Series, name: str, contract: DataContract, reasons: dict[int, list[str]]
) -> pd.Series:
    """Parse one delivered column into its contract type, recording rows that cannot be parsed.

    Empty or blank cells count as missing, as an empty CSV cell does.
    """
    import numpy as np
    import pandas as pd

    delivered = values.notna() & (values.astype("string").str.strip() != "").fillna(False)
    if name == contract.event_time_column:
        parsed = _to_timestamp(values)
        _flag(values, delivered & parsed.isna(), f"{name}: {{value!r}} is not a timestamp", reasons)
    elif name == contract.id_column:
        parsed = values.astype("string").str.strip().replace("", pd.NA).astype(object)
    elif name == contract.label_column:
        parsed, invalid = contract.label.encode(values)
        _flag(
            values,
            invalid,
            f"{name}: {{value!r}} is not a label value ({contract.label.describe()})",
            reasons,
        )
        delivered = parsed.notna()
    elif isinstance(column := contract.column(name), NumericFeature):
        parsed = pd.to_numeric(values, errors="coerce").astype(float)
        _flag(values, delivered & parsed.isna(), f"{name}: {{value!r}} is not a number", reasons)
        if column.type == "integer":
            fractional = parsed.notna() & (parsed != np.round(parsed))
            _flag(values, fractional, f"{name}: {{value!r}} is not a whole number", reasons)
    else:
        parsed = values.astype("string").str.strip().astype(object).where(delivered, None)
    nullable = name == contract.label_column or (
        name not in (contract.id_column, contract.event_time_column)
        and contract.column(name).nullable
    )
    if not nullable:
        # An id of only spaces counts as missing; elsewhere an unparsable value was flagged above.
        missing = parsed.isna() if name == contract.id_column else ~delivered
        _flag(values, missing, f"{name}: missing value", reasons)
    return parsed


def _to_timestamp(values: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _flag(values: pd.Series, mask: pd.Series, template: str, reasons: dict[int, list[str]]) -> None:
    for row in mask[mask].index:
        value = values[row]
        value = value.item() if hasattr(value, "item") else value  # 2.5, not np.float64(2.5)
        reasons[row].append(template.format(value=value))


def _cast_integers(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    frame = frame.copy()
    frame[contract.label_column] = frame[contract.label_column].astype(contract.label.dtype)
    for name in contract.raw_columns:
        if name not in (contract.id_column, contract.event_time_column, contract.label_column):
            column = contract.column(name)
            if isinstance(column, NumericFeature) and column.type == "integer":
                frame[name] = frame[name].astype(contract.pandas_dtype(name))
    return frame


def _result(
    frame: pd.DataFrame,
    contract: DataContract,
    reasons: dict[int, list[str]],
    accepted: pd.DataFrame,
    ignored: list[str],
) -> ValidationResult:
    import numpy as np
    import pandas as pd

    rows = sorted(reasons)
    rejected = pd.DataFrame(
        {
            name: (
                frame[name].iloc[rows].astype("string")
                if name in frame.columns
                else pd.Series(pd.NA, index=rows, dtype="string")
            )
            for name in contract.delivered_columns
        },
        index=rows,
    )
    rejected.insert(0, SOURCE_ROW, np.asarray(rows, dtype="int64"))
    rejected[REJECTION_REASON] = ["; ".join(reasons[row]) for row in rows]
    accepted = accepted.reset_index(drop=True)
    return ValidationResult(
        accepted=accepted[contract.raw_columns],
        rejected=rejected.reset_index(drop=True),
        ignored_columns=ignored,
        reasons=[reasons[row] for row in rows],
    )


def _reason_kind(reason: str) -> str:
    column, _, detail = reason.partition(": ")
    if " failed " in detail:
        check = detail.rsplit(" failed ", 1)[1]
        return f"{column}: failed {'isin(contract levels)' if check.startswith('isin(') else check}"
    if detail.startswith("duplicate"):
        return f"{column}: duplicate"
    if " is outside partition" in detail:
        return f"{column}: outside partition"
    return f"{column}: {detail.split(' is ', 1)[-1] if ' is ' in detail else detail}"
