"""Child processes the platform starts (daemon, model server): wait until they answer, stop them."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(
    command: list[str], health_url: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`command` in its own session, logging to `log`, until the block ends; once `health_url` answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    try:
        wait_until_healthy(health_url, process, log, timeout_seconds=120)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Terminate a child process, and kill it if it has not exited after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_healthy(
    url: str, process: subprocess.Popen, log: Path, timeout_seconds: float = 90
) -> None:
    """Block until `url` answers; fail with the end of `log` if the process exits or times out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(
        f"{url} did not answer within {timeout_seconds}s:\n{log.read_text()[-3000:]}"
    )
