"""Contracts are files: validated at load with errors naming the file and field, and the single
source of every schema, type and column list."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from mlops_assets.contracts import ContractError, load_contract, load_contracts
from mlops_assets.definitions import build_definitions
from mlops_assets.examples import EXAMPLES_DIR
from mlops_assets.examples.loan_default_synthetic import SyntheticLoanGenerator
from mlops_assets.ingestion.validation import validate_rows
from mlops_assets.settings import PlatformSettings, SettingsError

ENV = {"MLOPS_HOME": "/tmp/mlops-test-home"}
LOAN_FILE = EXAMPLES_DIR / "loan_default.yaml"
RAW_FEATURES = [
    "age",
    "annual_income",
    "credit_score",
    "open_accounts",
    "debt_to_income",
    "loan_amount",
    "employment_length_years",
    "home_ownership",
    "loan_purpose",
]


def loan_document() -> dict:
    return yaml.safe_load(LOAN_FILE.read_text())


def write(folder: Path, document: dict, name: str = "loan_default") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_loan_contract_declares_the_loan_dataset():
    contract = load_contract(LOAN_FILE, ENV)
    assert contract.raw_columns == ["application_id", "applied_at", *RAW_FEATURES, "defaulted"]
    assert contract.feature_columns == [
        *RAW_FEATURES,
        "loan_to_income",
        "log_annual_income",
        "credit_score_band",
    ]
    assert {"home_ownership", "credit_score_band"} <= set(contract.categorical_features)
    assert set(contract.numeric_features) | set(contract.categorical_features) == set(
        contract.feature_columns
    )
    assert contract.key("features") == dg.AssetKey(["loan_default", "features"])


def test_crash_contract_generates_its_id_and_event_time():
    contract = load_contract(EXAMPLES_DIR / "vehicle_crashes.yaml", ENV)
    assert contract.generates_id and contract.generates_event_time
    assert contract.delivered_columns[0] == "dvcat" and contract.delivered_columns[-1] == "dead"
    assert contract.raw_columns[:2] == ["row_id", "event_time"]
    assert contract.spec.source.url == "/tmp/mlops-test-home/sources/vehicle_crashes"
    delivered = pd.DataFrame(
        {
            "dvcat": ["10-24", "55+", "25-39"],
            "airbag": ["none", "airbag", "airbag"],
            "seatbelt": ["belted", "none", "belted"],
            "frontal": ["1", "0", "1"],
            "sex": ["f", "m", "m"],
            "ageOFocc": ["26", "72", "40"],
            "yearVeh": ["1990", "", "1999"],
            "abcat": ["unavail", "deploy", "nodeploy"],
            "occRole": ["driver", "pass", "driver"],
            "deploy": ["0", "1", "0"],
            "dead": ["alive", "dead", "maybe"],
            "caseid": ["2:3:1", "2:3:1", "2:5:1"],
        }
    )
    result = validate_rows(delivered, contract, date(2026, 1, 5))
    assert result.accepted["row_id"].tolist() == ["2026-01-05-000000", "2026-01-05-000001"]
    assert result.accepted["event_time"].tolist() == [pd.Timestamp("2026-01-05")] * 2
    assert result.accepted["dead"].tolist() == [0, 1]
    assert pd.isna(result.accepted["yearVeh"].iloc[1])  # a missing vehicle year is allowed
    assert result.rejected["rejection_reason"].tolist() == [
        "dead: 'maybe' is not a label value (positive: dead; negative: alive)"
    ]
    assert result.ignored_columns == ["caseid"]


def test_label_values_match_as_delivered_text_or_numbers(tmp_path):
    document = loan_document()
    document["label"] = {"column": "defaulted", "positive": ["bad"]}  # negative: anything else
    contract = load_contract(write(tmp_path, document), ENV)
    encoded, invalid = contract.label.encode(pd.Series(["bad", "good", None, " bad ", "other"]))
    assert encoded.tolist() == [1, 0, pd.NA, 1, 0]
    assert not invalid.any()
    numeric = load_contract(LOAN_FILE, ENV).label
    encoded, invalid = numeric.encode(pd.Series(["1", "0", "1.0", 0.0, "2", None]))
    assert encoded.iloc[:4].tolist() == [1, 0, 1, 0]
    assert invalid.tolist() == [False, False, False, False, True, False]


def test_models_and_dagster_types_carry_the_contract_columns_and_rules():
    contract = load_contract(LOAN_FILE, ENV)
    raw_schema = contract.raw_model.to_schema()
    assert list(raw_schema.columns) == contract.raw_columns
    assert raw_schema.columns["defaulted"].nullable
    assert not raw_schema.columns["age"].nullable
    assert raw_schema.columns["application_id"].unique
    by_name = {column.name: column for column in contract.column_schema("features").columns}
    assert list(by_name) == contract.feature_table_columns
    assert by_name["credit_score"].constraints.other == [">= 300", "<= 850"]
    assert by_name["credit_score"].description == "Bureau credit score (FICO scale)"
    raw = SyntheticLoanGenerator(rows_per_day=50).generate(date(2026, 1, 5))
    assert dg.check_dagster_type(contract.dagster_types["raw"], raw).success
    broken = raw.assign(credit_score=raw["credit_score"].where(raw.index != 3, 9_000))
    result = dg.check_dagster_type(contract.dagster_types["raw"], broken)
    assert not result.success and "credit_score" in result.description


def test_a_feature_added_to_the_file_reaches_every_derived_piece(tmp_path):
    document = loan_document()
    document["features"].append({"name": "monthly_rent", "type": "number", "min": 0, "max": 20000})
    contract = load_contract(write(tmp_path, document), ENV)
    assert "monthly_rent" in contract.raw_columns and "monthly_rent" in contract.numeric_features
    for stage in ("raw", "features", "training"):
        assert "monthly_rent" in [column.name for column in contract.column_schema(stage).columns]
    lineage = contract.column_lineage(dg.AssetKey("raw"))
    assert lineage.deps_by_column["monthly_rent"][0].column_name == "monthly_rent"
    raw = SyntheticLoanGenerator(rows_per_day=20).generate(date(2026, 1, 5))
    raw["monthly_rent"] = 1_000.0
    raw.loc[0, "monthly_rent"] = -5.0
    result = validate_rows(raw, contract, date(2026, 1, 5))
    assert result.rejected["rejection_reason"].tolist() == [
        "monthly_rent: -5.0 failed greater_than_or_equal_to(0)"
    ]
    contract.features_model.validate(contract.build_features(result.accepted))
    assert contract.version != load_contract(LOAN_FILE, ENV).version


def _broken(change) -> dict:
    document = loan_document()
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="blue"), "loan_default.yaml: colour: unknown field"),
        (
            lambda d: d["features"][0].update(type="float"),
            "features.0: 'float' is not allowed; expected 'number', 'integer', 'categorical'",
        ),
        (
            lambda d: d["features"][0].update(min=190),
            "features.0: Value error, min 190.0 is above max",
        ),
        (
            lambda d: d["gates"].update(min_roc_auc=1.5),
            "gates.min_roc_auc: Input should be less than or equal to 1",
        ),
        (
            lambda d: d["gates"]["bias"].update(column="age"),
            "gates.bias.column: 'age' is not a categorical feature",
        ),
        (
            lambda d: d["gates"]["bias"].update(metric="precision"),
            "gates.bias.metric: 'precision' is not a binary metric; "
            "expected one of recall, approval_rate",
        ),
        (
            lambda d: d["gates"]["bias"].update(metric="relative_absolute_error"),
            "gates.bias.metric: 'relative_absolute_error' is not a binary metric",
        ),
        (
            lambda d: d["model"].update(estimator="linear_regression", params={}),
            "model.estimator: linear_regression is not a binary estimator; expected one of "
            "hist_gradient_boosting, logistic_regression, random_forest, or module:function",
        ),
        (
            lambda d: d["gates"]["bias"].update(max_gap=-0.1),
            "gates.bias.max_gap: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d["model"].update(decision_threshold=5),
            "model.decision_threshold: Input should be less than 1",
        ),
        (
            lambda d: d["model"]["params"].update(depth=3),
            "model: Value error, params of hist_gradient_boosting: depth: Extra inputs",
        ),
        (
            lambda d: d["model"].update(estimator="lightgbm"),
            "model: Value error, estimator 'lightgbm' is neither a built-in estimator "
            "(hist_gradient_boosting, logistic_regression, linear_regression, random_forest) nor module:function",
        ),
        (
            lambda d: d["model"].update(estimator="no_such_team_module:make"),
            "model.estimator: cannot import module 'no_such_team_module'",
        ),
        (
            lambda d: d["model"].update(estimator="mlops_assets_tests.estimators:nothing"),
            "model.estimator: 'mlops_assets_tests.estimators' has no function 'nothing'",
        ),
        (
            lambda d: d["model"].update(
                estimator="mlops_assets_tests.estimators:random_forest_classifier",
                params={"depth": 3},
            ),
            "model.params: mlops_assets_tests.estimators:random_forest_classifier does not take "
            "them: got an unexpected keyword argument 'depth'",
        ),
        (
            lambda d: d["model"].update(trusted_types=["Booster"]),
            "model.trusted_types: Value error, ['Booster'] are not module.Class names",
        ),
        (lambda d: d["drift"].update(threshold=2), "drift.threshold: Input should be less than 1"),
        (
            lambda d: d["drift"].update(cooldown_hours=-1),
            "drift.cooldown_hours: Input should be greater than or equal to 0",
        ),
        (lambda d: d["drift"].update(exclude=["nope"]), "drift.exclude: ['nope'] are not features"),
        (
            lambda d: d["derived_features"][0].update(inputs=["salary"]),
            "derived_features[0].inputs: ['salary'] are not raw features",
        ),
        (
            lambda d: d["derived_features"][0].update(function="mlops_assets.examples:nothing"),
            "derived_features[0].function: 'mlops_assets.examples' has no function 'nothing'",
        ),
        (
            lambda d: d["features"].append({"name": "age", "type": "integer"}),
            "features: columns declared twice: ['age']",
        ),
        (
            lambda d: d["label"].update(positive=[1], negative=[1, 0]),
            "label: Value error, values ['1'] are both positive and negative",
        ),
        (lambda d: d.pop("label"), "label: Field required"),
        (
            lambda d: d["label"].update(task="regression"),
            "label.positive: not a field of a regression label, which is a number (range: [min, "
            "max] bounds it); leave it out",
        ),
        (
            lambda d: d["label"].update(
                task="regression", positive=None, negative=None, range=[5, 1]
            ),
            "label.range: [5.0, 1.0] is not [min, max] with min < max",
        ),
        (
            lambda d: d["label"].update(range=[0, 1]),
            "label.range: not a field of a binary label, which lists its positive (and negative) "
            "values; leave it out",
        ),
        (
            lambda d: d["label"].update(task="multiclass", positive=["Gentoo"]),
            "label.positive: not a field of a multiclass label, which lists its classes",
        ),
        (
            lambda d: d["label"].update(task="ranking"),
            "label.task: Value error, 'ranking' is not a task; expected one of binary, "
            "multiclass, regression",
        ),
        (
            lambda d: d["label"].pop("positive"),
            "label.positive: Field required: a binary label lists the delivered values that mean "
            "the positive class (e.g. positive: [1]); a label of three or more classes is task: "
            "multiclass (classes: [...]); a numeric label is task: regression",
        ),
        (lambda d: d.update(name="Loan Default"), "name: String should match pattern"),
    ],
)
def test_a_bad_contract_fails_the_load_naming_file_and_field(tmp_path, change, message):
    path = write(tmp_path, _broken(change))
    with pytest.raises(ContractError) as error:
        load_contracts(tmp_path, ENV)
    assert str(path) in str(error.value)
    assert message in str(error.value), str(error.value)


def test_environment_overrides_are_validated_and_name_the_variable(tmp_path):
    write(tmp_path, loan_document())
    env = {**ENV, "MLOPS_CONTRACTS": str(tmp_path)}
    settings = PlatformSettings.from_env({**env, "MLOPS_DRIFT_THRESHOLD": "0.3"})
    (contract,) = settings.load_contracts()
    assert contract.spec.drift.threshold == 0.3
    bad = PlatformSettings.from_env({**env, "MLOPS_GATE_MIN_ROC_AUC": "1.5"})
    with pytest.raises(
        ContractError, match=r"gates.min_roc_auc: .* \(from MLOPS_GATE_MIN_ROC_AUC\)"
    ):
        bad.load_contracts()
    with pytest.raises(SettingsError, match="MLOPS_GATE_MIN_ROC_AUC='nan%' is not a valid float"):
        PlatformSettings.from_env({**env, "MLOPS_GATE_MIN_ROC_AUC": "nan%"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_SYNTHETIC_ROWS_PER_DAY": "-5"}, "rows_per_day"),
        ({"MLOPS_SYNTHETIC_INVALID_ROW_SHARE": "2"}, "invalid_row_share"),
        ({"MLOPS_DRIFT_SCENARIO": "recession", "MLOPS_DRIFT_START": "2026-01-10"}, "recession"),
        ({"MLOPS_DRIFT_SCENARIO": "income_drop"}, "needs a scenario_start"),
        (
            {"MLOPS_SENSOR_INTERVAL_SECONDS": "-1"},
            "MLOPS_SENSOR_INTERVAL_SECONDS must be at least 1",
        ),
        ({"MLFLOW_TRACKING_URI": "htp://mlflow:5000"}, "MLFLOW_TRACKING_URI='htp://mlflow:5000'"),
        ({"MLOPS_PARTITIONS_START": "01/02/2026"}, "MLOPS_PARTITIONS_START='01/02/2026'"),
    ],
)
def test_bad_settings_fail_the_load_naming_the_setting(tmp_path, env, message):
    with pytest.raises((SettingsError, ContractError), match=message):
        build_definitions(PlatformSettings.from_env({"MLOPS_HOME": str(tmp_path), **env}))


def test_contracts_in_one_folder_need_distinct_models(tmp_path):
    write(tmp_path, loan_document(), "first")
    write(tmp_path, {**loan_document(), "name": "second"}, "second")
    with pytest.raises(ContractError, match=r"second.yaml: model.name: 'loan-default-classifier'"):
        load_contracts(tmp_path, ENV)
    with pytest.raises(ContractError, match="no contract files"):
        load_contracts(tmp_path / "empty", ENV)


def _string_literals(path: Path) -> set[str]:
    """Every string constant of a module, f-string parts included."""
    tree = ast.parse(path.read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_no_module_outside_a_contract_names_a_dataset_column():
    package = Path(EXAMPLES_DIR).parent
    columns = set()
    for contract in load_contracts(EXAMPLES_DIR, ENV):
        columns |= set(contract.raw_columns) | set(contract.feature_columns)
    columns -= {"row_id", "event_time"}  # the platform's own names for generated columns
    offenders = {}
    for path in package.rglob("*.py"):
        if path.parent == EXAMPLES_DIR:
            continue
        named = _string_literals(path) & columns
        if named:
            offenders[str(path.relative_to(package))] = sorted(named)
    assert offenders == {}


def _frames_of_every_table():
    from mlops_assets.monitoring.assets import DRIFT_COLUMNS
    from mlops_assets.registry.assets import REGISTERED_MODEL_VERSION_CARD
    from mlops_assets.serving.assets import model_performance_card
    from mlops_assets.tasks import TASKS
    from mlops_assets.training.assets import trained_model_card

    frames = [
        *(trained_model_card(task) for task in TASKS.values()),
        REGISTERED_MODEL_VERSION_CARD,
        DRIFT_COLUMNS,
        *(model_performance_card(task) for task in TASKS.values()),
    ]
    for contract in load_contracts(EXAMPLES_DIR, ENV):
        frames += list(contract.frames.values())
    return frames


@pytest.mark.parametrize("frame", _frames_of_every_table(), ids=lambda frame: frame.title)
def test_the_schema_shown_at_load_is_what_dagster_pandera_derives_from_the_pandera_model(frame):
    """Types are built without pandera at load; the UI must still show pandera's own schema."""
    from dagster_pandera import pandera_schema_to_dagster_type

    model = frame.pandera_model()
    assert list(model.to_schema().columns) == frame.column_names
    expected = pandera_schema_to_dagster_type(model)
    assert frame.dagster_type().metadata["schema"].schema == expected.metadata["schema"].schema
    assert frame.dagster_type().unique_name == expected.unique_name


def test_loading_the_code_location_imports_no_dataframe_library(tmp_path):
    """Every run worker, step process and sensor tick loads it: pandas and pandera come later."""
    import subprocess
    import sys

    code = (
        "import sys; import mlops_assets.definitions as d; d.build_definitions(); "
        "print(sorted(m for m in ('pandas', 'numpy', 'pandera', 'sklearn', 'mlflow', 'evidently') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "MLOPS_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_unquoted_yes_and_no_fail_the_load_saying_to_quote_them(tmp_path):
    text = LOAN_FILE.read_text().replace("positive: [1]", "positive: [Yes]")
    text = text.replace("levels: [RENT, MORTGAGE, OWN, OTHER]", "levels: [RENT, OWN, No]")
    text = text.replace("negative: [0]", "negative: [No]")
    (tmp_path / "loan_default.yaml").write_text(text)
    with pytest.raises(ContractError) as error:
        load_contract(tmp_path / "loan_default.yaml", ENV)
    message = str(error.value)
    for field, read in (("label.positive", "true"), ("label.negative", "false")):
        assert f"{field}: Value error, {read} is a YAML boolean" in message
    assert "features.7.levels: Value error, false is a YAML boolean" in message
    assert 'quote the value exactly as the data holds it ("Yes"' in message

    quoted = text.replace("[Yes]", '["Yes"]').replace("[No]", '["No"]')
    quoted = quoted.replace("OWN, No]", 'OWN, "No"]')
    (tmp_path / "loan_default.yaml").write_text(quoted)
    contract = load_contract(tmp_path / "loan_default.yaml", ENV)
    encoded, invalid = contract.label.encode(pd.Series(["Yes", "No", "yes"]))
    assert encoded.iloc[:2].tolist() == [1, 0] and invalid.tolist() == [False, False, True]
