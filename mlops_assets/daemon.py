"""`dagster-daemon`, with its sensor loop as frequent as the platform's sensor interval asks.

Dagster's sensor daemon evaluates sensors at most every 5 s, whatever their
`minimum_interval_seconds`: with `MLOPS_SENSOR_INTERVAL_SECONDS` below that (the demo, the
tests) a sensor would still tick only every 5 s. `python -m mlops_assets.daemon run -m
mlops_assets` loops every `min(5, MLOPS_SENSOR_INTERVAL_SECONDS)` seconds instead; everything
else is Dagster's daemon unchanged. The constant is Dagster's (pinned in constraints.txt); a
Dagster without it keeps its own loop.
"""

from __future__ import annotations

import sys

from dagster._daemon import sensor as sensor_daemon
from dagster._daemon.cli import main as daemon_main

from mlops_assets.settings import PlatformSettings


def main() -> int:
    interval = PlatformSettings.from_env().sensor_interval_seconds
    if hasattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME"):
        sensor_daemon.MIN_INTERVAL_LOOP_TIME = min(sensor_daemon.MIN_INTERVAL_LOOP_TIME, interval)
    sys.argv[0] = "dagster-daemon"
    return daemon_main()


if __name__ == "__main__":
    sys.exit(main())
