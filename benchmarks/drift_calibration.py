"""Drift calibration: false alarms on undrifted days, and days to detect each drift scenario.

    python benchmarks/drift_calibration.py [--days 200] [--sizes 100 300 1000 2000]

On the loan example's synthetic source (a 30-day reference, then `--days` undrifted days, each of
about N rows), the share of days whose drift share exceeds 0.2, with noise-aware verdicts (the
default) and with Evidently's fixed thresholds alone; then, for each drift scenario starting on
day 31, the first drifted day whose report crosses 0.2. Both verdicts come from the same drift
results (`share` and `evidently_share`), so the figures differ only by the verdict rule.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table

START = date(2026, 1, 1)
REFERENCE_DAYS = 30
THRESHOLD = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=200, help="undrifted days per size")
    parser.add_argument("--detection-days", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 2000])
    args = parser.parse_args()

    import pandas as pd

    from mlops_assets.contracts import load_contract
    from mlops_assets.examples import EXAMPLES_DIR
    from mlops_assets.examples.loan_default_synthetic import DriftScenario, SyntheticLoanGenerator
    from mlops_assets.monitoring.drift import NoiseFloors, ReferenceProfile, dataset_drift

    contract = load_contract(EXAMPLES_DIR / "loan_default.yaml", {"MLOPS_HOME": "/tmp"})

    def features(generator: SyntheticLoanGenerator, offset: int) -> pd.DataFrame:
        return contract.build_features(generator.generate(START + timedelta(days=offset)))

    alarms, detection = [], []
    started = time.perf_counter()
    for size in args.sizes:
        undrifted = SyntheticLoanGenerator(rows_per_day=size)
        reference = pd.concat([features(undrifted, d) for d in range(REFERENCE_DAYS)])
        profile = ReferenceProfile.of(reference, contract)
        noise = NoiseFloors(profile, frozenset(contract.numeric_features))
        results = [
            dataset_drift(profile, features(undrifted, REFERENCE_DAYS + day), contract, noise)
            for day in range(args.days)
        ]
        alarms.append(
            [
                size,
                args.days,
                f"{sum(r.share > THRESHOLD for r in results) / args.days:.1%}",
                f"{sum(r.evidently_share > THRESHOLD for r in results) / args.days:.1%}",
                f"{sum(r.share for r in results) / args.days:.3f}",
                f"{sum(r.evidently_share for r in results) / args.days:.3f}",
            ]
        )
        for scenario in DriftScenario:
            if scenario is DriftScenario.NONE:
                continue
            drifting = SyntheticLoanGenerator(
                rows_per_day=size,
                scenario=scenario,
                scenario_start=START + timedelta(days=REFERENCE_DAYS),
            )
            drifted = [
                dataset_drift(profile, features(drifting, REFERENCE_DAYS + day), contract, noise)
                for day in range(args.detection_days)
            ]
            detection.append(
                [
                    size,
                    scenario.value,
                    _first(drifted, "share", args.detection_days),
                    _first(drifted, "evidently_share", args.detection_days),
                    f"{sum(r.share for r in drifted) / len(drifted):.3f}",
                ]
            )
    print(f"Drift calibration, loan example, {machine()}, {time.perf_counter() - started:.0f} s")
    print(f"\nFalse alarms: undrifted days whose drift share exceeds {THRESHOLD} (target <= 1%)")
    print(
        table(
            [
                "rows/day",
                "days",
                "noise_aware",
                "evidently",
                "mean share (noise_aware)",
                "mean share (evidently)",
            ],
            alarms,
        )
    )
    print(
        f"\nDays to detection (first drifted day with share > {THRESHOLD}; '-' within the window)"
    )
    print(
        table(
            ["rows/day", "scenario", "noise_aware", "evidently", "mean share (noise_aware)"],
            detection,
        )
    )


def _first(results: list, attribute: str, window: int) -> str:
    for day, result in enumerate(results, start=1):
        if getattr(result, attribute) > THRESHOLD:
            return str(day)
    return f"- (>{window})"


if __name__ == "__main__":
    main()
