"""Real servers for tests, on 127.0.0.1 and free ports, always stopped afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops_assets.processes import free_port, running

__all__ = ["BIN", "Postgres", "free_port", "mlflow_server", "postgres", "require_tool", "running"]

BIN = Path(sys.executable).parent


# MLflow 3's server also starts a job runner (7 huey consumers polling the database, for GenAI
# evaluation jobs) that the platform never uses: a third of a core, idle, per server.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_command(folder: Path, port: int, backend_store: str | None = None) -> list[str]:
    """`mlflow server` with proxied artifacts in `folder`; its backend store is `backend_store`
    (a database URL), by default SQLite in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", backend_store or f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


@contextmanager
def mlflow_server(
    folder: Path, port: int | None = None, backend_store: str | None = None
) -> Iterator[str]:
    port = port or free_port()
    with running(
        mlflow_server_command(folder, port, backend_store),
        f"http://127.0.0.1:{port}/health",
        folder / "server.log",
        env={**os.environ, **MLFLOW_SERVER_ENV},
    ):
        yield f"http://127.0.0.1:{port}"


class Postgres:
    """Debian's PostgreSQL server on 127.0.0.1: a fresh cluster in a temporary folder, password
    logins for the user `mlops`, and as many databases as asked for. Run as the `postgres` system
    user when we are root (the server refuses to run as root)."""

    USER, PASSWORD = "mlops", "mlops-test-password"

    def __init__(self, databases: tuple[str, ...]) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="mlops-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        password_file = self.folder / "password"
        password_file.write_text(self.PASSWORD)
        if self.as_user:
            shutil.chown(password_file, "postgres")
        self._pg("initdb", "-D", str(self.data), "-U", self.USER, f"--pwfile={password_file}",
                 "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync")  # fmt: skip
        try:
            self.start()
            for database in databases:
                self._pg(
                    "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, database
                )
        except BaseException:
            self.close()
            raise

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder}"
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown, as a database failover or a restarted Pod does it: open
        connections are cut, transactions in flight roll back."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _pg(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin / tool), *args]
        env = {**os.environ, "PGPASSWORD": self.PASSWORD}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self.folder)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}\n{log}")


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them off the PATH, in
    /usr/lib/postgresql/<major>/bin); skipped, or failed under `make test`, when there is none."""
    installed = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if installed:
        return Path(max(installed, key=lambda path: int(path.split("/")[4]))).parent
    return Path(require_tool("pg_ctl")).resolve().parent


@contextmanager
def postgres(*databases: str) -> Iterator[Postgres]:
    server = Postgres(databases)
    try:
        yield server
    finally:
        server.close()


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
