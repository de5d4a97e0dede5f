"""Where a contract's rows come from: a Dagster resource that returns one day as delivered.

Built in: `FileSource`, a folder of daily CSV or Parquet files, local or on any fsspec URL
(`<url>/2026-01-05.csv`). Your own: subclass `DataSource` and name it in the contract
(`source: {kind: python, resource: my_module:MySource, config: {...}}`).
"""

from __future__ import annotations

import hashlib
import io
from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
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


class DataSource(dg.ConfigurableResource):
    """Where raw rows come from. Subclass it to plug in your own source.

    `load_day` returns the rows as delivered, without cleaning: ingestion validates them against the
    contract and quarantines what does not fit, so a source should not drop or fix rows itself. It
    raises `SourceDataError` when the day cannot be read at all.
    """

    @abstractmethod
    def load_day(self, day: date) -> SourceDay:
        """All rows whose event falls on `day` (UTC), with their lineage."""


class FileSource(DataSource):
    """Reads `<base_url>/<YYYY-MM-DD>.<file_format>` for each daily partition.

    CSV cells are read as text so that ingestion can say exactly which value failed to parse;
    Parquet keeps its own types.
    """

    base_url: str = Field(
        description="Folder path or fsspec URL (s3://, gs://, memory://, file://)"
    )
    file_format: Literal["csv", "parquet"] = Field(default="csv", description="'csv' or 'parquet'")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="fsspec options, e.g. an S3 endpoint_url"
    )

    def path_for(self, day: date):  # -> UPath
        from upath import UPath

        return (
            UPath(self.base_url, **self.storage_options) / f"{day.isoformat()}.{self.file_format}"
        )

    def load_day(self, day: date) -> SourceDay:
        path = self.path_for(day)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise SourceDataError(
                f"No source file for partition {day.isoformat()}: {path} does not exist", str(path)
            ) from None
        if not content.strip():
            raise SourceDataError(f"Source file {path} is empty ({len(content)} bytes)", str(path))
        lineage: dict[str, Any] = {
            "source": "files",
            "source/path": dg.MetadataValue.path(str(path)),
            "source/bytes": len(content),
            "source/sha256": hashlib.sha256(content).hexdigest(),
        }
        return SourceDay(rows=self._parse(str(path), content), lineage=lineage)

    def _parse(self, location: str, content: bytes) -> pd.DataFrame:
        import pandas as pd

        buffer = io.BytesIO(content)
        if self.file_format == "csv":
            try:
                return pd.read_csv(buffer, dtype=str, keep_default_na=True)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
                raise SourceDataError(
                    f"Source file {location} is not valid CSV: {error}", location
                ) from error
        try:
            return pd.read_parquet(buffer)
        except Exception as error:  # pyarrow raises several unrelated types for damaged files
            raise SourceDataError(
                f"Source file {location} is not a readable Parquet file: {error}", location
            ) from error
