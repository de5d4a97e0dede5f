"""Data sources for raw loan applications: synthetic (default) and a folder of daily files."""

from mlops_assets.sources.base import LoanApplicationSource, SourceDataError, SourceDay
from mlops_assets.sources.files import FileLoanSource
from mlops_assets.sources.synthetic import DriftScenario, SyntheticLoanSource

__all__ = [
    "DriftScenario",
    "FileLoanSource",
    "LoanApplicationSource",
    "SourceDataError",
    "SourceDay",
    "SyntheticLoanSource",
]
