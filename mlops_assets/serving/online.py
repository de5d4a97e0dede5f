"""Online serving of a contract's champion: a model server locally, a KServe manifest for clusters.

    python -m mlops_assets.serving serve [--contract NAME] [--port 5001]   # `make serve`
    python -m mlops_assets.serving kserve [--contract NAME] [--out FILE]   # `make kserve-manifest`

Both read the same settings and contracts as the code location (MLFLOW_TRACKING_URI,
MLOPS_CONTRACTS, ...); `--contract` picks the model when several are loaded. The server
(`serving/app.py`) answers POST /invocations with the task's predictions (`[[P(negative),
P(positive)]]` for binary, values for a regression, `[{class: probability}]` for multiclass), the
same the batch scorer computes, after checking each request against the contract.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops_assets.contracts import DataContract
from mlops_assets.registry.mlflow import CHAMPION
from mlops_assets.settings import PlatformSettings
from mlops_assets.tasks import Task

KSERVE_API_VERSION = "serving.kserve.io/v1beta1"


def model_uri(model_name: str, version: str | None = None) -> str:
    """`models:/<name>@champion`, or one pinned version."""
    if version:
        return f"models:/{model_name}/{version}"
    return f"models:/{model_name}@{CHAMPION}"


def choose_contract(settings: PlatformSettings, name: str | None) -> DataContract:
    """The loaded contract named `name`, or the only one; a clear error otherwise."""
    contracts = {contract.name: contract for contract in settings.load_contracts()}
    if name is None and len(contracts) == 1:
        return next(iter(contracts.values()))
    if name not in contracts:
        raise ValueError(
            f"choose a contract with --contract: {', '.join(sorted(contracts))}"
            if name is None
            else f"no contract {name!r} is loaded; loaded: {', '.join(sorted(contracts))}"
        )
    return contracts[name]


def serve_command(
    contract: DataContract,
    host: str,
    port: int,
    version: str | None = None,
    max_request_bytes: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the contract's champion (or `version`)."""
    command = [
        sys.executable, "-m", "mlops_assets.serving", "serve",
        "--contract", contract.name, "--host", host, "--port", str(port),
    ]  # fmt: skip
    if version:
        command += ["--version", version]
    if max_request_bytes:
        command += ["--max-request-bytes", str(max_request_bytes)]
    return command, dict(os.environ)


def load_served_model(
    settings: PlatformSettings, contract: DataContract, version: str | None = None
) -> Any:
    """The champion (or `version`) of the contract's model, checked against its recorded digest."""
    from mlops_assets.registry.mlflow import RegistryError
    from mlops_assets.serving.app import ServedModel

    registered = _registry(settings).model_of(contract)
    chosen = registered.require_version(version) if version else registered.champion()
    if chosen is None:
        raise RegistryError(
            f"{contract.model_name!r} has no {CHAMPION} yet; train one or pass --version"
        )
    pipeline = registered.load_version(chosen)
    return ServedModel(contract, pipeline, str(chosen.version), None if version else CHAMPION)


@contextmanager
def model_server(
    settings: PlatformSettings,
    contract: DataContract,
    log: Path,
    version: str | None = None,
    port: int | None = None,
    max_request_bytes: int | None = None,
) -> Iterator[str]:
    """The champion (or `version`) served on 127.0.0.1 until the block ends; yields its base URL."""
    from mlops_assets.processes import free_port, running

    port = port or free_port()
    command, env = serve_command(contract, "127.0.0.1", port, version, max_request_bytes)
    env = {**env, "MLOPS_HOME": str(settings.home), **_settings_environment(settings)}
    with running(command, f"http://127.0.0.1:{port}/ping", log, env=env):
        yield f"http://127.0.0.1:{port}"


def _settings_environment(settings: PlatformSettings) -> dict[str, str]:
    """The variables `settings` was read from, so that the server process reads the same."""
    return {k: v for k, v in settings.environ.items() if k.startswith(("MLOPS_", "MLFLOW_"))}


def predict_online(base_url: str, frame: Any, task: Task) -> list[float]:
    """The task's score per row (P(positive), a value) from a model server, sent as MLflow's
    `dataframe_split` JSON."""
    body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    request = urllib.request.Request(
        f"{base_url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return served_scores(json.loads(response.read()), task)


def served_scores(answer: dict[str, Any], task: Task) -> list[Any]:
    """The task's score per row of an `/invocations` answer (whatever the request's format)."""
    return [task.score_of(row) for row in answer["predictions"]]


def _registry(settings: PlatformSettings) -> Any:
    from mlops_assets.definitions import build_resources

    return build_resources(settings)["mlflow"]


def storage_uri(download_uri: str, artifacts_destination: str | None) -> str:
    """Where KServe finds the model files: the registry's download URI, or for a tracking server
    that proxies artifacts (`mlflow-artifacts:/...`), the same path under the server's
    `--artifacts-destination` (for example s3://mlflow)."""
    if not download_uri.startswith("mlflow-artifacts:"):
        return download_uri
    if not artifacts_destination:
        raise ValueError(
            f"{download_uri} is served by the MLflow server, which KServe cannot read: pass "
            "--artifacts-destination (the server's --artifacts-destination, e.g. s3://mlflow)"
        )
    path = download_uri.removeprefix("mlflow-artifacts:")
    if path.startswith("//"):  # mlflow-artifacts://host:port/path
        path = path[2:].partition("/")[2]
    return f"{artifacts_destination.rstrip('/')}/{path.lstrip('/')}"


def inference_service(
    settings: PlatformSettings,
    model_name: str,
    version: str | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    artifacts_destination: str | None = None,
    task: Task | None = None,
) -> dict[str, Any]:
    """A KServe `InferenceService` for the champion (or `version`), from the registry.

    KServe's MLflow runtime (MLServer, protocol v2) loads the model directory at `storageUri`,
    which is the registry's download URI of the version: an `s3://` URL on a cluster install.
    `service_account` names one whose secret holds the object-store credentials. The runtime
    calls the method the model was logged with (`Task.predict_method`); the `task` annotations
    say what it answers, for a client (multiclass: the classes' order).
    """
    from mlops_assets.registry.mlflow import RegistryError

    registry = _registry(settings).model(model_name)
    chosen = registry.require_version(version) if version else registry.champion()
    if chosen is None:
        raise RegistryError(f"{model_name!r} has no {CHAMPION} yet; train one or pass --version")
    number = str(chosen.version)
    download_uri = registry.client().get_model_version_download_uri(model_name, number)
    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "model": {
            "modelFormat": {"name": "mlflow"},
            "protocolVersion": "v2",
            "storageUri": storage_uri(download_uri, artifacts_destination),
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "2Gi"},
            },
        },
    }
    if service_account:
        predictor["serviceAccountName"] = service_account
    metadata: dict[str, Any] = {
        "name": _dns_label(model_name),
        "labels": {
            "app.kubernetes.io/part-of": "mlops-assets",
            "mlops-assets/model-version": number,
        },
        "annotations": {
            "mlops-assets/model-uri": model_uri(model_name, number),
            "mlops-assets/run-id": chosen.run_id or "",
            "mlops-assets/served-alias": "" if version else CHAMPION,
            **(
                {"mlops-assets/task": task.name, "mlops-assets/outputs": task.served_outputs()}
                if task
                else {}
            ),
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": KSERVE_API_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def _dns_label(name: str) -> str:
    """A Kubernetes object name (RFC 1123 label) from a registered model name."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    if not label:
        raise ValueError(f"Model name {name!r} has nothing usable as a Kubernetes name")
    return label


def main(argv: list[str] | None = None) -> None:
    import yaml

    parser = argparse.ArgumentParser(
        description="Serve the champion model, or describe it for KServe."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the champion over HTTP")
    serve.add_argument("--contract", help="which contract's model (needed when several load)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument("--version", help="serve this registry version instead of the champion")
    serve.add_argument(
        "--max-request-bytes",
        type=int,
        default=None,
        help="larger request bodies get a 413 (default: 1,000,000)",
    )
    kserve = commands.add_parser("kserve", help="write a KServe InferenceService manifest")
    kserve.add_argument("--contract", help="which contract's model (needed when several load)")
    kserve.add_argument("--version", help="this registry version instead of the champion")
    kserve.add_argument("--namespace")
    kserve.add_argument("--service-account", help="service account with object-store credentials")
    kserve.add_argument(
        "--artifacts-destination",
        default=os.environ.get("MLOPS_MLFLOW_ARTIFACTS_DESTINATION"),
        help="the MLflow server's --artifacts-destination (e.g. s3://mlflow), for proxied artifacts",
    )
    kserve.add_argument("--out", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    settings = PlatformSettings.from_env()
    try:
        contract = choose_contract(settings, args.contract)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    model_name = contract.model_name

    from mlops_assets.registry.mlflow import RegistryError

    if args.command == "serve":
        _serve(settings, contract, args, parser)
        return

    try:
        manifest = inference_service(
            settings,
            model_name,
            args.version,
            args.namespace,
            args.service_account,
            args.artifacts_destination,
            contract.task,
        )
    except (RegistryError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    storage = manifest["spec"]["predictor"]["model"]["storageUri"]
    if not storage.startswith(("s3://", "gs://", "https://", "pvc://", "hdfs://", "oci://")):
        print(
            f"warning: storageUri {storage} is not reachable from a cluster; "
            "log models to an object store (MLflow server with S3 artifacts) for KServe",
            file=sys.stderr,
        )
    text = yaml.safe_dump(manifest, sort_keys=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(args.out)
    else:
        sys.stdout.write(text)


def _serve(
    settings: PlatformSettings,
    contract: DataContract,
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
) -> None:
    import uvicorn

    from mlops_assets.registry.mlflow import RegistryError
    from mlops_assets.serving.app import MAX_REQUEST_BYTES, build_app

    try:
        served = load_served_model(settings, contract, args.version)
    except RegistryError as error:
        parser.exit(2, f"error: {error}\n")
    print(
        f"serving {model_uri(contract.model_name, args.version)} (version {served.version}) "
        f"from {settings.mlflow_tracking_uri} on http://{args.host}:{args.port}/invocations",
        flush=True,
    )
    app = build_app(served, args.max_request_bytes or MAX_REQUEST_BYTES)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
