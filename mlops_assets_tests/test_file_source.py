"""The file source: daily CSV/Parquet files in a local folder or behind an fsspec URL."""

from datetime import date
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator
from mlops_assets.ingestion.sources import FileSource, SourceDataError

DAY = date(2026, 1, 5)


@pytest.fixture
def rows() -> pd.DataFrame:
    return SyntheticLoanGenerator(rows_per_day=30).generate(DAY)


def test_reads_parquet_from_a_local_folder(tmp_path: Path, rows: pd.DataFrame):
    rows.to_parquet(tmp_path / "2026-01-05.parquet")
    loaded = FileSource(base_url=str(tmp_path), file_format="parquet").load_day(DAY)
    pd.testing.assert_frame_equal(loaded.rows, rows)
    assert loaded.lineage["source/bytes"] == (tmp_path / "2026-01-05.parquet").stat().st_size
    assert len(loaded.lineage["source/sha256"]) == 64


def test_reads_csv_as_text_so_ingestion_can_name_bad_values(tmp_path: Path, rows: pd.DataFrame):
    rows.to_csv(tmp_path / "2026-01-05.csv", index=False)
    loaded = FileSource(base_url=str(tmp_path), file_format="csv").load_day(DAY).rows
    assert len(loaded) == len(rows)
    assert loaded["age"].map(type).eq(str).all()


def test_reads_from_an_fsspec_url(rows: pd.DataFrame):
    with fsspec.open("memory://landing/2026-01-05.parquet", "wb") as file:
        rows.to_parquet(file)
    loaded = FileSource(base_url="memory://landing", file_format="parquet").load_day(DAY).rows
    pd.testing.assert_frame_equal(loaded, rows)


def test_missing_file_is_an_error_naming_the_path(tmp_path: Path):
    with pytest.raises(
        SourceDataError,
        match=r"No source file for partition 2026-01-05: .*2026-01-05.parquet does not exist",
    ):
        FileSource(base_url=str(tmp_path), file_format="parquet").load_day(DAY)


def test_empty_file_is_an_error_naming_the_path(tmp_path: Path):
    (tmp_path / "2026-01-05.csv").write_text("")
    with pytest.raises(SourceDataError, match=r"2026-01-05.csv is empty \(0 bytes\)"):
        FileSource(base_url=str(tmp_path), file_format="csv").load_day(DAY)


def test_corrupt_parquet_is_an_error_naming_the_path(tmp_path: Path, rows: pd.DataFrame):
    rows.to_parquet(tmp_path / "2026-01-05.parquet")
    content = (tmp_path / "2026-01-05.parquet").read_bytes()
    (tmp_path / "2026-01-05.parquet").write_bytes(content[: len(content) // 2])  # truncated upload
    with pytest.raises(SourceDataError, match=r"2026-01-05.parquet is not a readable Parquet file"):
        FileSource(base_url=str(tmp_path), file_format="parquet").load_day(DAY)


def test_header_only_csv_is_zero_rows(tmp_path: Path, rows: pd.DataFrame):
    rows.head(0).to_csv(tmp_path / "2026-01-05.csv", index=False)
    assert FileSource(base_url=str(tmp_path), file_format="csv").load_day(DAY).rows.empty


def test_unknown_format_is_refused_when_the_source_is_made(tmp_path: Path):
    with pytest.raises(ValueError, match="file_format"):
        FileSource(base_url=str(tmp_path), file_format="xlsx")
