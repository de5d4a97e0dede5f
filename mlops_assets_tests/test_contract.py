"""The contract is the single source: every schema, type and column list derives from it."""

from dataclasses import replace

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.contract import LOAN_APPLICATIONS, CategoricalColumn, NumericColumn
from mlops_assets.features.engineering import build_features
from mlops_assets.ingestion.validation import validate_rows
from mlops_assets.sources.synthetic import SyntheticLoanGenerator

RAW_FEATURES = [
    "age",
    "annual_income",
    "credit_score",
    "open_accounts",
    "debt_to_income",
    "loan_amount",
    "employment_length_years",
    "home_ownership",
    "loan_purpose",
]


def test_contract_declares_the_loan_dataset():
    contract = LOAN_APPLICATIONS
    assert contract.raw_columns == ["application_id", "applied_at", *RAW_FEATURES, "defaulted"]
    assert contract.feature_columns == [
        *RAW_FEATURES,
        "loan_to_income",
        "log_annual_income",
        "credit_score_band",
    ]
    assert "home_ownership" in contract.categorical_features
    assert "credit_score_band" in contract.categorical_features
    assert "annual_income" in contract.numeric_features
    assert set(contract.numeric_features) | set(contract.categorical_features) == set(
        contract.feature_columns
    )


def test_models_and_dagster_types_carry_the_contract_columns_and_rules():
    raw_schema = LOAN_APPLICATIONS.raw_model.to_schema()
    assert list(raw_schema.columns) == LOAN_APPLICATIONS.raw_columns
    assert raw_schema.columns["defaulted"].nullable
    assert not raw_schema.columns["age"].nullable
    assert raw_schema.columns["application_id"].unique
    column_schema = LOAN_APPLICATIONS.column_schema("features")
    by_name = {column.name: column for column in column_schema.columns}
    assert list(by_name) == LOAN_APPLICATIONS.feature_table_columns
    assert by_name["credit_score"].constraints.other == [">= 300", "<= 850"]
    assert by_name["credit_score"].description == "Bureau credit score (FICO scale)"
    assert by_name["defaulted"].constraints.nullable


def test_dagster_type_accepts_contract_rows_and_rejects_violations():
    raw = SyntheticLoanGenerator(rows_per_day=50).generate(pd.Timestamp("2026-01-05").date())
    dagster_type = LOAN_APPLICATIONS.raw_dagster_type
    assert dg.check_dagster_type(dagster_type, raw).success
    broken = raw.assign(credit_score=raw["credit_score"].where(raw.index != 3, 9_000))
    result = dg.check_dagster_type(dagster_type, broken)
    assert not result.success
    assert "credit_score" in result.description


def test_a_column_added_to_the_contract_reaches_every_derived_piece():
    extended = replace(
        LOAN_APPLICATIONS,
        raw_features=(
            *LOAN_APPLICATIONS.raw_features,
            NumericColumn("monthly_rent", "Declared monthly rent (USD)", 0, 20_000),
        ),
    )
    assert "monthly_rent" in extended.raw_columns
    assert "monthly_rent" in extended.feature_columns
    assert "monthly_rent" in extended.numeric_features
    assert "monthly_rent" in extended.raw_model.to_schema().columns
    assert "monthly_rent" in extended.features_model.to_schema().columns
    for stage in ("raw", "features"):
        names = [column.name for column in extended.column_schema(stage).columns]
        assert "monthly_rent" in names
    type_schema = extended.features_dagster_type.metadata["schema"].schema
    assert "monthly_rent" in [column.name for column in type_schema.columns]
    lineage = extended.column_lineage(dg.AssetKey("raw"))
    assert lineage.deps_by_column["monthly_rent"][0].column_name == "monthly_rent"

    raw = SyntheticLoanGenerator(rows_per_day=20).generate(pd.Timestamp("2026-01-05").date())
    raw["monthly_rent"] = 1_000.0
    raw.loc[0, "monthly_rent"] = -5.0  # violates the new column's range
    result = validate_rows(raw, extended)
    assert result.rejected["rejection_reason"].tolist() == [
        "monthly_rent: -5.0 failed greater_than_or_equal_to(0)"
    ]
    features = build_features(result.accepted, extended)
    assert "monthly_rent" in features.columns
    extended.features_model.validate(features)


def test_contract_refuses_ambiguous_declarations():
    with pytest.raises(ValueError, match="twice"):
        replace(
            LOAN_APPLICATIONS,
            raw_features=(*LOAN_APPLICATIONS.raw_features, NumericColumn("age", "again")),
        )
    with pytest.raises(ValueError, match="must name its raw input columns"):
        replace(
            LOAN_APPLICATIONS,
            derived_features=(CategoricalColumn("band", "no inputs", ("a",)),),
        )
