"""`loan_features`: the pandera-typed feature table of a day, with column lineage."""

import dagster as dg
import pandas as pd

from mlops_assets.contract import LOAN_APPLICATIONS
from mlops_assets.deployment import k8s_op_tags
from mlops_assets.features.engineering import build_features
from mlops_assets.ingestion.assets import RAW


def build_feature_assets(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=partitions_def,
        group_name="features",
        dagster_type=LOAN_APPLICATIONS.features_dagster_type,
        ins={"raw": dg.AssetIn(RAW)},
        metadata={
            "dagster/column_schema": LOAN_APPLICATIONS.column_schema("features"),
            "dagster/column_lineage": LOAN_APPLICATIONS.column_lineage(RAW),
        },
        kinds={"pandas", "parquet"},
        code_version=LOAN_APPLICATIONS.version,
        op_tags=k8s_op_tags("features"),
    )
    def loan_features(
        context: dg.AssetExecutionContext, raw: pd.DataFrame
    ) -> dg.Output[pd.DataFrame]:
        """Model inputs for a day: raw features plus derived ratios, logs and bands."""
        features = build_features(raw)
        label = features[LOAN_APPLICATIONS.label_column]
        return dg.Output(
            features,
            metadata={
                "dagster/row_count": len(features),
                "dagster/column_schema": LOAN_APPLICATIONS.column_schema("features"),
                "dagster/column_lineage": LOAN_APPLICATIONS.column_lineage(RAW),
                "labelled_rows": int(label.notna().sum()),
                "missing_values": dg.MetadataValue.json(
                    {name: int(count) for name, count in features.isna().sum().items() if count}
                ),
            },
        )

    return loan_features
