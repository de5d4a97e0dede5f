"""The source interface: a Dagster resource that returns one day of raw loan applications."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd


class SourceDataError(Exception):
    """A partition's source data cannot be read at all (missing, empty or corrupt file)."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


@dataclass
class SourceDay:
    """One day of rows as delivered, and metadata that says exactly where they came from."""

    rows: pd.DataFrame
    lineage: dict[str, Any] = field(default_factory=dict)


class LoanApplicationSource(dg.ConfigurableResource):
    """Where raw applications come from. Subclass it to plug in your own source.

    `load_day` returns the rows as delivered, without cleaning: ingestion validates them against the
    contract and quarantines what does not fit, so a source should not drop or fix rows itself. It
    raises `SourceDataError` when the day cannot be read at all.
    """

    @abstractmethod
    def load_day(self, day: date) -> SourceDay:
        """All applications whose event time falls on `day` (UTC), with their lineage."""
