"""docs/bring-your-own-data.md, followed literally: its contract and commands on a new dataset.

The dataset is made here (credit-like: a text label, missing incomes and homes, no ids, no
timestamps, one derived feature); the contract is the page's own YAML block, so the page and the
platform cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGE = REPO / "docs" / "bring-your-own-data.md"
DAYS = [f"2026-01-{day:02d}" for day in range(1, 9)]
pytestmark = pytest.mark.slow


def page_block(language: str, first_line: str) -> str:
    """The code block of the page that starts with `first_line`."""
    pattern = rf"```{language}\n({re.escape(first_line)}\n.*?)```"
    return re.search(pattern, PAGE.read_text(), re.S).group(1)


def credit_rows(day: int, rows: int = 300) -> pd.DataFrame:
    """A day of credit-like applications whose bad outcomes depend on the features."""
    rng = np.random.default_rng([11, day])
    income = rng.lognormal(4.8, 0.5, rows).round(0)
    amount = rng.lognormal(6.9, 0.4, rows).round(0)
    seniority = rng.integers(0, 40, rows)
    age = rng.integers(18, 75, rows)
    home = rng.choice(
        ["rent", "owner", "priv", "parents", "other"], rows, p=[0.3, 0.4, 0.1, 0.15, 0.05]
    )
    logit = -1.2 + 1.5 * (amount / income / 10 - 0.2) - 0.06 * seniority + 0.4 * (home == "rent")
    bad = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "Status": np.where(bad, "bad", "good"),
            "Seniority": seniority,
            "Home": home,
            "Age": age,
            "Income": income,
            "Amount": amount,
            "Marital": rng.choice(["single", "married"], rows),  # not in the contract: ignored
        }
    )
    frame.loc[rng.random(rows) < 0.08, "Income"] = np.nan  # missing incomes
    frame.loc[rng.random(rows) < 0.02, "Home"] = np.nan
    return frame


def test_the_page_takes_a_folder_of_csv_files_to_a_champion_and_a_drift_report(
    tmp_path: Path, monkeypatch
):
    work = tmp_path / "project"
    (work / "contracts").mkdir(parents=True)
    landing = work / "contracts" / "landing" / "credit"  # the contract's default, relative to it
    landing.mkdir(parents=True)
    for index, day in enumerate(DAYS):
        credit_rows(index).to_csv(landing / f"{day}.csv", index=False)
    (work / "contracts" / "credit.yaml").write_text(page_block("yaml", "# contracts/credit.yaml"))
    module = page_block(
        "python", "# credit_features.py, next to the contracts or in your own package"
    )
    (work / "contracts" / "credit_features.py").write_text(module)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # dagster.yaml reads it, here too
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))},
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MLOPS_CONTRACTS": str(work / "contracts"),
        "PYTHONPATH": str(work / "contracts"),
    }

    def dagster(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "dagster"), *args], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result

    def job(name: str, day: str) -> None:
        dagster("job", "execute", "-m", "mlops_assets", "-j", name, "--tags",
                json.dumps({"dagster/partition": day}))  # fmt: skip

    dagster("definitions", "validate", "-m", "mlops_assets")  # step 4
    for day in DAYS[:7]:  # step 5
        job("credit_ingest", day)
    job("credit_train_and_register", DAYS[6])
    job("credit_daily_lifecycle", DAYS[7])  # step 6

    report = home / "reports" / "credit" / "drift_report" / f"{DAYS[7]}.html"
    assert report.exists()
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:

        def latest(stage: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey(["credit", stage]))
            return {k: v.value for k, v in event.asset_materialization.metadata.items()}

        raw = latest("raw")
        assert raw["ignored_columns"] == "Marital" and raw["rejected_rows"] == 0
        registered = latest("registered_model_version")
        assert registered["champion"] and registered["version"] == "1"
        drift = latest("drift_report")
        assert drift["reference_version"] == "1" and 0 <= drift["drift_share"] <= 1
        assert latest("model_performance")["labelled_rows"] > 250
    predictions = pd.read_parquet(
        home / "assets" / "credit" / "batch_predictions" / f"{DAYS[7]}.parquet"
    )
    assert predictions["row_id"].iloc[0] == f"{DAYS[7]}-000000"  # generated ids
    assert set(predictions["decision"]) <= {"positive", "negative"}

    # a mistake in the contract fails the load with the file and the field, as the page says
    broken = (work / "contracts" / "credit.yaml").read_text().replace("column: Home", "column: Age")
    (work / "contracts" / "credit.yaml").write_text(broken)
    failed = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-m", "mlops_assets"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0
    assert "credit.yaml: gates.bias.column: 'Age' is not a categorical feature" in (
        failed.stdout + failed.stderr
    )
