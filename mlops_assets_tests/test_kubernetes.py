"""The Kubernetes deployment: image, manifests, chart values, the k8s profile, and a real launch.

There is no cluster here. The launch test runs the real path against an emulated Kubernetes API
(kmock over HTTP): K8sRunLauncher creates the run worker's Job, a test kubelet runs it, the run
worker's k8s_job_executor creates one Job per step, and the steps exchange assets through an
`s3://` bucket served by moto on 127.0.0.1, with MLflow a real tracking server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import s3fs
import yaml
from dagster_k8s.container_context import K8sContainerContext
from kubernetes import client

from mlops_assets import keys
from mlops_assets.definitions import build_definitions
from mlops_assets.deployment import STEP_RESOURCES
from mlops_assets.processes import stop
from mlops_assets.settings import PlatformSettings, SettingsError
from mlops_assets_tests import helm_values, pod_security
from mlops_assets_tests.conftest import HISTORY_DAYS, HISTORY_ROWS_PER_DAY, SHIPPED
from mlops_assets_tests.k8s_schemas import validate
from mlops_assets_tests.kube import Kubelet, api_client, emulated_kubernetes, write_kubeconfig
from mlops_assets_tests.servers import BIN, free_port, mlflow_server, running

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "chart"
NAMESPACE = "mlops"
BUCKET = "mlops"
TRAINING_JOB = keys.training_job("loan_default")
K8S_ENV = {
    "MLOPS_DEPLOYMENT": "k8s",
    "MLOPS_STORAGE_URL": f"s3://{BUCKET}/assets",
    "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    **{  # where the real-data examples' daily files are, as the chart's ConfigMap says
        f"MLOPS_{name.upper()}_URL": f"s3://{BUCKET}/sources/{name}"
        for name in ("vehicle_crashes", "pc_prices", "cracker_brands")
    },
}


# ---- the profile ---------------------------------------------------------------------------
def test_k8s_profile_loads_and_every_job_runs_one_pod_per_step(tmp_path):
    settings = PlatformSettings.from_env({"MLOPS_HOME": str(tmp_path), **K8S_ENV})
    defs = build_definitions(settings)
    assert settings.reports_url == f"s3://{BUCKET}/assets/reports"
    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__ASSET_JOB"):
            continue
        assert job.executor_def.name == "k8s", job.name
    resources = {
        key.to_user_string(): _tag(assets_def.op.tags["dagster-k8s/config"])
        for assets_def in defs.resolve_asset_graph().assets_defs
        for key in assets_def.keys
    }
    assert len(resources) == 9 * len(SHIPPED)  # nine stages of each shipped contract
    training = resources["loan_default/trained_model"]["container_config"]["resources"]
    ingestion = resources["vehicle_crashes/raw"]["container_config"]["resources"]
    assert training == STEP_RESOURCES["training"] and ingestion == STEP_RESOURCES["ingestion"]
    assert _memory(training["limits"]["memory"]) > _memory(ingestion["limits"]["memory"])
    local = build_definitions(PlatformSettings.from_env({"MLOPS_HOME": str(tmp_path)}))
    assert local.resolve_job_def(TRAINING_JOB).executor_def.name != "k8s"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"MLOPS_STORAGE_URL": "/data/assets"}, "MLOPS_STORAGE_URL on an object store"),
        ({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, "MLFLOW_TRACKING_URI pointing at"),
    ],
)
def test_k8s_profile_refuses_pod_local_state(env, problem):
    with pytest.raises(SettingsError, match=problem):
        PlatformSettings.from_env({**K8S_ENV, **env})


def test_k8s_profile_refuses_a_contract_reading_files_from_a_pods_disk(tmp_path):
    env = {**K8S_ENV, "MLOPS_HOME": str(tmp_path)}
    del env["MLOPS_VEHICLE_CRASHES_URL"]  # the crash example's default is a local folder
    with pytest.raises(
        SettingsError, match=r"vehicle_crashes.yaml: source.url: .* a pod's own disk"
    ):
        build_definitions(PlatformSettings.from_env(env))


def _tag(value: str | dict) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def _memory(quantity: str) -> float:
    units = {"Mi": 2**20, "Gi": 2**30}
    return float(quantity[:-2]) * units[quantity[-2:]]


# ---- image and manifests -------------------------------------------------------------------
def test_dockerfile_passes_hadolint_and_runs_the_code_server_as_non_root():
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "\nUSER 10001:10001\n" in dockerfile and "HEALTHCHECK" in dockerfile
    assert '"dagster", "api", "grpc"' in dockerfile and '".[k8s]"' in dockerfile
    ignored = [
        line for line in (REPO / ".dockerignore").read_text().splitlines() if line[:1] not in "#"
    ]
    assert ignored[0] == "*" and "!mlops_assets/" in ignored  # local state never gets in


def render_chart(values: dict | None = None) -> list[dict]:
    """deploy/chart linted (warnings fail) and rendered by Helm's own engine (helm-python-sdk
    embeds Helm's Go SDK), as `helm install mlops deploy/chart` would; its objects."""
    import helm_python as helm

    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    assert not report["errors"], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]
    rendered = helm.Chart.load(str(CHART)).render(
        values, name="mlops", namespace=NAMESPACE, is_install=True
    )
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    """Each workload's pod spec, by `<kind>/<name>`."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def test_the_platform_chart_renders_strictly_valid_objects_that_pod_security_admits():
    objects = render_chart()
    assert {f"{o['kind']}/{o['metadata']['name']}" for o in objects} == {
        "ConfigMap/mlops-assets-env",
        "PersistentVolumeClaim/minio-data", "Deployment/minio", "Service/minio",
        "Job/minio-buckets",
        "PersistentVolumeClaim/mlflow-postgres-data", "Deployment/mlflow-postgres",
        "Service/mlflow-postgres", "Deployment/mlflow", "Service/mlflow", "Job/mlflow-db-upgrade",
    }  # fmt: skip
    for obj in objects:
        validate(obj)  # strict: an unknown or misplaced field fails
    for name, spec in pod_specs(objects).items():
        assert pod_security.violations(spec) == [], name
        assert pod_security.read_only_root(spec) == [], name
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert PlatformSettings.from_env(config["data"]).deployment == "k8s"
    mlflow = pod_specs(objects)["Deployment/mlflow"]["containers"][0]
    assert not any("POSTGRES_PASSWORD" in arg or "postgresql" in arg for arg in mlflow["args"])
    # Jobs are Helm hooks, deleted before they are made again (a Job's template is immutable),
    # and the MLflow schema is upgraded before the server rolls to a new image
    hooks = {
        o["metadata"]["name"]: o["metadata"]["annotations"] for o in objects if o["kind"] == "Job"
    }
    assert {a["helm.sh/hook-delete-policy"] for a in hooks.values()} == {"before-hook-creation"}
    assert hooks["mlflow-db-upgrade"]["helm.sh/hook"] == "pre-upgrade"
    upgrade = pod_specs(objects)["Job/mlflow-db-upgrade"]["containers"][0]
    assert upgrade["env"] == mlflow["env"][:2]  # the same database, from the same Secret
    images = [c["image"] for spec in pod_specs(objects).values() for c in spec["containers"]]
    floating = [image for image in images if not re.search(r":(RELEASE\.|\d+\.\d+)", image)]
    assert floating == []  # every tag names a release, never a moving major or latest


def test_every_site_specific_name_of_the_platform_chart_is_a_value():
    """Images, pull secrets, Secret names, buckets and the StorageClass; and S3 without MinIO."""
    site = {
        "image": {
            "repository": "ghcr.io/acme/mlops-assets",
            "tag": "abc123",
            "pullPolicy": "Never",
        },
        "imagePullSecrets": [{"name": "acme-registry"}],
        "secrets": {"s3": "acme-s3", "mlflowPostgres": "acme-mlflow-db"},
        "buckets": {"assets": "acme-mlops-assets", "mlflow": "acme-mlflow-artifacts"},
        "storageClassName": "gp3",
    }
    objects = render_chart(site)
    rendered = yaml.safe_dump_all(objects)
    for default in ("registry.example.com", "mlops-s3", "s3://mlops/", "s3://mlflow"):
        assert default not in rendered, default
    for spec in pod_specs(objects).values():
        assert spec["imagePullSecrets"] == [{"name": "acme-registry"}]
    secrets = re.findall(r"secretKeyRef:\n\s+key: \S+\n\s+name: ([\w-]+)", rendered)
    secrets += re.findall(r"secretRef:\n\s+name: ([\w-]+)", rendered)
    assert set(secrets) == {"acme-s3", "acme-mlflow-db"}
    assert {
        o["spec"]["storageClassName"] for o in objects if o["kind"] == "PersistentVolumeClaim"
    } == {"gp3"}
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert config["MLOPS_STORAGE_URL"] == "s3://acme-mlops-assets/assets"
    for name, value in K8S_ENV.items():  # every file-delivered example reads the object store
        if name.endswith("_URL") and name.startswith("MLOPS_") and "sources" in value:
            assert config[name] == value.replace(f"s3://{BUCKET}/", "s3://acme-mlops-assets/")
    assert config["MLOPS_MLFLOW_ARTIFACTS_DESTINATION"] == "s3://acme-mlflow-artifacts"
    mlflow = pod_specs(objects)["Deployment/mlflow"]["containers"][0]
    assert mlflow["image"] == "ghcr.io/acme/mlops-assets:abc123"
    assert "--artifacts-destination=s3://acme-mlflow-artifacts/" in mlflow["args"]
    assert "store/acme-mlops-assets store/acme-mlflow-artifacts" in rendered

    on_s3 = render_chart({**site, "minio": {"enabled": False}, "s3": {"endpoint": ""}})
    assert not [o for o in on_s3 if "minio" in o["metadata"]["name"]]
    config = next(o for o in on_s3 if o["kind"] == "ConfigMap")["data"]
    assert "AWS_ENDPOINT_URL" not in config
    mlflow = pod_specs(on_s3)["Deployment/mlflow"]["containers"][0]
    assert "MLFLOW_S3_ENDPOINT_URL" not in {e["name"] for e in mlflow["env"]}


def test_helm_values_use_only_keys_the_chart_documents():
    values = helm_values.load_values()
    assert helm_values.unknown_keys(values) == []
    assert values["runLauncher"]["type"] in helm_values.RUN_LAUNCHER_TYPES
    assert values["dagsterDaemon"]["enabled"] is True  # the sensor needs the daemon
    assert values["postgresql"]["enabled"] is True
    # re-running the install never makes a new database password: none is in the values, the
    # chart does not generate its Secret, and the install reads it back from that Secret
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["migrate"]["enabled"] is False  # on only for an upgrade that moves dagster
    runbook = (REPO / "docs" / "deploy-kubernetes.md").read_text().splitlines()
    generated = [line for line in runbook if "openssl rand" in line]
    assert generated and all(line.startswith("once ") for line in generated)  # only if missing
    assert any("get secret dagster-postgresql-secret" in line for line in runbook)
    deployment = helm_values.user_deployment(values)
    # the code server's pod as charts/dagster-user-deployments/templates/deployment-user.yaml
    # renders it: podSecurityContext on the pod, securityContext on the container
    code_server = {
        "securityContext": deployment["podSecurityContext"],
        "containers": [
            {"name": deployment["name"], "securityContext": deployment["securityContext"]}
        ],
        "volumes": deployment["volumes"],
    }
    assert pod_security.violations(code_server) == []
    assert pod_security.read_only_root(code_server) == []
    assert deployment["dagsterApiGrpcArgs"] == [
        "--module-name",
        "mlops_assets",
        "--attribute",
        "defs",
    ]

    misspelt = {**values, "userDeployments": values["dagster-user-deployments"]}
    assert helm_values.unknown_keys(misspelt) == ["userDeployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    typo = {**launcher, "envConfigMap": launcher["envConfigMaps"]}
    wrong = {
        **values,
        "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": typo}},
    }
    assert helm_values.unknown_keys(wrong) == ["runLauncher.config.k8sRunLauncher.envConfigMap"]


def test_container_context_of_the_values_is_accepted_by_dagster_k8s():
    values = helm_values.load_values()
    context = K8sContainerContext.create_from_config(
        helm_values.container_context(values, NAMESPACE)
    )
    assert context.namespace == NAMESPACE
    pod, container = context.run_k8s_config.pod_spec_config, context.run_k8s_config.container_config
    assert pod["service_account_name"] == "dagster-dagster-user-deployments-user-deployments"
    assert container["env_from"] == [
        {"config_map_ref": {"name": "dagster-dagster-user-deployments-mlops-assets-user-env"}},
        {"config_map_ref": {"name": "mlops-assets-env"}},
        {"secret_ref": {"name": "mlops-s3"}},
    ]
    deployment = helm_values.user_deployment(values)
    assert container["resources"] == deployment["resources"]  # what run workers get (#13921)
    # the chart forwards no security context (#9924): the run launcher's config carries it
    assert "security_context" not in container and "security_context" not in pod
    with pytest.raises(dg.DagsterInvalidConfigError, match="env_config_map"):
        K8sContainerContext.create_from_config({"k8s": {"env_config_map": ["mlops-assets-env"]}})


# ---- the run launcher, in dagster-k8s's own unit-test style --------------------------------------
def test_run_launcher_builds_the_run_worker_job_our_values_imply(tmp_path):
    """K8sRunLauncher with a MagicMock batch API: the Job body it would create for a retraining run."""
    values = helm_values.load_values()
    job, run_id = _launched_worker(values, tmp_path)
    _check_worker(job, values, run_id)
    (container,) = job.spec.template.spec.containers
    assert json.loads(container.args[3])["__class__"] == "ExecuteRunArgs"
    assert {e.name: e.value for e in container.env}["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    validate(client.ApiClient().sanitize_for_serialization(job))

    # as the values were: a pod security context on the user deployment only, which the chart
    # does not forward; a "restricted" namespace would refuse the run worker
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    before = {k: v for k, v in launcher.items() if k not in ("securityContext", "runK8sConfig")}
    values["runLauncher"]["config"]["k8sRunLauncher"] = before
    job, _ = _launched_worker(values, tmp_path)
    refused = pod_security.violations(
        client.ApiClient().sanitize_for_serialization(job.spec.template.spec)
    )
    assert "container dagster: allowPrivilegeEscalation must be false" in refused
    assert any("runAsNonRoot" in problem for problem in refused)


def _launched_worker(values: dict, tmp_path: Path) -> tuple[client.V1Job, str]:
    from unittest.mock import MagicMock

    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.test_utils import create_run_for_test
    from dagster_k8s import K8sRunLauncher

    batch_api = MagicMock()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")  # never called
    launcher = K8sRunLauncher(
        **helm_values.run_launcher_config(
            values, NAMESPACE, kubeconfig, "/opt/dagster/dagster_home"
        ),
        k8s_client_batch_api=batch_api,
    )
    origin = JobPythonOrigin(
        TRAINING_JOB,
        RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer("mlops_assets", "defs", working_directory=None),
            container_image=helm_values.image(values),
            container_context=helm_values.container_context(values, NAMESPACE),
            entry_point=["dagster"],  # what `dagster api grpc` reports for its origin
        ),
    )
    with dg.instance_for_test() as instance:
        launcher.register_instance(instance)
        run = create_run_for_test(
            instance,
            job_name=TRAINING_JOB,
            job_code_origin=origin,
            tags={"dagster/partition": HISTORY_DAYS[-1], "mlops/trigger": "drift"},
        )
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    (call,) = [c for c in batch_api.method_calls if c[0] == "create_namespaced_job"]
    assert call.kwargs["namespace"] == NAMESPACE
    return call.kwargs["body"], run.run_id


# ---- a real launch against an emulated Kubernetes API ----------------------------------------
@pytest.fixture
def moto_s3(tmp_path: Path):
    port = free_port()
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with running(command, f"http://127.0.0.1:{port}/moto-api/", tmp_path / "moto.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_retraining_job_launches_as_kubernetes_jobs_one_pod_per_step(
    tmp_path: Path, feature_history: Path, moto_s3: str
):
    values = helm_values.load_values()
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret"}
    s3 = s3fs.S3FileSystem(
        key=credentials["AWS_ACCESS_KEY_ID"],
        secret=credentials["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": moto_s3},
    )
    s3.mkdir(BUCKET)
    s3.put(str(feature_history / "assets" / "loan_default"), f"{BUCKET}/assets/", recursive=True)

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with mlflow_server(tmp_path / "mlflow") as tracking_uri, emulated_kubernetes() as api_url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_url)
        (dagster_home / "dagster.yaml").write_text(
            yaml.safe_dump(
                {
                    "run_launcher": {
                        "module": "dagster_k8s",
                        "class": "K8sRunLauncher",
                        "config": helm_values.run_launcher_config(
                            values, NAMESPACE, kubeconfig, "/opt/dagster/dagster_home"
                        ),
                    },
                    "run_coordinator": {
                        "module": "dagster._core.run_coordinator",
                        "class": "DefaultRunCoordinator",
                    },
                    "storage": {"sqlite": {"base_dir": str(dagster_home / "storage")}},
                    "telemetry": {"enabled": False},
                }
            )
        )
        # What deploy/chart's ConfigMap and the `mlops-s3` Secret hold, for this "cluster".
        platform_env = {
            **K8S_ENV,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "AWS_ENDPOINT_URL": moto_s3,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLOPS_SYNTHETIC_ROWS_PER_DAY": HISTORY_ROWS_PER_DAY,
        }
        api = api_client(api_url)
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        core.create_namespaced_config_map(
            NAMESPACE,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="mlops-assets-env"), data=platform_env
            ),
        )
        core.create_namespaced_secret(
            NAMESPACE,
            client.V1Secret(metadata=client.V1ObjectMeta(name="mlops-s3"), string_data=credentials),
        )
        # what the Dagster chart itself creates: the user deployment's env ConfigMap
        # (configmap-env-user.yaml) and the instance database's Secret, made once by hand
        core.create_namespaced_config_map(
            NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=USER_ENV), data={})
        )
        core.create_namespaced_secret(
            NAMESPACE,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=helm_values.POSTGRES_SECRET),
                string_data={"postgresql-password": "unused-here"},  # this test's instance: SQLite
            ),
        )

        # The code server, as the chart's user deployment runs it.
        port = free_port()
        base_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        server_env = {
            **base_env,
            **platform_env,
            **credentials,
            "DAGSTER_HOME": str(dagster_home),
            "MLOPS_HOME": str(tmp_path / "code-server"),
            "DAGSTER_CURRENT_IMAGE": helm_values.image(values),
            "DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT": json.dumps(
                helm_values.container_context(values, NAMESPACE)
            ),
        }
        grpc = [
            str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
            *helm_values.user_deployment(values)["dagsterApiGrpcArgs"],
        ]  # fmt: skip
        kubelet = Kubelet(
            url=api_url,
            namespace=NAMESPACE,
            pods_dir=tmp_path / "pods",
            executables={"dagster": str(BIN / "dagster")},
            env_overrides={"DAGSTER_HOME": str(dagster_home), "HOME": str(tmp_path)},
        )
        with _grpc_server(grpc, server_env, port, tmp_path / "grpc.log"), kubelet:
            launch = _launch(port, dagster_home, base_env, kubeconfig, HISTORY_DAYS[-1])
            run_id = launch
            with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                run = _wait_for_run(instance, run_id, kubelet, timeout=420)
                assert run.status == dg.DagsterRunStatus.SUCCESS, _pod_logs(tmp_path)
                assert not kubelet.errors, kubelet.errors

                jobs = {
                    job.metadata.name: job for job in batch.list_namespaced_job(NAMESPACE).items
                }
                worker = jobs[f"dagster-run-{run_id}"]
                steps = [job for name, job in jobs.items() if name.startswith("dagster-step-")]
                assert len(jobs) == 1 + len(steps)
                step_keys = {job.metadata.labels["dagster/op"] for job in steps}
                assert step_keys == {
                    "loan_default__training_set",
                    "loan_default__trained_model",
                    "loan_default__registered_model_version",
                }
                _check_worker(worker, values, run_id)
                for job in steps:
                    _check_step(job, values, run_id)
                for job in jobs.values():
                    body = api.sanitize_for_serialization(job)
                    body.pop("status", None)
                    validate(body)

                # assets travelled through the bucket, never a pod's disk
                assert s3.exists(
                    f"{BUCKET}/assets/loan_default/training_set/{HISTORY_DAYS[-1]}.parquet"
                )
                assert s3.exists(
                    f"{BUCKET}/assets/loan_default/registered_model_version/{HISTORY_DAYS[-1]}.parquet"
                )
                assert not list((tmp_path / "pods").glob("*/.mlops_home/assets"))
                from mlflow import MlflowClient

                champion = MlflowClient(tracking_uri).get_model_version_by_alias(
                    "loan-default-classifier", "champion"
                )
                assert champion.version in ("1", 1)
                assert champion.tags["dagster/run_id"] == run_id

                # terminating a run deletes its Job (and the kubelet stops its pod)
                second = _launch(port, dagster_home, base_env, kubeconfig, HISTORY_DAYS[-2])
                name = f"dagster-run-{second}"
                _wait_until(lambda: name in kubelet.started, "second run worker started")
                assert instance.run_launcher.terminate(second)
                with pytest.raises(client.ApiException) as gone:
                    batch.read_namespaced_job(name, NAMESPACE)
                assert gone.value.status == 404
                _wait_until(lambda: name in kubelet.finished, "second run worker stopped")


@contextmanager
def _grpc_server(command: list[str], env: dict[str, str], port: int, log: Path):
    """`dagster api grpc`, ready once its health check answers (as the chart's probe asks)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        check = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)]
        deadline = time.monotonic() + 120
        while subprocess.run(check, capture_output=True, env=env).returncode != 0:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "code server did not start"
            time.sleep(1)
        yield process
    finally:
        stop(process)


def _launch(port: int, dagster_home: Path, env: dict[str, str], kubeconfig: Path, day: str) -> str:
    """`dagster job launch` of the retraining job against the code server, as the sensor would."""
    run_config = {
        "execution": {
            "config": {
                "load_incluster_config": False,
                "kubeconfig_file": str(kubeconfig),
                "job_namespace": NAMESPACE,
            }
        }
    }
    run_id = str(uuid.uuid4())
    result = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-j",
            TRAINING_JOB,
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(port),
            "--config-json",
            json.dumps(run_config),
            "--tags",
            json.dumps({"dagster/partition": day, "mlops/trigger": "test"}),
            "--run-id",
            run_id,
        ],
        env={**env, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return run_id


def _wait_for_run(instance: dg.DagsterInstance, run_id: str, kubelet: Kubelet, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run and run.is_finished:
            return run
        time.sleep(2)
    raise TimeoutError(f"run {run_id} did not finish; kubelet: {kubelet.finished} {kubelet.errors}")


def _wait_until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.5)


def _pod_logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {log.parent.name}\n{log.read_text()[-2500:]}"
        for log in sorted((tmp_path / "pods").glob("*/pod.log"))
    )


def _env_sources(job: client.V1Job) -> tuple[set[str], set[str]]:
    (container,) = job.spec.template.spec.containers
    sources = container.env_from or []
    return (
        {s.config_map_ref.name for s in sources if s.config_map_ref},
        {s.secret_ref.name for s in sources if s.secret_ref},
    )


USER_ENV = f"{helm_values.USER_DEPLOYMENTS_FULLNAME}-mlops-assets-user-env"  # the chart's own


def _check_pod_security(job: client.V1Job) -> None:
    """Admitted by a namespace enforcing Pod Security "restricted", with a read-only root."""
    spec = client.ApiClient().sanitize_for_serialization(job.spec.template.spec)
    assert pod_security.violations(spec) == [], job.metadata.name
    assert pod_security.read_only_root(spec) == [], job.metadata.name
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    # where the code writes, with the root read-only (dagster-k8s passes the instance in the
    # command's arguments, so nothing is mounted into DAGSTER_HOME: it is an emptyDir)
    assert {"/tmp", "/home/dagster", "/opt/dagster/dagster_home"} <= mounts


def _check_worker(job: client.V1Job, values: dict, run_id: str) -> None:
    (container,) = job.spec.template.spec.containers
    assert container.image == helm_values.image(values)
    assert container.args[:3] == ["dagster", "api", "execute_run"]
    assert _env_sources(job) == ({USER_ENV, "mlops-assets-env"}, {"mlops-s3"})
    labels = job.metadata.labels
    assert labels["dagster/run-id"] == run_id and labels["dagster/job"] == TRAINING_JOB
    # the chart gives run workers the code server's resources (dagster issue 13921)
    deployment = helm_values.user_deployment(values)
    assert container.resources.to_dict()["limits"] == deployment["resources"]["limits"]
    # the code server's service account, not the launcher's `dagster`: the one to give an
    # IAM role (IRSA) for S3
    assert job.spec.template.spec.service_account_name == (
        f"{helm_values.USER_DEPLOYMENTS_FULLNAME}-user-deployments"
    )
    password = next(e for e in container.env if e.name == "DAGSTER_PG_PASSWORD")
    assert password.value_from.secret_key_ref.name == helm_values.POSTGRES_SECRET
    _check_pod_security(job)


def _check_step(job: client.V1Job, values: dict, run_id: str) -> None:
    (container,) = job.spec.template.spec.containers
    assert container.image == helm_values.image(values)
    assert container.args[:3] == ["dagster", "api", "execute_step"]
    assert _env_sources(job) == ({USER_ENV, "mlops-assets-env"}, {"mlops-s3"})
    assert job.metadata.labels["dagster/run-id"] == run_id
    group = (
        "registry"
        if job.metadata.labels["dagster/op"] == "loan_default__registered_model_version"
        else "training"
    )
    resources = container.resources.to_dict()
    assert resources["requests"] == STEP_RESOURCES[group]["requests"]
    assert resources["limits"] == STEP_RESOURCES[group]["limits"]
    _check_pod_security(job)
