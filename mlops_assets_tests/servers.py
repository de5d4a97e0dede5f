"""Real servers for tests, on 127.0.0.1 and free ports, always stopped afterwards."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops_assets.processes import free_port, running

__all__ = ["BIN", "free_port", "mlflow_server", "require_tool", "running"]

BIN = Path(sys.executable).parent


def mlflow_server_command(folder: Path, port: int) -> list[str]:
    """`mlflow server` with a SQLite backend and proxied artifacts in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


@contextmanager
def mlflow_server(folder: Path, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    with running(
        mlflow_server_command(folder, port),
        f"http://127.0.0.1:{port}/health",
        folder / "server.log",
    ):
        yield f"http://127.0.0.1:{port}"


def require_tool(name: str) -> str:
    """The path of a system tool; skipped when absent, unless `make test` says it must be there.

    `make test` installs the Debian packages first and sets MLOPS_REQUIRE_SYSTEM_TOOLS=1, so in
    CI a missing tool fails the test instead of silently skipping it.
    """
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (run `make system-deps`)"
    if os.environ.get("MLOPS_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
