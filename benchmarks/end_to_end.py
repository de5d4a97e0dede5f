"""End to end: the README's main job (`python -m mlops_assets.demo`), timed, at a given size.

    python benchmarks/end_to_end.py [--rows-per-day 2000 100000]

Runs the demo in a fresh home per size (real daemon and all) and prints its wall time, the time
spent inside step execution (summed over every run, from the instance's step stats), and the rest:
process start-up, imports, Dagster orchestration, and waiting for sensor ticks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table

REPO = Path(__file__).resolve().parents[1]


def run_demo(rows_per_day: int) -> list[object]:
    import dagster as dg

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        (home / "dagster").mkdir()
        (home / "dagster" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        env = {
            **os.environ,
            "MLOPS_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "MLOPS_SYNTHETIC_ROWS_PER_DAY": str(rows_per_day),
        }
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "mlops_assets.demo"],
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        wall = time.perf_counter() - started
        story = "complete" if "Story complete." in completed.stdout else "INCOMPLETE"
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            runs = instance.get_runs()
            in_steps = sum(
                (stat.end_time or 0) - (stat.start_time or 0)
                for run in runs
                for stat in instance.get_run_step_stats(run.run_id)
            )
    outside = wall - in_steps
    return [
        f"{rows_per_day:,}",
        story,
        f"{wall:.0f}",
        len(runs),
        f"{in_steps:.0f}",
        f"{outside:.0f}",
        f"{outside / wall:.0%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-day", type=int, nargs="+", default=[2000])
    args = parser.parse_args()
    rows = [run_demo(size) for size in args.rows_per_day]
    print(f"Main job end to end (16 days, real daemon), {machine()}")
    print(
        table(
            [
                "rows/day",
                "story",
                "wall s",
                "runs",
                "in steps s",
                "outside steps s",
                "outside share",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
