"""A folder of daily CSV or Parquet files, one per partition, local or on any fsspec/UPath URL.

Files are named by date: `<base_url>/2026-01-05.parquet` (or `.csv`). CSV cells are read as text so
that ingestion can say exactly which value failed to parse; Parquet keeps its own types.
"""

from __future__ import annotations

import hashlib
import io
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from mlops_assets.sources.base import LoanApplicationSource, SourceDataError, SourceDay

_FORMATS = ("parquet", "csv")


class FileLoanSource(LoanApplicationSource):
    """Reads `<base_url>/<YYYY-MM-DD>.<file_format>` for each daily partition."""

    base_url: str = Field(
        description="Folder path or fsspec URL (s3://, gs://, memory://, file://)"
    )
    file_format: str = Field(default="parquet", description="'parquet' or 'csv'")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="fsspec options, e.g. an S3 endpoint_url"
    )

    def path_for(self, day: date):  # -> UPath
        from upath import UPath

        if self.file_format not in _FORMATS:
            raise ValueError(f"file_format must be one of {_FORMATS}, got {self.file_format!r}")
        return (
            UPath(self.base_url, **self.storage_options) / f"{day.isoformat()}.{self.file_format}"
        )

    def _read_bytes(self, day: date) -> tuple[str, bytes]:
        path = self.path_for(day)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise SourceDataError(
                f"No source file for partition {day.isoformat()}: {path} does not exist", str(path)
            ) from None
        if not content.strip():
            raise SourceDataError(f"Source file {path} is empty ({len(content)} bytes)", str(path))
        return str(path), content

    def load_day(self, day: date) -> SourceDay:
        location, content = self._read_bytes(day)
        lineage: dict[str, Any] = {
            "source": "files",
            "source/path": dg.MetadataValue.path(location),
            "source/bytes": len(content),
            "source/sha256": hashlib.sha256(content).hexdigest(),
        }
        return SourceDay(rows=self._parse(location, content), lineage=lineage)

    def _parse(self, location: str, content: bytes) -> pd.DataFrame:
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
