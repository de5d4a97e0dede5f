"""Parquet asset storage: round trips, many partitions, object-store URLs, and atomic writes."""

import os
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from upath import UPath

from mlops_assets.io_manager import ParquetIOManager, write_atomically

daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.asset(partitions_def=daily)
def numbers(context: dg.AssetExecutionContext) -> pd.DataFrame:
    day = int(context.partition_key[-2:])
    return pd.DataFrame(
        {"day": [day] * 3, "value": np.arange(3) * day, "label": pd.array([1, None, 0], "Int8")}
    )


@dg.asset(
    partitions_def=daily,
    ins={"numbers": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2))},
)
def three_days(numbers: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(numbers.values(), ignore_index=True)


@dg.asset
def not_a_frame() -> int:
    return 3


@pytest.mark.parametrize(
    "base", ["local", "memory://bucket/assets", "file"], ids=["folder", "memory-url", "file-url"]
)
def test_partitions_round_trip_and_load_as_a_window(tmp_path: Path, base: str):
    base_path = {"local": str(tmp_path / "assets"), "file": f"file://{tmp_path}/assets"}.get(
        base, base
    )
    resources = {"io_manager": ParquetIOManager(base_path=base_path)}
    for day in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([numbers], resources=resources, partition_key=day).success
    result = dg.materialize([numbers, three_days], resources=resources, partition_key="2026-01-03")
    assert result.success
    with (UPath(base_path) / "three_days" / "2026-01-03.parquet").open("rb") as file:
        window = pd.read_parquet(file)
    assert sorted(window["day"].unique()) == [1, 2, 3]
    assert str(window["label"].dtype) == "Int8"  # nullable types survive storage
    event = result.asset_materializations_for_node("numbers")[0]
    assert event.metadata["dagster/row_count"].value == 3


def test_refuses_values_it_cannot_store(tmp_path: Path):
    with pytest.raises(TypeError, match="stores pandas DataFrames; not_a_frame returned int"):
        dg.materialize(
            [not_a_frame], resources={"io_manager": ParquetIOManager(base_path=str(tmp_path))}
        )


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_files(
    tmp_path: Path, monkeypatch
):
    target = UPath(tmp_path / "asset" / "2026-01-01.parquet")
    write_atomically(target, b"version one")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"version two")
    assert target.read_bytes() == b"version one"
    assert os.listdir(tmp_path / "asset") == ["2026-01-01.parquet"]


def test_readers_never_see_a_half_written_partition(tmp_path: Path):
    target = UPath(tmp_path / "asset" / "2026-01-01.parquet")
    frames = [pd.DataFrame({"x": np.full(400_000, version, dtype="int64")}) for version in range(2)]
    payloads = []
    for frame in frames:
        path = tmp_path / "payload.parquet"
        frame.to_parquet(path)
        payloads.append(path.read_bytes())
    write_atomically(target, payloads[0])
    stop = threading.Event()
    seen: list[int] = []
    errors: list[Exception] = []

    def read_continuously():
        while not stop.is_set():
            try:
                values = pd.read_parquet(target)["x"]
                assert len(values) == 400_000 and values.nunique() == 1
                seen.append(int(values.iloc[0]))
            except Exception as error:  # any partial read is a failure of atomicity
                errors.append(error)

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for index in range(2_000):  # until the reader has raced plenty of writes
            write_atomically(target, payloads[index % 2])
            if len(seen) >= 30:
                break
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert len(seen) >= 30 and set(seen) == {0, 1}
