"""Contracts: one YAML file per dataset and model, validated when the code location loads."""

from mlops_assets.contracts.contract import (
    SPLIT,
    ContractError,
    DataContract,
    load_contract,
    load_contracts,
)
from mlops_assets.contracts.frames import ColumnSpec, FrameSpec

__all__ = [
    "SPLIT",
    "ColumnSpec",
    "ContractError",
    "DataContract",
    "FrameSpec",
    "load_contract",
    "load_contracts",
]
