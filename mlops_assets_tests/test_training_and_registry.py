"""Training, gates, registration, promotion and rollback through Dagster, on a real local MLflow
store, for every shipped contract."""

import importlib.metadata
import socket
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator
from mlops_assets.training.assets import MODEL_PACKAGES
from mlops_assets_tests.conftest import Platform, edited_contracts, platform_with_history

DAY = "2026-01-08"
GATES = {"quality_floor", "challenger_not_worse_than_champion", "bias_gap_within_limit"}
TRAIN = "train_and_register"
ROLLBACK = "rollback_champion"


def bad_model(document: dict) -> None:
    document["model"]["params"] = {"max_iter": 1, "max_depth": 1, "learning_rate": 0.01}


LIGHTGBM = "mlops_assets_tests.estimators:lightgbm_classifier"
LIGHTGBM_TYPES = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
]


def lightgbm_model(trusted_types: list[str]):
    def change(document: dict) -> None:
        document["model"].update(
            estimator=LIGHTGBM,
            params={"n_estimators": 120, "learning_rate": 0.05, "num_leaves": 15},
            trusted_types=trusted_types,
        )

    return change


def rollback_config(platform: Platform, **config) -> dict:
    return {"ops": {f"{platform.name}__move_champion_back": {"config": config}}}


def checks(result) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def materialized(result) -> set[str]:
    return {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}


def card(platform: Platform, asset: str) -> pd.Series:
    return platform.load(asset, DAY).iloc[0]


def test_first_model_is_tracked_gated_registered_and_promoted(platform: Platform):
    contract = platform.contract
    result = platform.run(TRAIN, DAY)
    assert result.success
    assert checks(result) == dict.fromkeys(GATES, True)
    model = card(platform, "trained_model")

    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    run = client.get_run(model["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster/run_id"] == result.run_id
    assert run.data.tags["dagster/partition"] == DAY
    assert run.data.tags["mlops/contract"] == platform.name
    assert run.data.tags["training_window"] == f"2026-01-01 .. {DAY}"
    assert run.data.params["estimator"] == contract.spec.model.estimator
    for name, value in contract.spec.model.params.items():
        assert run.data.params[name] == str(value)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == contract.spec.model.experiment_name
    task = contract.task  # the metrics are the task's: ROC AUC, RMSE, log loss...
    for metric in task.card_metrics:
        assert f"validation_{metric}" in run.data.metrics
    gate_metric = task.metric.name
    assert run.data.metrics[f"validation_{gate_metric}"] == pytest.approx(model[gate_metric])
    info = mlflow.models.get_model_info(model["model_uri"])
    assert info.signature.inputs.input_names() == contract.feature_columns
    assert info.saved_input_example_info is not None
    requirements = (
        Path(mlflow.artifacts.download_artifacts(model["model_uri"])) / "requirements.txt"
    )
    pinned = dict(line.split("==") for line in requirements.read_text().split())
    assert pinned == {name: importlib.metadata.version(name) for name in MODEL_PACKAGES}
    reference = pd.read_parquet(mlflow.artifacts.download_artifacts(model["reference_uri"]))
    assert list(reference.columns) == [
        contract.event_time_column,
        *contract.feature_columns,
        contract.label_column,  # for the drift report's label row
    ]
    assert len(reference) == model["train_rows"]
    assert (
        str(platform.settings.home / "mlflow" / "artifacts") in run.info.artifact_uri
    )  # not ./mlruns

    assert model[task.floor_metric.name] >= getattr(contract.spec.gates, task.floor_setting)
    version = card(platform, "registered_model_version")
    assert (version["version"], version["champion"], version["previous_champion"]) == (
        "1",
        True,
        "none",
    )
    champion = platform.registry.champion()
    assert str(champion.version) == "1" and champion.run_id == model["run_id"]
    assert champion.tags["gates_passed"] == "true"
    assert champion.tags["champion/dagster_run_id"] == result.run_id
    history = platform.registry.alias_history()
    assert [(move["previous_version"], move["new_version"]) for move in history] == [(None, "1")]
    event = platform.instance.get_latest_materialization_event(
        platform.key("trained_model")
    ).asset_materialization
    assert event.metadata["mlflow_run"].value.endswith(f"/runs/{model['run_id']}")


def test_the_loan_model_is_near_the_best_any_model_could_do(loan: Platform):
    """On synthetic data the truth is known: the generator's own default probability."""
    assert loan.run(TRAIN, DAY).success
    model = card(loan, "trained_model")
    training_set = loan.load("training_set", DAY)
    validation = training_set[training_set["split"] == "validation"]
    label = loan.contract.label_column
    oracle = roc_auc_score(
        validation[label].astype(int),
        SyntheticLoanGenerator().true_default_probability(validation),
    )
    print(f"validation ROC AUC {model['roc_auc']:.4f}, oracle {oracle:.4f}")
    assert model["roc_auc"] >= oracle - 0.02


def test_retraining_is_reproducible_and_rollback_restores_the_previous_champion(platform: Platform):
    assert platform.run(TRAIN, DAY).success
    first = card(platform, "trained_model")
    second_run = platform.run(TRAIN, DAY)
    assert second_run.success
    second = card(platform, "trained_model")
    assert second["run_id"] != first["run_id"]
    for metric in platform.contract.task.card_metrics:
        assert second[metric] == first[metric]  # same data and config, same model
    assert str(platform.registry.champion().version) == "2"

    rollback = platform.run(ROLLBACK, run_config=rollback_config(platform, reason="bad outputs"))
    assert rollback.success
    assert str(platform.registry.champion().version) == "1"
    last = platform.registry.alias_history()[-1]
    assert (last["previous_version"], last["new_version"]) == ("2", "1")
    assert last["reason"] == "rollback: bad outputs" and last["dagster_run_id"] == rollback.run_id
    observation = next(
        event for event in rollback.all_events if event.event_type_value == "ASSET_OBSERVATION"
    )
    assert observation.event_specific_data.asset_observation.metadata["champion"].value == "1"

    to_two = rollback_config(platform, to_version="2", reason="fixed")
    assert platform.run(ROLLBACK, run_config=to_two).success
    assert str(platform.registry.champion().version) == "2"

    missing = rollback_config(platform, to_version="99", reason="typo")
    refused = platform.run(ROLLBACK, run_config=missing)
    assert not refused.success
    failure = next(event for event in refused.all_events if event.is_step_failure)
    assert failure.step_failure_data.user_failure_data.description == (
        f"Model version 99 of '{platform.contract.model_name}' does not exist; "
        "existing versions: 1, 2"
    )
    assert str(platform.registry.champion().version) == "2"


def test_a_deliberately_bad_model_is_not_promoted(
    tmp_path, feature_history, instance, contract_name
):
    platform = platform_with_history(tmp_path / "home", feature_history, instance, contract_name)
    assert platform.run(TRAIN, DAY).success
    folder = edited_contracts(tmp_path / "contracts", contract_name, bad_model)
    bad_platform = Platform(tmp_path / "home", instance, contract_name, MLOPS_CONTRACTS=str(folder))
    bad = bad_platform.run(TRAIN, DAY)
    assert not bad.success
    gates = checks(bad)
    assert gates["quality_floor"] is False
    assert gates["challenger_not_worse_than_champion"] is False
    assert "registered_model_version" not in materialized(
        bad
    )  # the blocking gates stop the registry
    assert str(platform.registry.champion().version) == "1"

    # registering it on purpose later keeps it out of the champion slot, tagged with why
    registered = bad_platform.materialize(["registered_model_version"], DAY)
    assert registered.success
    version = card(platform, "registered_model_version")
    assert (version["version"], version["champion"]) == ("2", False)
    tags = platform.registry.client().get_model_version(platform.contract.model_name, "2").tags
    assert tags["gates_passed"] == "false"
    task = platform.contract.task
    floor = getattr(platform.contract.spec.gates, task.floor_setting)
    assert f"validation {task.floor_metric.title}" in tags["gate_failures"]
    assert f"< floor {floor:.4f}" in tags["gate_failures"]
    assert str(platform.registry.champion().version) == "1"


def test_bias_gate_blocks_promotion(tmp_path, feature_history, instance, contract_name):
    platform = platform_with_history(
        tmp_path / "home", feature_history, instance, contract_name, MLOPS_GATE_MAX_BIAS_GAP="0.0"
    )
    result = platform.run(TRAIN, DAY)
    assert not result.success
    assert checks(result) == {
        "quality_floor": True,
        "challenger_not_worse_than_champion": True,
        "bias_gap_within_limit": False,
    }
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "bias_gap_within_limit"
    )
    assert evaluation.metadata["gap"].value > 0.0
    bias = platform.contract.spec.gates.bias
    groups = set(evaluation.metadata["by_group"].value)
    assert len(groups) >= 2 and groups <= set(platform.contract.column(bias.column).levels)
    assert platform.registry.champion() is None


@pytest.mark.slow  # the real retry policy: four restarts over ~30 s of backoff
def test_unreachable_tracking_server_fails_clearly_and_is_retried(
    tmp_path, feature_history, instance
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    platform = platform_with_history(
        tmp_path / "home", feature_history, instance, "loan_default", MLFLOW_TRACKING_URI=uri
    )
    result = platform.run(TRAIN, DAY)
    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures and f"MLflow tracking server {uri} is unreachable" in str(
        failures[-1].step_failure_data.error
    )
    restarts = [event for event in result.all_events if event.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 4
    assert "registered_model_version" not in materialized(result)


def test_ids_delivered_again_on_a_later_day_train_with_their_latest_delivery(
    loan: Platform, tmp_path
):
    """A record re-delivered days later (a correction, a late label) no longer blocks training."""
    import dagster as dg

    from mlops_assets.ingestion.sources import FileSource

    contract = loan.contract
    earlier = loan.load("raw", "2026-01-06").head(50)
    corrected = earlier.assign(
        **{
            contract.event_time_column: pd.Timestamp(DAY) + pd.Timedelta(hours=1),
            contract.label_column: 1 - earlier[contract.label_column],
        }
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    pd.concat([loan.load("raw", DAY), corrected]).to_parquet(landing / f"{DAY}.parquet")
    ingested = dg.materialize(
        loan.defs.assets,
        selection=[loan.key("raw"), loan.key("rejected"), loan.key("features")],
        resources={
            **loan.defs.resources,
            "loan_default_source": FileSource(base_url=str(landing), file_format="parquet"),
        },
        partition_key=DAY,
        instance=loan.instance,
    )
    assert ingested.success

    result = loan.run(TRAIN, DAY)
    assert result.success, "duplicate ids across days must not block training"
    metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == loan.key("training_set")
    )
    assert metadata["redelivered_ids"].value == 50
    assert metadata["redelivered_ids_by_first_day"].value == {"2026-01-06": 50}
    training = loan.load("training_set", DAY)
    assert training[contract.id_column].is_unique
    kept = training.set_index(contract.id_column).loc[earlier[contract.id_column]]
    assert (kept[contract.event_time_column].dt.date.astype(str) == DAY).all()
    assert (
        kept[contract.label_column].to_numpy() == corrected[contract.label_column].to_numpy()
    ).all()


def test_a_champion_whose_files_were_altered_or_not_skops_is_never_loaded(loan: Platform):
    """Whoever can write to the artifact store cannot make steps load (and run) other code."""
    from urllib.parse import urlparse

    import yaml

    assert loan.run(TRAIN, DAY).success
    client = MlflowClient(loan.settings.mlflow_tracking_uri)
    name = loan.contract.model_name
    folder = Path(urlparse(client.get_model_version_download_uri(name, "1")).path)
    model_file = next(folder.glob("*.skops"))
    original = model_file.read_bytes()

    model_file.write_bytes(original + b"\0")
    tampered = loan.materialize(["batch_predictions"], DAY)
    assert not tampered.success
    failure = next(event for event in tampered.all_events if event.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "do not match the model_sha256 recorded when it was trained" in message
    assert not [e for e in tampered.all_events if e.event_type_value == "STEP_RESTARTED"]

    model_file.write_bytes(original)
    mlmodel = folder / "MLmodel"
    document = yaml.safe_load(mlmodel.read_text())
    document["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    mlmodel.write_text(yaml.safe_dump(document))
    from mlops_assets.registry.mlflow import model_digest

    client.set_model_version_tag(name, "1", "model_sha256", model_digest(folder))  # both rewritten
    pickled = loan.materialize(["batch_predictions"], DAY)
    failure = next(event for event in pickled.all_events if event.is_step_failure)
    assert "is stored as cloudpickle, not skops" in (
        failure.step_failure_data.user_failure_data.description
    )


def test_an_unreadable_drift_cache_is_rebuilt_not_fatal(loan: Platform):
    assert loan.run(TRAIN, DAY).success
    assert loan.materialize(["drift_report"], DAY).success
    caches = sorted((loan.settings.home / "cache" / "references").glob("*.profile.pickle"))
    assert caches
    caches[0].write_bytes(caches[0].read_bytes()[:20])  # truncated, as by a full disk or a crash
    floors = caches[0].with_name(caches[0].name.replace(".profile.pickle", ".noise.json"))
    floors.write_text('{"age": {"3')  # the noise floors' cache, cut short too
    again = loan.materialize(["drift_report"], DAY)
    assert again.success
    messages = [entry.user_message for entry in loan.instance.all_logs(again.run_id)]
    assert any("Rebuilding the unreadable reference profile cache" in m for m in messages)
    assert len(caches[0].read_bytes()) > 20  # rebuilt


def test_a_teams_own_lightgbm_factory_trains_is_gated_registered_and_scores(
    tmp_path, feature_history, instance
):
    """`model.estimator: module:function` with its params passed through; the saved model holds
    only the types the contract trusts, and is refused once the contract stops trusting them."""
    import lightgbm

    from mlops_assets.registry.mlflow import ModelIntegrityError

    home = tmp_path / "home"
    folder = edited_contracts(
        tmp_path / "contracts", "loan_default", lightgbm_model(LIGHTGBM_TYPES)
    )
    platform = platform_with_history(
        home, feature_history, instance, "loan_default", MLOPS_CONTRACTS=str(folder)
    )
    result = platform.run(TRAIN, DAY)
    assert result.success
    assert checks(result) == dict.fromkeys(GATES, True)
    model = card(platform, "trained_model")
    assert model["roc_auc"] >= platform.contract.spec.gates.min_roc_auc
    run = MlflowClient(platform.settings.mlflow_tracking_uri).get_run(model["run_id"])
    assert run.data.params["estimator"] == LIGHTGBM
    assert (run.data.params["n_estimators"], run.data.params["num_leaves"]) == ("120", "15")
    requirements = (
        Path(mlflow.artifacts.download_artifacts(model["model_uri"])) / "requirements.txt"
    )
    assert f"lightgbm=={lightgbm.__version__}" in requirements.read_text().split()

    champion, pipeline = platform.registry.champion_and_model()
    assert str(champion.version) == "1"
    assert isinstance(pipeline[-1], lightgbm.LGBMClassifier)
    assert platform.materialize(["batch_predictions"], DAY).success
    batch = platform.load("batch_predictions", DAY).set_index(platform.contract.id_column)
    features = platform.load("features", DAY)
    expected = pipeline.predict_proba(features[platform.contract.feature_columns])[:, 1]
    assert batch.loc[features[platform.contract.id_column], "score"].to_numpy() == pytest.approx(
        expected
    )

    # The same model under a contract that no longer trusts LightGBM's types: never loaded, and a
    # retraining fails before anything is logged, naming the field and the types.
    untrusted = edited_contracts(tmp_path / "untrusted", "loan_default", lightgbm_model([]))
    distrusting = Platform(home, instance, "loan_default", MLOPS_CONTRACTS=str(untrusted))
    with pytest.raises(ModelIntegrityError, match=r"model\.trusted_types does not list"):
        distrusting.registry.champion_and_model()
    retrained = distrusting.run(TRAIN, "2026-01-07")
    assert not retrained.success
    failure = next(event for event in retrained.all_events if event.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "model.trusted_types" in message and "lightgbm.basic.Booster" in message
    versions = distrusting.registry.client().search_model_versions(
        f"name='{platform.contract.model_name}'"
    )
    assert [str(v.version) for v in versions] == ["1"]  # nothing registered
