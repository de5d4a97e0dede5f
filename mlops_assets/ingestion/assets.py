"""`raw_loan_applications` and its quarantine, `rejected_loan_applications`, with their checks."""

from datetime import date
from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pydantic import Field

from mlops_assets.contract import LOAN_APPLICATIONS
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.ingestion.validation import (
    REJECTION_REASON,
    ValidationResult,
    quarantine_schema,
    validate_rows,
)
from mlops_assets.sources import LoanApplicationSource, SourceDataError

RAW = dg.AssetKey("raw_loan_applications")
REJECTED = dg.AssetKey("rejected_loan_applications")
SCHEMA_CHECK = "accepted_rows_match_contract"
ROW_COUNT_CHECK = "row_count_at_least_minimum"
REJECTED_SHARE_CHECK = "rejected_share_below_limit"


class IngestionConfig(dg.Config):
    max_rejected_share: float = Field(
        default=0.05, description="Above this share of rejected rows the partition is blocked"
    )
    min_rows: int = Field(
        default=1, description="Fewer accepted rows than this fails the row-count check"
    )


def build_ingestion_assets(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The ingestion step for the given partitioning (daily, start date from the settings)."""

    @dg.multi_asset(
        name="ingest_loan_applications",
        op_tags=k8s_op_tags("ingestion"),
        partitions_def=partitions_def,
        can_subset=False,
        outs={
            RAW.path[-1]: dg.AssetOut(
                dagster_type=LOAN_APPLICATIONS.raw_dagster_type,
                group_name="ingestion",
                description="Loan applications of the day that satisfy the data contract.",
                metadata={"dagster/column_schema": LOAN_APPLICATIONS.column_schema("raw")},
                kinds={"pandas", "parquet"},
                code_version=LOAN_APPLICATIONS.version,
            ),
            REJECTED.path[-1]: dg.AssetOut(
                dagster_type=dg.DagsterType(
                    type_check_fn=lambda _, value: isinstance(value, pd.DataFrame),
                    name="RejectedLoanApplications",
                    typing_type=pd.DataFrame,
                ),
                group_name="ingestion",
                description=(
                    "Quarantine: delivered rows that violate the contract, kept as delivered (text) "
                    f"with their source row and `{REJECTION_REASON}`."
                ),
                metadata={"dagster/column_schema": quarantine_schema(LOAN_APPLICATIONS)},
                kinds={"pandas", "parquet"},
                code_version=LOAN_APPLICATIONS.version,
            ),
        },
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK, asset=RAW, description="Accepted rows pass the pandera contract"
            ),
            dg.AssetCheckSpec(ROW_COUNT_CHECK, asset=RAW, description="Enough rows arrived"),
            dg.AssetCheckSpec(
                REJECTED_SHARE_CHECK,
                asset=RAW,
                blocking=True,
                description="Rejected share within limit; blocks downstream assets when exceeded",
            ),
        ],
    )
    def ingest_loan_applications(
        context: dg.AssetExecutionContext,
        config: IngestionConfig,
        loan_source: LoanApplicationSource,
    ):
        day = date.fromisoformat(context.partition_key)
        try:
            delivered = loan_source.load_day(day)
        except SourceDataError as error:
            raise dg.Failure(
                description=str(error), metadata={"source/location": error.location}
            ) from error
        result = validate_rows(delivered.rows, LOAN_APPLICATIONS, day)
        if result.rejected_share:
            context.log.warning(
                f"{len(result.rejected)} of {result.delivered_rows} rows quarantined in "
                f"{REJECTED.to_user_string()} for {day}: {result.reason_counts()}"
            )
        yield dg.Output(
            result.accepted,
            output_name=RAW.path[-1],
            metadata={**delivered.lineage, **_accepted_metadata(result)},
        )
        yield dg.Output(
            result.rejected,
            output_name=REJECTED.path[-1],
            metadata={
                "dagster/row_count": len(result.rejected),
                "rejected_share": result.rejected_share,
                "reasons": dg.MetadataValue.json(result.reason_counts()),
                "sample": dg.MetadataValue.md(_markdown(result.rejected.head(10))),
            },
        )
        yield from _checks(result, config)

    return ingest_loan_applications


def _accepted_metadata(result: ValidationResult) -> dict[str, Any]:
    accepted = result.accepted
    label = accepted[LOAN_APPLICATIONS.label_column]
    return {
        "dagster/row_count": len(accepted),
        "dagster/column_schema": LOAN_APPLICATIONS.column_schema("raw"),
        "delivered_rows": result.delivered_rows,
        "rejected_rows": len(result.rejected),
        "rejected_share": result.rejected_share,
        "labelled_rows": int(label.notna().sum()),
        "label_rate": float(label.mean()) if label.notna().any() else float("nan"),
        "ignored_columns": ", ".join(result.ignored_columns) or "none",
    }


def _checks(result: ValidationResult, config: IngestionConfig):
    schema_error = None
    try:
        LOAN_APPLICATIONS.raw_model.validate(result.accepted, lazy=True)
    except pa.errors.SchemaErrors as error:
        schema_error = str(error)
    yield dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        asset_key=RAW,
        passed=schema_error is None,
        metadata={"error": schema_error or "none", "columns": len(result.accepted.columns)},
    )
    yield dg.AssetCheckResult(
        check_name=ROW_COUNT_CHECK,
        asset_key=RAW,
        passed=len(result.accepted) >= config.min_rows,
        metadata={"accepted_rows": len(result.accepted), "min_rows": config.min_rows},
    )
    yield dg.AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK,
        asset_key=RAW,
        passed=result.rejected_share <= config.max_rejected_share,
        metadata={
            "rejected_share": result.rejected_share,
            "max_rejected_share": config.max_rejected_share,
            "rejected_rows": len(result.rejected),
            "delivered_rows": result.delivered_rows,
            "reasons": dg.MetadataValue.json(result.reason_counts()),
        },
    )


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no rejected rows_"
    header = "| " + " | ".join(frame.columns) + " |"
    divider = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join(str(value) for value in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, divider, *rows])
