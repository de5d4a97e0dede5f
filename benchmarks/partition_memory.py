"""Peak memory of one 1M-row partition through raw -> features -> drift_report -> batch_predictions.

    python benchmarks/partition_memory.py [--rows 1000000]

A first process trains a champion on three small days (not measured); a second, fresh process
materializes one day of `--rows` synthetic applications through ingestion, features, the drift
report (scores on every row; Evidently's HTML on its bounded sample) and batch predictions, on the
embedded default, and reports its peak RSS and wall time. Target: under 3 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ingest_and_train, machine, measure, peak_rss_mib

TRAIN_DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
MEASURED_DAY = "2026-01-04"
SELECTION = [
    f"loan_default/{stage}"
    for stage in ("raw", "rejected", "features", "drift_report", "batch_predictions")
]


def worker(phase: str, home: str, rows: str) -> None:
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from mlops_assets.settings import PlatformSettings

    rows_per_day = "20000" if phase == "train" else rows
    defs = build_definitions(
        PlatformSettings.from_env(
            {"MLOPS_HOME": home, "MLOPS_SYNTHETIC_ROWS_PER_DAY": rows_per_day}
        )
    )
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        if phase == "train":
            ingest_and_train(defs, instance, TRAIN_DAYS)
        else:
            result = dg.materialize(
                defs.assets,
                selection=[dg.AssetKey(key.split("/")) for key in SELECTION],
                resources=defs.resources,
                partition_key=MEASURED_DAY,
                instance=instance,
            )
            assert result.success
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("PHASE", "HOME", "ROWS"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory() as home:
        measure("partition_memory.py", "train", home, "0", timeout=1800)
        result = measure("partition_memory.py", "measure", home, str(args.rows), timeout=1800)
    gib = result["rss_mib"] / 1024
    print(f"One partition of ~{args.rows:,} rows (Poisson around it), {machine()}")
    print(
        f"raw -> features -> drift_report -> batch_predictions: {result['seconds']:.1f} s, peak RSS {gib:.2f} GiB (target < 3 GiB: {'met' if gib < 3 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
