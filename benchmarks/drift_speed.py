"""Drift scoring: our implementation vs Evidently 0.7 DataDriftPreset, side by side.

    python benchmarks/drift_speed.py [--sizes 10000 100000 1000000] [--repeats 3]

"ours" is the per-report cost with the reference side precomputed once per model version (as
`drift_report` caches it); "profile" is that one-off precomputation. Same data for both (the contract's 9 numeric + 3 categorical feature columns; current data under the
`income_drop` scenario, a known drift in 4 columns). Each measurement runs in a fresh process, so
peak RSS is per measurement. Prints seconds (median), rows/s, peak RSS, the Evidently/ours ratio,
the time to sort the numeric columns of both sides once (the floor for exact Wasserstein/KS), and
whether every per-column verdict and the dataset drift share agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, measure, median, peak_rss_mib, table


def loan_contract():
    """The loan example's contract: the data these figures are measured on."""
    from mlops_assets.contracts import load_contract
    from mlops_assets.examples import EXAMPLES_DIR

    return load_contract(EXAMPLES_DIR / "loan_default.yaml", {"MLOPS_HOME": "/tmp"})


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    import pandas as pd

    from mlops_assets.examples.loan_default_synthetic import DriftScenario, SyntheticLoanGenerator

    reference_path, current_path = (
        folder / f"reference-{rows}.parquet",
        folder / f"current-{rows}.parquet",
    )
    if not reference_path.exists():
        start = date(2026, 1, 1)
        generator = SyntheticLoanGenerator(
            rows_per_day=max(rows // 4, 1),
            scenario=DriftScenario.INCOME_DROP,
            scenario_start=start + timedelta(days=10),
        )

        def frame(first_day: int) -> pd.DataFrame:
            days = [
                loan_contract().build_features(
                    generator.generate(start + timedelta(days=first_day + d))
                )
                for d in range(5)
            ]
            return pd.concat(days, ignore_index=True).head(rows)

        frame(0).to_parquet(reference_path)
        frame(10).to_parquet(current_path)
    return reference_path, current_path


def worker(kind: str, reference_path: str, current_path: str) -> None:
    import numpy as np
    import pandas as pd

    contract = loan_contract()
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    if kind in ("ours", "profile"):
        from mlops_assets.monitoring.drift import ReferenceProfile, dataset_drift

        dataset_drift(reference.head(100), current.head(100), contract)  # warm scipy imports
        started = time.perf_counter()
        profile = ReferenceProfile.of(reference, contract)  # once per model version, cached
        built = time.perf_counter()
        result = dataset_drift(profile, current, contract)
        seconds = time.perf_counter() - built if kind == "ours" else built - started
        verdicts = {c.column: c.drifted for c in result.columns}
        share = result.share
    elif kind == "evidently":
        from mlops_assets.monitoring.evidently_report import (
            evidently_column_scores,
            evidently_drift_share,
            run_evidently,
        )

        run_evidently(reference.head(100), current.head(100), contract)
        started = time.perf_counter()
        snapshot = run_evidently(reference, current, contract)
        seconds = time.perf_counter() - started
        verdicts = {}
        for column, (method, threshold, score) in evidently_column_scores(snapshot).items():
            p_value = "p_value" in method
            verdicts[column] = (
                bool(score <= threshold if "K-S" in method else score < threshold)
                if p_value
                else bool(score >= threshold)
            )
        share = evidently_drift_share(snapshot)
    else:  # the floor: sort each numeric column of both sides once
        numeric = contract.numeric_features
        arrays = [frame[c].to_numpy(dtype=float) for frame in (reference, current) for c in numeric]
        started = time.perf_counter()
        for array in arrays:
            np.sort(array)
        seconds = time.perf_counter() - started
        verdicts, share = {}, float("nan")
    print(
        json.dumps(
            {"seconds": seconds, "rss_mib": peak_rss_mib(), "verdicts": verdicts, "share": share}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "REFERENCE", "CURRENT"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats-at-1m", type=int, default=1)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            reference, current = make_data(size, Path(folder))
            runs = {}
            for kind in ("sort", "profile", "ours", "evidently"):
                repeats = (
                    args.evidently_repeats_at_1m
                    if kind == "evidently" and size >= 1_000_000
                    else args.repeats
                )
                runs[kind] = [
                    measure("drift_speed.py", kind, str(reference), str(current), timeout=1800)
                    for _ in range(repeats)
                ]
            seconds = {
                kind: median([r["seconds"] for r in results]) for kind, results in runs.items()
            }
            ours, evidently = runs["ours"][0], runs["evidently"][0]
            agree = ours["verdicts"] == evidently["verdicts"]
            rows.append(
                [
                    f"{size:,}",
                    f"{seconds['ours']:.3f}",
                    f"{size * 2 / seconds['ours']:,.0f}",
                    f"{max(r['rss_mib'] for r in runs['ours']):.0f}",
                    f"{seconds['evidently']:.2f}",
                    f"{max(r['rss_mib'] for r in runs['evidently']):.0f}",
                    f"{seconds['evidently'] / seconds['ours']:.1f}x",
                    f"{seconds['profile']:.3f}",
                    f"{seconds['sort']:.3f}",
                    f"{seconds['ours'] / seconds['sort']:.1f}x",
                    f"{'yes' if agree else 'NO'} ({sum(ours['verdicts'].values())} drifted)",
                    f"{ours['share']:.3f} / {evidently['share']:.3f}",
                ]
            )
            print(f"done {size:,} rows per side", file=sys.stderr, flush=True)
    print(
        f"Drift scoring, {machine()}; seconds are medians of {args.repeats} (Evidently at >=1M: {args.evidently_repeats_at_1m})"
    )
    print(
        table(
            [
                "rows/side",
                "ours s",
                "ours rows/s",
                "ours MiB",
                "evidently s",
                "evidently MiB",
                "evidently/ours",
                "profile s",
                "sort s",
                "ours/sort",
                "verdicts agree",
                "share ours/evid",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
