"""The shipped regression example on its real data (`examples/pc_prices.yaml`, a contract file
alone): PC prices (6,259 computers offered in the US 1993-1995, Ecdat's `Computers` table).

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
from mlops_assets.examples import EXAMPLES_DIR, pc_prices
from mlops_assets.serving.app import ServedModel
from mlops_assets_tests.conftest import (
    Platform,
    evaluate_sensor,
    latest_metadata,
    make_settings,
    performance_day,
    write_contract,
)

ROWS = 300
DAYS = [(date(2026, 1, 1) + timedelta(days=d)).isoformat() for d in range(11)]
DRIFT_FROM = 8  # index of the first drifted day (2026-01-09)
SHIFTED = date.fromisoformat(DAYS[DRIFT_FROM])

# the shipped example's contract, as a user's own file would say it
CONTRACT = yaml.safe_load((EXAMPLES_DIR / "pc_prices.yaml").read_text())


def write_days(folder: Path) -> None:
    """The shipped example's delivery: months 1-15 before the drift, months 25-35 from it on."""
    pc_prices.write_days(folder, date(2026, 1, 1), len(DAYS), ROWS, drift_start=SHIFTED)


@pytest.fixture
def prices(tmp_path: Path, instance) -> Platform:
    home = tmp_path / "home"
    write_days(home / "sources" / "pc_prices")
    contracts = write_contract(tmp_path, CONTRACT)  # this contract alone
    return Platform(home, instance, "pc_prices", MLOPS_CONTRACTS=str(contracts))


@pytest.mark.slow
def test_a_regression_contract_runs_the_loop_on_real_prices(prices):
    platform = prices
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
    registered = latest_metadata(platform, "registered_model_version", DAYS[6])
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
    print(
        f"champion RMSE {card['rmse']:.2f}, plain {plain_rmse:.2f}, mean {card['baseline_rmse']:.2f}"
    )
    assert card["rmse"] <= 1.1 * plain_rmse, (card["rmse"], plain_rmse)

    for day in DAYS[7:10]:
        assert platform.run("daily_lifecycle", day).success, day
    scored = platform.load("batch_predictions", DAYS[7])
    assert "decision" not in scored and scored["score"].between(500, 6000).all()
    performance = latest_metadata(platform, "model_performance", DAYS[7])
    assert performance["labelled_rows"] == ROWS and performance["rmse"] < card["baseline_rmse"]
    clean = latest_metadata(platform, "drift_report", DAYS[7])
    drifted = latest_metadata(platform, "drift_report", DAYS[9])
    assert clean["drift_share"] <= 0.2 < drifted["drift_share"], (clean, drifted)
    # the predictions and the labels of the shifted days moved too, reported apart from the share
    assert not clean["prediction_drifted"] and not clean["label_drifted"], clean
    assert drifted["prediction_drifted"] and drifted["label_drifted"], drifted
    report = platform.load("drift_report", DAYS[9]).set_index("role")
    assert report.loc["label", "column"] == platform.contract.label_column
    features = report.loc["feature"]
    assert drifted["drift_share"] == features["drifted"].mean() and len(features) == len(
        platform.contract.drift_columns
    )

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

    # the next day v1 scores in shadow beside v2, on the task's metric; v2 keeps the alias
    assert platform.run("daily_lifecycle", DAYS[10]).success
    shadowed = platform.load("batch_predictions", DAYS[10])
    assert set(shadowed["shadow_version"]) == {"1"} and shadowed["shadow_score"].notna().all()
    live = latest_metadata(platform, "model_performance", DAYS[10])
    assert live["model_version"] == "2" and live["shadow_version"] == "1", live
    assert live["rmse"] < live["shadow_rmse"], live  # v2 fits the shifted days better
    assert live["loss_std"] > 0 and live["champion_validation_loss_std"] > 0, live
    rollback = platform.defs.get_sensor_def(keys.rollback_sensor("pc_prices"))
    with dg.build_sensor_context(instance=platform.instance, definitions=platform.defs) as context:
        assert not rollback(context).run_requests


@pytest.fixture
def priced(tmp_path: Path, instance):
    """The pc_prices contract's definitions, for sensor ticks against `instance`."""
    from mlops_assets.definitions import build_definitions

    contracts = write_contract(tmp_path, CONTRACT)
    defs = build_definitions(make_settings(tmp_path / "home", MLOPS_CONTRACTS=str(contracts)))
    key = dg.AssetKey(["pc_prices", keys.MODEL_PERFORMANCE])

    def day(date_: str, rmse: float, version: str = "1", **numbers: float | str) -> None:
        recorded = {
            "model_version": version,
            "labelled_rows": 300,
            "rmse": rmse,
            "champion_validation_rmse": 190.0,
            "champion_validation_rows": 300,
            "champion_validation_loss_std": 60_000.0,
            "loss_std": 60_000.0,
            "mean_residual": 5.0,
            "residual_std": 190.0,
        }
        performance_day(instance, key, date_, **(recorded | numbers))

    return defs, day


def test_a_regression_is_retrained_when_its_served_rmse_grows_or_its_predictions_are_off(
    priced, instance
):
    """Served RMSE against validation RMSE, beyond the margin (a share of it) and the noise of
    both; and the mean residual against 0."""
    defs, day = priced
    sensor = keys.performance_sensor("pc_prices")
    for date_ in ("2026-01-11", "2026-01-12", "2026-01-13"):
        day(date_, 200.0)
    fine = evaluate_sensor(defs, sensor, instance)
    assert not fine.run_requests
    assert "served RMSE 200.0000 (validation 190.0000), mean residual +5.0000: within the" in (
        fine.skip_reason.skip_message
    )
    for date_ in ("2026-01-14", "2026-01-15", "2026-01-16"):
        day(date_, 320.0)
    [request] = evaluate_sensor(defs, sensor, instance, fine.cursor).run_requests
    assert request.tags["mlops/trigger"] == "performance"
    # noise: 3 x hypot(60000/sqrt(900)/(2 x 320), 60000/sqrt(300)/(2 x 190)) = 28.91 > 5% of 190
    assert (
        "served RMSE 320.0000 is above v1's validation RMSE 190.0000 by more than 28.91"
        in (request.tags["mlops/reason"])
    ), request.tags["mlops/reason"]

    for date_ in ("2026-01-17", "2026-01-18", "2026-01-19"):
        day(date_, 195.0, version="2", mean_residual=150.0)  # prices rose: labels above
    [request] = evaluate_sensor(defs, sensor, instance, fine.cursor).run_requests
    assert (
        "mean residual +150.0000 (labels above the predictions): off by more than 19.0000"
        in (request.tags["mlops/reason"])
    ), request.tags["mlops/reason"]


def test_a_regression_champion_worse_than_its_shadow_is_rolled_back(priced, instance):
    defs, day = priced
    sensor = keys.rollback_sensor("pc_prices")
    for date_ in ("2026-01-11", "2026-01-12", "2026-01-13"):
        day(date_, 205.0, version="2", shadow_version="1", shadow_rmse=200.0)
    close = evaluate_sensor(defs, sensor, instance)
    assert not close.run_requests and "within" in close.skip_reason.skip_message
    for date_ in ("2026-01-14", "2026-01-15", "2026-01-16"):
        day(date_, 300.0, version="3", shadow_version="2", shadow_rmse=200.0)
    [request] = evaluate_sensor(defs, sensor, instance, close.cursor).run_requests
    config = request.run_config["ops"]["pc_prices__move_champion_back"]["config"]
    assert (config["to_version"], config["if_champion_is"]) == ("2", "3")
    assert config["reason"].startswith(
        "v3's labelled live RMSE 300.0000 vs 200.0000 of v2 (the champion it replaced"
    )


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
