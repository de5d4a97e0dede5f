"""The shipped multiclass example on its real data (`examples/cracker_brands.yaml`, a contract
file alone): which of four cracker brands a household bought (3,292 purchases in a US panel,
Ecdat's `Cracker` table), from the brands' prices, in-store displays and newspaper features.

Days of ordinary prices train the first champion; the last days are purchases when Nabisco cut its
price to 99 cents or less, a real shift (Nabisco's price down 1.7 standard deviations, its
competitors' with it, and its share of purchases up from 51% to 70%). The loop runs through the
platform's jobs: quarantined labels, a champion gated on log loss against the class shares,
per-class probabilities in batch and online, drift reports, the drift sensor's request, and a
retraining gated on the paired bootstrap of log loss.
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
from mlops_assets.examples import EXAMPLES_DIR, cracker_brands
from mlops_assets.serving.app import ServedModel
from mlops_assets_tests.conftest import (
    Platform,
    evaluate_sensor,
    latest_metadata,
    make_settings,
    performance_day,
    write_contract,
)

ROWS = 200
DAYS = [(date(2026, 1, 1) + timedelta(days=d)).isoformat() for d in range(11)]
DRIFT_FROM = 8  # index of the first day of Nabisco's price cut (2026-01-09)
SHIFTED = date.fromisoformat(DAYS[DRIFT_FROM])
BRANDS = list(cracker_brands.BRANDS)

# the shipped example's contract, as a user's own file would say it
CONTRACT = yaml.safe_load((EXAMPLES_DIR / "cracker_brands.yaml").read_text())


def write_days(folder: Path) -> None:
    """The shipped example's delivery: ordinary prices before the drift, Nabisco's cut from it on."""
    cracker_brands.write_days(folder, date(2026, 1, 1), len(DAYS), ROWS, drift_start=SHIFTED)


@pytest.fixture
def brands(tmp_path: Path, instance) -> Platform:
    home = tmp_path / "home"
    write_days(home / "sources" / "cracker_brands")
    contracts = write_contract(tmp_path, CONTRACT)  # this contract alone
    return Platform(home, instance, "cracker_brands", MLOPS_CONTRACTS=str(contracts))


@pytest.mark.slow
def test_a_multiclass_contract_runs_the_loop_on_real_purchases(brands):
    platform = brands
    folder = Path(platform.settings.home) / "sources" / "cracker_brands"
    first = pd.read_csv(folder / f"{DAYS[0]}.csv", dtype={"choice": object})
    first.loc[:1, "choice"] = ["keebler", "Nabisco"]  # a misspelt brand, another case
    first.to_csv(folder / f"{DAYS[0]}.csv", index=False)

    for day in DAYS[:7]:
        assert platform.run("ingest", day).success, day
    rejected = platform.load("rejected", DAYS[0])
    assert sorted(rejected["choice"]) == ["Nabisco", "keebler"]
    assert (
        rejected["rejection_reason"]
        .str.contains(
            r"choice: .* is not a label value \(one of the classes nabisco, private, sunshine, "
            r"kleebler\)"
        )
        .all()
    ), rejected["rejection_reason"].tolist()
    features = platform.load("features", DAYS[0])
    assert sorted(features["choice"].unique()) == [0, 1, 2, 3]  # stored as the class's index

    trained = platform.run("train_and_register", DAYS[6])
    assert trained.success
    card = platform.load("trained_model", DAYS[6]).iloc[0]
    assert card["log_loss"] < 0.85 * card["baseline_log_loss"], card  # beats the class shares
    assert 0.4 < card["macro_f1"] <= 1 and 0.7 < card["roc_auc_ovr"] <= 1, card
    registered = latest_metadata(platform, "registered_model_version", DAYS[6])
    assert registered["champion"] and registered["version"] == "1"
    assert "validation log loss" in registered["reason"]
    run = platform.mlflow.client().get_run(platform.registry.require_champion().run_id)
    assert {f"validation_recall_{brand}" for brand in BRANDS} <= set(run.data.metrics)

    # the champion against a plain scikit-learn model trained on the same days
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    training_set = platform.load("training_set", DAYS[6])
    train, validation = (training_set[training_set["split"] == s] for s in ("train", "validation"))
    columns = platform.contract.feature_columns
    plain = HistGradientBoostingClassifier(random_state=7, early_stopping=False).fit(
        train[columns].astype(float), train["choice"].astype(int)
    )
    plain_loss = log_loss(
        validation["choice"].astype(int),
        plain.predict_proba(validation[columns].astype(float)),
        labels=plain.classes_,
    )
    print(
        f"champion log loss {card['log_loss']:.4f}, plain {plain_loss:.4f}, "
        f"shares {card['baseline_log_loss']:.4f}"
    )
    assert card["log_loss"] <= 1.1 * plain_loss, (card["log_loss"], plain_loss)

    for day in DAYS[7:10]:
        assert platform.run("daily_lifecycle", day).success, day
    scored = platform.load("batch_predictions", DAYS[7])
    probabilities = scored[[f"score_{brand}" for brand in BRANDS]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1)
    assert (scored["decision"] == np.asarray(BRANDS)[probabilities.argmax(axis=1)]).all()
    assert np.allclose(scored["score"], probabilities.max(axis=1))
    performance = latest_metadata(platform, "model_performance", DAYS[7])
    assert performance["labelled_rows"] == ROWS
    assert performance["log_loss"] < card["baseline_log_loss"], performance
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

    # online: the same per-class probabilities as the batch scores, by class name
    registry = platform.registry
    champion, model = registry.champion_and_model()
    served = ServedModel(platform.contract, model, str(champion.version), "champion")
    features = platform.load("features", DAYS[7])
    online = served.predict(features.head(5))
    assert [list(row) for row in online] == [BRANDS] * 5
    assert np.allclose([[row[brand] for brand in BRANDS] for row in online], probabilities[:5])

    # the drift sensor asks for a retraining on the drifted days; its challenger is gated on the
    # paired bootstrap of log loss against v1
    sensor = platform.defs.get_sensor_def(keys.retraining_sensor("cracker_brands"))
    with dg.build_sensor_context(instance=platform.instance, definitions=platform.defs) as context:
        requests = sensor(context).run_requests
    assert [(r.partition_key, r.tags[keys.TRAINING_SINCE_TAG]) for r in requests] == [
        (DAYS[9], DAYS[DRIFT_FROM])
    ]
    retrained = platform.run("train_and_register", DAYS[9], requests[0].run_config)
    checks = {e.check_name: e for e in retrained.get_asset_check_evaluations()}
    comparison = {
        k: v.value for k, v in checks["challenger_not_worse_than_champion"].metadata.items()
    }
    assert (
        comparison["summary"].startswith("challenger log loss")
        and "champion v1" in (comparison["summary"])
    )
    # v1 never saw Nabisco's price cut: far worse on these rows, so v2 takes over
    assert 0 < comparison["change_interval_low"] < comparison["change_interval_high"]
    bias = {k: v.value for k, v in checks["bias_gap_within_limit"].metadata.items()}
    assert bias["metric"] == "macro_recall" and set(bias["by_group"]) == {"0", "1"}, bias
    assert retrained.success and all(e.passed for e in checks.values()), checks
    assert str(registry.require_champion().version) == "2"

    # the next day v1 scores in shadow beside v2, on the task's metric; v2 keeps the alias
    assert platform.run("daily_lifecycle", DAYS[10]).success
    shadowed = platform.load("batch_predictions", DAYS[10])
    assert set(shadowed["shadow_version"]) == {"1"} and shadowed["shadow_score"].notna().all()
    live = latest_metadata(platform, "model_performance", DAYS[10])
    assert live["model_version"] == "2" and live["shadow_version"] == "1", live
    assert live["log_loss"] < live["shadow_log_loss"], live  # v2 fits the shifted days better
    assert live["loss_std"] > 0 and live["champion_validation_loss_std"] > 0, live
    rollback = platform.defs.get_sensor_def(keys.rollback_sensor("cracker_brands"))
    with dg.build_sensor_context(instance=platform.instance, definitions=platform.defs) as context:
        assert not rollback(context).run_requests


SHARES = {"nabisco": 0.54, "private": 0.32, "sunshine": 0.07, "kleebler": 0.07}


@pytest.fixture
def judged(tmp_path: Path, instance):
    """The cracker_brands contract's definitions, for sensor ticks against `instance`."""
    from mlops_assets.definitions import build_definitions

    contracts = write_contract(tmp_path, CONTRACT)
    defs = build_definitions(make_settings(tmp_path / "home", MLOPS_CONTRACTS=str(contracts)))
    key = dg.AssetKey(["cracker_brands", keys.MODEL_PERFORMANCE])

    def day(date_: str, loss: float, observed: dict[str, float] = SHARES, **numbers) -> None:
        recorded = {
            "model_version": "1",
            "labelled_rows": 200,
            "log_loss": loss,
            "champion_validation_log_loss": 0.76,
            "champion_validation_rows": 280,
            "champion_validation_loss_std": 0.9,
            "loss_std": 0.9,
            **{f"observed_share_{brand}": share for brand, share in observed.items()},
            **{f"mean_probability_{brand}": share for brand, share in SHARES.items()},
        }
        performance_day(instance, key, date_, **(recorded | numbers))

    return defs, day


def test_a_multiclass_model_is_retrained_when_its_log_loss_grows_or_a_class_share_moves(
    judged, instance
):
    defs, day = judged
    sensor = keys.performance_sensor("cracker_brands")
    for date_ in ("2026-01-11", "2026-01-12", "2026-01-13"):
        day(date_, 0.80)
    fine = evaluate_sensor(defs, sensor, instance)
    assert not fine.run_requests
    assert "served log loss 0.8000 (validation 0.7600), class shares within 0.0000" in (
        fine.skip_reason.skip_message
    )
    for date_ in ("2026-01-14", "2026-01-15", "2026-01-16"):
        day(date_, 1.10)
    [request] = evaluate_sensor(defs, sensor, instance, fine.cursor).run_requests
    # noise: 3 x hypot(0.9 / sqrt(600), 0.9 / sqrt(280)) = 0.1954 > 5% of 0.76
    assert (
        "served log loss 1.1000 is above v1's validation log loss 0.7600 by more than 0.1954"
        in (request.tags["mlops/reason"])
    ), request.tags["mlops/reason"]

    # the shares moved without the log loss showing it yet: Nabisco bought far more often
    moved = {"nabisco": 0.70, "private": 0.18, "sunshine": 0.06, "kleebler": 0.06}
    for date_ in ("2026-01-17", "2026-01-18", "2026-01-19"):
        day(date_, 0.80, moved, model_version="2")
    [request] = evaluate_sensor(defs, sensor, instance, fine.cursor).run_requests
    assert (
        "observed share of nabisco 0.7000 vs its mean predicted probability 0.5400: off by more "
        "than 0.0610" in request.tags["mlops/reason"]
    ), request.tags["mlops/reason"]


def test_a_multiclass_champion_worse_than_its_shadow_is_rolled_back(judged, instance):
    defs, day = judged
    sensor = keys.rollback_sensor("cracker_brands")
    for date_ in ("2026-01-11", "2026-01-12", "2026-01-13"):
        day(date_, 1.20, model_version="2", shadow_version="1", shadow_log_loss=0.78)
    [request] = evaluate_sensor(defs, sensor, instance).run_requests
    config = request.run_config["ops"]["cracker_brands__move_champion_back"]["config"]
    assert (config["to_version"], config["if_champion_is"]) == ("1", "2")
    assert config["reason"].startswith(
        "v2's labelled live log loss 1.2000 vs 0.7800 of v1 (the champion it replaced"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["label"].update(classes=["nabisco", "private"]),
            "label.classes: a multiclass label lists 3 to 100 delivered values, one per class; "
            "got 2 (a label of two classes is task: binary)",
        ),
        (
            lambda d: d["label"].update(classes=["nabisco", "private", "nabisco"]),
            "label.classes: ['nabisco'] listed more than once",
        ),
        (
            lambda d: d["label"].update(positive=["nabisco"]),
            "label.positive: not a field of a multiclass label, which lists its classes",
        ),
        (
            lambda d: d["label"].update(range=[0, 1]),
            "label.range: not a field of a multiclass label",
        ),
        (
            lambda d: d["model"].update(estimator="linear_regression"),
            "model.estimator: linear_regression is not a multiclass estimator; expected one of "
            "hist_gradient_boosting, logistic_regression, random_forest, or module:function",
        ),
        (
            lambda d: d["gates"]["bias"].update(metric="recall"),
            "gates.bias.metric: 'recall' is not a multiclass metric; expected one of macro_recall",
        ),
    ],
)
def test_a_multiclass_contract_that_does_not_fit_its_task_fails_the_load(tmp_path, change, message):
    from mlops_assets.contracts import ContractError, load_contracts

    document = yaml.safe_load(yaml.safe_dump(CONTRACT))
    change(document)
    (tmp_path / "cracker_brands.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ContractError) as error:
        load_contracts(tmp_path, {"MLOPS_HOME": str(tmp_path)})
    assert message in str(error.value)
