"""Contracts: one YAML file per dataset and model, validated when the code location loads."""

from mlops_assets.contracts.contract import (
    SPLIT,
    ContractError,
    DataContract,
    load_contract,
    load_contracts,
    pandera_dagster_type,
)

__all__ = [
    "SPLIT",
    "ContractError",
    "DataContract",
    "load_contract",
    "load_contracts",
    "pandera_dagster_type",
]
