"""Parquet asset storage on a local folder or any object store, so pods can exchange assets.

Writes are atomic: on a local disk the file is written under a temporary name in the same folder
and renamed into place; on an object store the whole object is uploaded in one PUT, which stores
either all of it or nothing. A reader never sees a half-written partition.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from mlops_assets.failpoints import failpoint

if TYPE_CHECKING:
    import pandas as pd
    from upath import UPath


class _ParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        import pandas as pd

        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"ParquetIOManager stores pandas DataFrames; {context.asset_key.to_user_string()} "
                f"returned {type(obj).__name__}"
            )
        buffer = io.BytesIO()
        obj.to_parquet(buffer, index=False)
        write_atomically(path, buffer.getvalue())

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        import pandas as pd

        with path.open("rb") as file:
            return pd.read_parquet(file)

    def get_metadata(self, context: dg.OutputContext, obj: pd.DataFrame) -> dict[str, Any]:
        return {"dagster/row_count": len(obj)}


def write_atomically(path: UPath, content: bytes) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one, never part.

    A writer killed mid-write (no `finally` runs) leaves its temporary file behind; the next write
    of the same path removes those older than `STALE_TEMPORARY_SECONDS`.
    """
    if path.protocol in ("", "file", "local"):
        local = os.fspath(path.path if hasattr(path, "path") else path)
        folder = os.path.dirname(local)
        os.makedirs(folder, exist_ok=True)
        _remove_stale_temporaries(folder, os.path.basename(local))
        temporary = os.path.join(folder, f".{os.path.basename(local)}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            failpoint("io.before_rename")
            os.replace(temporary, local)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    else:
        path.write_bytes(content)


# Older than this, a temporary file cannot belong to a write still in progress.
STALE_TEMPORARY_SECONDS = 3600


def _remove_stale_temporaries(folder: str, name: str) -> None:
    now = time.time()
    for entry in os.scandir(folder):
        if entry.name.startswith(f".{name}.") and entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                    os.unlink(entry.path)
            except FileNotFoundError:  # removed by another writer meanwhile
                pass


def read_partition(
    base_path: str, key: dg.AssetKey, partition: str, storage_options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One stored partition, read directly (no Dagster context, so no step logging)."""
    import pandas as pd
    from upath import UPath

    path = UPath(base_path, **(storage_options or {})).joinpath(*key.path, f"{partition}.parquet")
    with path.open("rb") as file:
        return pd.read_parquet(file)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores each asset partition as `<base_path>/<asset key>/<partition>.parquet`."""

    base_path: str = Field(description="Local folder or fsspec URL, e.g. s3://bucket/assets")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options, e.g. {'endpoint_url': ...} for MinIO"
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> _ParquetUPathIOManager:
        from upath import UPath

        return _ParquetUPathIOManager(base_path=UPath(self.base_path, **self.storage_options))
