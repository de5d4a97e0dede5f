"""Shared helpers for the benchmark scripts: child-process measurement and the printed table."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(script: str, *args: str, timeout: float = 900) -> dict:
    """Run `benchmarks/<script> --worker ...` in a fresh process; it prints one JSON line."""
    completed = subprocess.run(
        [sys.executable, str(HERE / script), "--worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        " | ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=False))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def ingest_and_train(defs, instance, days: list[str], contract: str = "loan_default") -> None:
    """Ingest each day, then train and register a champion on the window ending on the last."""
    from mlops_assets.keys import ingestion_job, training_job

    for day in days:
        assert (
            defs.resolve_job_def(ingestion_job(contract))
            .execute_in_process(partition_key=day, instance=instance)
            .success
        )
    assert (
        defs.resolve_job_def(training_job(contract))
        .execute_in_process(partition_key=days[-1], instance=instance)
        .success
    )
