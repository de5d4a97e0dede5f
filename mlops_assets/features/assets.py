"""A contract's `features`: the pandera-typed feature table of a day, with column lineage."""

import dagster as dg

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.frames import Table
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.keys import FEATURES, RAW, lifecycle_pool


def build_feature_assets(
    contract: DataContract, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    raw_key = contract.key(RAW)
    metadata = {
        "dagster/column_schema": contract.column_schema("features"),
        "dagster/column_lineage": contract.column_lineage(raw_key),
    }
    derived = ", ".join(column.name for column in contract.derived_features) or "none"

    @dg.asset(
        key=contract.key(FEATURES),
        partitions_def=partitions_def,
        dagster_type=contract.dagster_types["features"],
        ins={"raw": dg.AssetIn(raw_key)},
        metadata=metadata,
        kinds={"pandas", "parquet"},
        code_version=contract.version,
        op_tags=k8s_op_tags("features"),
        pool=lifecycle_pool(contract.name),
        description=f"Model inputs for a day: raw features plus derived ones ({derived}).",
    )
    def features(context: dg.AssetExecutionContext, raw: Table) -> dg.Output[Table]:
        table = contract.build_features(raw)
        return dg.Output(
            table,
            metadata={
                **metadata,
                "dagster/row_count": len(table),
                "labelled_rows": int(table[contract.label_column].notna().sum()),
                "missing_values": dg.MetadataValue.json(
                    {name: int(count) for name, count in table.isna().sum().items() if count}
                ),
            },
        )

    return features
