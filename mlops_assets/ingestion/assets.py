"""A contract's `raw` table and its quarantine, `rejected`, with their checks."""

from datetime import date
from typing import Any

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.frames import Table
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.failpoints import failpoint
from mlops_assets.ingestion.sources import SourceDataError
from mlops_assets.ingestion.validation import (
    REJECTION_REASON,
    ValidationResult,
    quarantine_schema,
    validate_rows,
)
from mlops_assets.keys import RAW, REJECTED, lifecycle_pool

SCHEMA_CHECK = "accepted_rows_match_contract"
ROW_COUNT_CHECK = "row_count_at_least_minimum"
REJECTED_SHARE_CHECK = "rejected_share_below_limit"


def source_key(contract: DataContract) -> str:
    """The resource key of a contract's source."""
    return f"{contract.name}_source"


def build_ingestion_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The ingestion step of one contract: load a day from its source, validate, quarantine."""
    raw_key, rejected_key = contract.key(RAW), contract.key(REJECTED)
    settings = contract.spec.ingestion

    @dg.multi_asset(
        name=f"{contract.name}__ingest",
        op_tags=k8s_op_tags("ingestion"),
        pool=lifecycle_pool(contract.name),
        partitions_def=partitions_def,
        can_subset=False,
        required_resource_keys={source_key(contract)},
        outs={
            RAW: dg.AssetOut(
                key=raw_key,
                dagster_type=contract.dagster_types["raw"],
                description=f"{contract.spec.entity.capitalize()}s of the day that satisfy the "
                f"contract ({contract.where()}).",
                metadata={"dagster/column_schema": contract.column_schema("raw")},
                kinds={"pandas", "parquet"},
                code_version=contract.version,
            ),
            REJECTED: dg.AssetOut(
                key=rejected_key,
                dagster_type=dg.DagsterType(
                    type_check_fn=_is_table,
                    name=f"Rejected{''.join(p.capitalize() for p in contract.name.split('_'))}",
                ),
                description=(
                    "Quarantine: delivered rows that violate the contract, kept as delivered (text) "
                    f"with their source row and `{REJECTION_REASON}`."
                ),
                metadata={"dagster/column_schema": quarantine_schema(contract)},
                kinds={"pandas", "parquet"},
                code_version=contract.version,
            ),
        },
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK, asset=raw_key, description="Accepted rows pass the pandera contract"
            ),
            dg.AssetCheckSpec(
                ROW_COUNT_CHECK,
                asset=raw_key,
                description=f"At least {settings.min_rows} rows accepted",
            ),
            dg.AssetCheckSpec(
                REJECTED_SHARE_CHECK,
                asset=raw_key,
                blocking=True,
                description=f"Rejected share at most {settings.max_rejected_share}; blocks "
                "downstream assets when exceeded",
            ),
        ],
    )
    def ingest(context: dg.AssetExecutionContext):
        day = date.fromisoformat(context.partition_key)
        source = getattr(context.resources, source_key(contract))
        try:
            delivered = source.load_day(day)
        except SourceDataError as error:
            raise dg.Failure(
                description=str(error), metadata={"source/location": error.location}
            ) from error
        result = validate_rows(delivered.rows, contract, day)
        if result.rejected_share:
            context.log.warning(
                f"{len(result.rejected)} of {result.delivered_rows} rows quarantined in "
                f"{rejected_key.to_user_string()} for {day}: {result.reason_counts()}"
            )
        # The quarantine is stored first: `raw` never holds a delivery whose rejected rows are
        # not kept. A crash between the two writes leaves `raw` on the previous delivery, as a
        # fully rejected delivery does, until the partition is materialized again.
        yield dg.Output(
            result.rejected,
            output_name=REJECTED,
            metadata={
                "dagster/row_count": len(result.rejected),
                "rejected_share": result.rejected_share,
                "reasons": dg.MetadataValue.json(result.reason_counts()),
                "sample": dg.MetadataValue.md(_markdown(result.rejected.head(10))),
            },
        )
        if result.accepted.empty:
            raise dg.Failure(
                description=_nothing_accepted(contract, day, result),
                metadata={
                    "delivered_rows": result.delivered_rows,
                    "reasons": dg.MetadataValue.json(result.reason_counts()),
                    **delivered.lineage,
                },
                allow_retries=False,
            )
        failpoint("ingestion.between_writes")
        yield dg.Output(
            result.accepted,
            output_name=RAW,
            metadata={**delivered.lineage, **_accepted_metadata(contract, result)},
        )
        yield from _checks(contract, raw_key, result)

    return ingest


def _nothing_accepted(contract: DataContract, day: date, result: ValidationResult) -> str:
    """Why a delivery left nothing to store, and what was kept."""
    raw = contract.key(RAW).to_user_string()
    kept = f"{raw} keeps its last good data for {day}, if it had any"
    if result.delivered_rows == 0:
        return f"The delivery for {day} holds no rows (a header only, or an empty table); {kept}"
    reasons = "; ".join(f"{reason} ({count})" for reason, count in result.reason_counts().items())
    return (
        f"Every one of the {result.delivered_rows} rows delivered for {day} was rejected: "
        f"{reasons}. They are kept with their reasons in "
        f"{contract.key(REJECTED).to_user_string()}; {kept}"
    )


def _is_table(_context: dg.TypeCheckContext, value: object) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _accepted_metadata(contract: DataContract, result: ValidationResult) -> dict[str, Any]:
    accepted = result.accepted
    label = accepted[contract.label_column]
    return {
        "dagster/row_count": len(accepted),
        "dagster/column_schema": contract.column_schema("raw"),
        "delivered_rows": result.delivered_rows,
        "rejected_rows": len(result.rejected),
        "rejected_share": result.rejected_share,
        "labelled_rows": int(label.notna().sum()),
        "label_rate": float(label.mean()) if label.notna().any() else float("nan"),
        "ignored_columns": ", ".join(result.ignored_columns) or "none",
    }


def _checks(contract: DataContract, raw_key: dg.AssetKey, result: ValidationResult):
    import pandera.errors

    config = contract.spec.ingestion
    schema_error = None
    try:
        contract.raw_model.validate(result.accepted, lazy=True)
    except pandera.errors.SchemaErrors as error:
        schema_error = str(error)
    yield dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        asset_key=raw_key,
        passed=schema_error is None,
        metadata={"error": schema_error or "none", "columns": len(result.accepted.columns)},
    )
    yield dg.AssetCheckResult(
        check_name=ROW_COUNT_CHECK,
        asset_key=raw_key,
        passed=len(result.accepted) >= config.min_rows,
        metadata={"accepted_rows": len(result.accepted), "min_rows": config.min_rows},
    )
    yield dg.AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK,
        asset_key=raw_key,
        passed=result.rejected_share <= config.max_rejected_share,
        metadata={
            "rejected_share": result.rejected_share,
            "max_rejected_share": config.max_rejected_share,
            "rejected_rows": len(result.rejected),
            "delivered_rows": result.delivered_rows,
            "reasons": dg.MetadataValue.json(result.reason_counts()),
        },
    )


def _markdown(frame: Table) -> str:
    if frame.empty:
        return "_no rejected rows_"
    header = "| " + " | ".join(frame.columns) + " |"
    divider = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join(str(value) for value in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, divider, *rows])
