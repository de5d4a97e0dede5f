"""Online serving: the champion behind the model server, and its KServe manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import jsonschema
import numpy as np
import pytest
import yaml

from mlops_assets.serving.online import model_server, served_scores, storage_uri
from mlops_assets_tests.conftest import HISTORY_DAYS, SHIPPED, Platform
from mlops_assets_tests.k8s_schemas import validate_inference_service

DAY = HISTORY_DAYS[-1]


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def post_oversized(url: str, size: int) -> tuple[int, dict]:
    """Announce a `size`-byte body, send its first bytes, and read the answer (a server refusing
    it answers before the rest arrives, and closes the connection)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
            + b"[" * 65_536
        )
        response = b""
        while chunk := connection.recv(65_536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def as_json(payload: dict) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.slow
def test_champion_served_over_http_matches_batch_scores_and_rejects_bad_requests(
    platform: Platform, tmp_path
):
    contract, task = platform.contract, platform.contract.task
    assert platform.run("train_and_register", DAY).success
    assert platform.materialize(["batch_predictions"], DAY).success
    batch = platform.load("batch_predictions", DAY)
    rows = platform.load("features", DAY).head(50)
    scored = batch.set_index(contract.id_column).loc[rows[contract.id_column]]
    expected = task.stored_scores(scored, "score")  # P(positive), a value, class probabilities

    request_frame = rows[contract.feature_columns]
    first, numeric = contract.feature_columns[0], contract.numeric_features[0]
    bounded = next(c for c in contract.raw_features if getattr(c, "max", None) is not None)
    categorical = next(c for c in contract.raw_features if c.type == "categorical")

    with model_server(platform.settings, contract, tmp_path / "serve.log") as base:
        url = f"{base}/invocations"
        split = json.loads(request_frame.to_json(orient="split", index=False))
        status, body = post(url, as_json({"dataframe_split": split}))
        assert status == 200, body
        assert len(body["predictions"]) == len(rows)
        np.testing.assert_allclose(served_scores(body, task), expected, rtol=1e-9)

        records = json.loads(request_frame.to_json(orient="records"))
        for key in ("instances", "dataframe_records"):
            status, body = post(url, as_json({key: records}))
            assert status == 200, body
            np.testing.assert_allclose(served_scores(body, task), expected, rtol=1e-9)

        refused = []
        missing = {"dataframe_split": {**split, "columns": split["columns"][1:]}}
        missing["dataframe_split"]["data"] = [row[1:] for row in split["data"]]
        refused.append(post(url, as_json(missing)))
        assert refused[-1] == (
            400,
            {
                "error_code": "BAD_REQUEST",
                "message": f"Missing input column(s): {first}",
                "reasons": [],
            },
        )

        outside = [
            {**records[0], numeric: "excellent"},
            {**records[1], bounded.name: bounded.max + 1},
            {**records[2], categorical.name: "no-such-level"},
        ]
        refused.append(post(url, as_json({"instances": outside})))
        status, body = refused[-1]
        assert status == 400
        assert body["message"] == f"3 value(s) outside the contract of '{contract.name}'"
        assert body["reasons"] == [
            f"row 0: {numeric}: 'excellent' is not a number",
            f"row 1: {bounded.name}: {bounded.max + 1!r} is above the contract's maximum "
            f"{bounded.max:g}",
            f"row 2: {categorical.name}: 'no-such-level' is not a level of the contract "
            f"({', '.join(categorical.levels)})",
        ]

        for empty in (b"", b"{}", b"{not json", b'{"instances": []}'):
            refused.append(post(url, empty))
            assert refused[-1][0] == 400 and refused[-1][1]["message"], (empty, refused[-1])

        refused.append(post_oversized(url, 10_000_000))  # 10 MB of "["
        assert refused[-1][0] == 413
        assert "larger than the server's limit" in refused[-1][1]["message"]
        for _status, body in refused:
            assert "Traceback" not in json.dumps(body) and "stack_trace" not in body

        status, body = post(url, as_json({"dataframe_split": split}))  # still serving
        assert status == 200 and len(body["predictions"]) == len(rows)


def test_kserve_manifest_names_the_champion_and_is_valid(platform: Platform, tmp_path):
    env = {  # not os.environ: mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI in-process
        "PATH": os.environ["PATH"],
        "MLOPS_HOME": str(platform.settings.home),
    }
    out = tmp_path / "isvc.yaml"
    command = [sys.executable, "-m", "mlops_assets.serving", "kserve", "--namespace", "ml"]

    ambiguous = subprocess.run(command, env=env, capture_output=True, text=True)
    assert ambiguous.returncode == 2
    assert f"choose a contract with --contract: {', '.join(sorted(SHIPPED))}" in ambiguous.stderr
    command += ["--contract", platform.name]
    before = subprocess.run(command, env=env, capture_output=True, text=True)
    assert before.returncode == 2 and "has no champion yet" in before.stderr

    assert platform.run("train_and_register", DAY).success
    done = subprocess.run(
        [*command, "--service-account", "s3-reader", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "not reachable from a cluster" in done.stderr  # a local file store, said plainly
    manifest = yaml.safe_load(out.read_text())
    validate_inference_service(manifest)

    champion = platform.registry.champion()
    client = platform.registry.client()
    model = manifest["spec"]["predictor"]["model"]
    assert model["storageUri"] == client.get_model_version_download_uri(
        platform.contract.model_name, champion.version
    )
    assert model["modelFormat"] == {"name": "mlflow"} and model["protocolVersion"] == "v2"
    assert manifest["metadata"]["labels"]["mlops-assets/model-version"] == str(champion.version)
    assert manifest["metadata"]["namespace"] == "ml"
    annotations = manifest["metadata"]["annotations"]
    served = {  # what MLflow's server answers per row follows the task
        "binary": "[P(negative), P(positive)] (predict_proba)",
        "regression": "the predicted value (predict)",
        "multiclass": "[P(nabisco), P(private), P(sunshine), P(kleebler)] (predict_proba)",
    }
    task = platform.contract.task.name
    assert annotations["mlops-assets/task"] == task
    assert annotations["mlops-assets/outputs"] == served[task]
    assert manifest["spec"]["predictor"]["serviceAccountName"] == "s3-reader"

    misspelt = yaml.safe_load(out.read_text())
    misspelt["spec"]["predictor"]["model"]["storageURI"] = model.pop("storageUri")
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(misspelt)
    bad_quantity = yaml.safe_load(out.read_text())
    bad_quantity["spec"]["predictor"]["model"]["resources"]["limits"] = {"cpu": ["1"]}
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(bad_quantity)


def test_kserve_reads_proxied_artifacts_from_the_servers_object_store():
    proxied = "mlflow-artifacts:/1/models/m-abc/artifacts"
    assert storage_uri(proxied, "s3://mlflow/") == "s3://mlflow/1/models/m-abc/artifacts"
    assert (
        storage_uri("mlflow-artifacts://mlflow:5000/1/models/m-abc/artifacts", "s3://mlflow")
        == "s3://mlflow/1/models/m-abc/artifacts"
    )
    assert storage_uri("s3://bucket/models/m-1", None) == "s3://bucket/models/m-1"
    with pytest.raises(ValueError, match="--artifacts-destination"):
        storage_uri(proxied, None)


def test_late_labels_re_materialize_a_days_model_performance_by_itself(
    tmp_path, feature_history, instance
):
    """Day 9 is served before its labels exist; when day 9 is delivered again with labels, the
    declarative automation condition of `model_performance` asks for day 9 again, by itself."""
    import dagster as dg

    from mlops_assets_tests.conftest import platform_with_history

    home = tmp_path / "home"
    waiting = platform_with_history(
        home, feature_history, instance, "loan_default",
        MLOPS_LABEL_DELAY_DAYS="3", MLOPS_AS_OF="2026-01-09",
    )  # fmt: skip
    assert waiting.run("train_and_register", DAY).success
    assert waiting.run("daily_lifecycle", "2026-01-09").success
    assert waiting.load("model_performance", "2026-01-09").iloc[0]["labelled_rows"] == 0
    first = dg.evaluate_automation_conditions(defs=waiting.defs, instance=instance)
    assert first.total_requested == 0  # nothing new since the run

    labelled = Platform(home, instance, "loan_default", MLOPS_AS_OF="2026-01-20")
    assert labelled.run("ingest", "2026-01-09").success  # the same day, now with its labels
    second = dg.evaluate_automation_conditions(
        defs=labelled.defs, instance=instance, cursor=first.cursor
    )
    assert second.total_requested == 1
    assert second.get_requested_partitions(labelled.key("model_performance")) == {"2026-01-09"}
    assert labelled.materialize(["model_performance"], "2026-01-09").success
    performance = labelled.load("model_performance", "2026-01-09").iloc[0]
    assert performance["labelled_rows"] > 250 and performance["roc_auc"] > 0.6
