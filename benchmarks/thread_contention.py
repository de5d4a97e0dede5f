"""Trainings running at once on a small machine, with OpenMP's default threads and with one.

    python benchmarks/thread_contention.py [--processes 1 2 4] [--rows-per-day 1500]

Why the test suite sets OMP_NUM_THREADS=1 (`mlops_assets_tests/__init__.py`): two xdist workers,
the daemon and the run workers they start already fill a 2-core machine, and scikit-learn's
histogram gradient boosting starts an OpenMP team per process on top. One home of the loan
example (eight ingested days) is built once; then N fresh processes each train and register a
champion on their own copy of it at the same moment, first with the default threads, then with
OMP_NUM_THREADS=1 (and OPENBLAS_NUM_THREADS=1). Prints the median time of the training job per
process and the ratio of the two settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, table

DAYS = [f"2026-01-{day:02d}" for day in range(1, 9)]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def settings_env(home: Path, rows: int) -> dict[str, str]:
    return {"MLOPS_HOME": str(home), "MLOPS_SYNTHETIC_ROWS_PER_DAY": str(rows)}


def prepare(home: Path, rows: int) -> None:
    """Eight ingested days of the loan example in `home`."""
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from mlops_assets.keys import ingestion_job
    from mlops_assets.settings import PlatformSettings

    defs = build_definitions(PlatformSettings.from_env(settings_env(home, rows)))
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def(ingestion_job("loan_default"))
        for day in DAYS:
            assert job.execute_in_process(partition_key=day, instance=instance).success


def worker(home: Path, rows: int, start_at: float) -> None:
    """Train and register on `home` from `start_at` (a shared wall-clock moment); print seconds."""
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from mlops_assets.keys import training_job
    from mlops_assets.settings import PlatformSettings

    defs = build_definitions(PlatformSettings.from_env(settings_env(home, rows)))
    job = defs.resolve_job_def(training_job("loan_default"))
    with dg.instance_for_test() as instance:
        time.sleep(max(0.0, start_at - time.time()))  # imports done: start together
        started = time.perf_counter()
        assert job.execute_in_process(partition_key=DAYS[-1], instance=instance).success
        print(json.dumps({"seconds": time.perf_counter() - started}))


def trainings_at_once(base: Path, processes: int, rows: int, extra: dict[str, str]) -> float:
    """The median seconds of `processes` trainings started at the same moment."""
    env = {name: value for name, value in os.environ.items() if name not in ONE_THREAD}
    env.update(extra)
    start_at = time.time() + 25  # after every process has imported and loaded the code location
    children = []
    for index in range(processes):
        home = base / f"run-{index}"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(base / "prepared", home)
        children.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(home), str(rows), str(start_at)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # Dagster's step log; the figure is on stdout
                text=True,
            )
        )
    seconds = []
    for child in children:
        out, _ = child.communicate(timeout=900)
        if child.returncode != 0:
            raise RuntimeError(f"a training process failed ({child.returncode})")
        seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows-per-day", type=int, default=1500)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), int(args.worker[1]), float(args.worker[2]))
        return
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        prepare(base / "prepared", args.rows_per_day)
        rows = []
        for processes in args.processes:
            default = trainings_at_once(base, processes, args.rows_per_day, {})
            single = trainings_at_once(base, processes, args.rows_per_day, ONE_THREAD)
            rows.append([processes, f"{default:.1f}", f"{single:.1f}", f"{default / single:.2f}x"])
    print(f"{machine()}; loan example, {len(DAYS)} days x {args.rows_per_day} rows")
    print(
        table(["processes at once", "default threads (s)", "OMP_NUM_THREADS=1 (s)", "ratio"], rows)
    )


if __name__ == "__main__":
    main()
