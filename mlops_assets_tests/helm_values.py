"""deploy/helm/values.yaml checked against the official Dagster chart's documented values.

The chart cannot be downloaded here, so the keys its values schema accepts at the pinned version
(1.13.27) are written down below for the sections our file sets; a key the chart does not know
(a misspelled `userDeployments`, `envConfigMap`) is reported, as `helm install` with the chart's
values.schema.json would. `container_context` and `run_launcher_config` state what the chart's
templates make of our values, each fact with the template it comes from (read at 1.13.27 in
dagster-io/dagster's helm/dagster), so the launch tests build pods from what a cluster would get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

VALUES = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "values.yaml"
CHART_VERSION = "1.13.27"

_IMAGE = {"repository", "tag", "digest", "pullPolicy"}
_K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
_USER_DEPLOYMENT = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "replicaCount", "env", "envConfigMaps", "envSecrets",
    "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels",
    "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers",
    "deploymentStrategy", "service",
}  # fmt: skip
# Path (list items as `[]`) -> the keys the chart accepts there. Free-form maps (resources,
# securityContexts, raw Kubernetes config) are checked by Kubernetes itself, not listed here.
CHART_KEYS: dict[str, set[str]] = {
    "": {
        "global",
        "nameOverride",
        "fullnameOverride",
        "rbacEnabled",
        "imagePullSecrets",
        "dagsterWebserver",
        "computeLogManager",
        "pythonLogs",
        "dagster-user-deployments",
        "pipelineRun",
        "scheduler",
        "runLauncher",
        "postgresql",
        "generatePostgresqlPasswordSecret",
        "generateCeleryConfigSecret",
        "rabbitmq",
        "redis",
        "flower",
        "ingress",
        "dagsterDaemon",
        "busybox",
        "extraManifests",
        "serviceAccount",
        "retention",
        "additionalInstanceConfig",
        "telemetry",
        "migrate",
        "concurrency",
    },
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "dagster-user-deployments.deployments[]": _USER_DEPLOYMENT,
    "dagster-user-deployments.deployments[].image": _IMAGE,
    "dagster-user-deployments.deployments[].includeConfigInLaunchedRuns": {"enabled"},
    "dagster-user-deployments.deployments[].envConfigMaps[]": {"name", "optional"},
    "dagster-user-deployments.deployments[].envSecrets[]": {"name", "optional"},
    "runLauncher": {"type", "config"},
    "runLauncher.config": {"k8sRunLauncher", "celeryK8sRunLauncher", "customRunLauncher"},
    "runLauncher.config.k8sRunLauncher": _K8S_RUN_LAUNCHER,
    "runLauncher.config.k8sRunLauncher.envConfigMaps[]": {"name", "optional"},
    "runLauncher.config.k8sRunLauncher.envSecrets[]": {"name", "optional"},
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig",
        "podSpecConfig",
        "podTemplateSpecMetadata",
        "jobSpecConfig",
        "jobMetadata",
    },
    "postgresql": {
        "image",
        "enabled",
        "postgresqlHost",
        "postgresqlUsername",
        "postgresqlPassword",
        "postgresqlDatabase",
        "postgresqlParams",
        "postgresqlScheme",
        "service",
    },
    "dagsterDaemon": {
        "enabled",
        "image",
        "heartbeatTolerance",
        "runCoordinator",
        "runMonitoring",
        "runRetries",
        "sensors",
        "schedules",
        "backfills",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "annotations",
        "volumeMounts",
        "volumes",
        "initContainers",
        "sidecarContainers",
        "schedulerName",
        "logLevel",
        "checkDbReadyInitContainer",
        "extraContainers",
        "extraPrependedInitContainers",
        "deploymentStrategy",
        "freshnessEvaluation",
    },
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config": {"queuedRunCoordinator", "customRunCoordinator"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns",
        "tagConcurrencyLimits",
        "dequeueIntervalSeconds",
        "dequeueUseThreads",
        "dequeueNumWorkers",
        "blockOpConcurrencyLimitedRuns",
    },
    "telemetry": {"enabled"},
}
RUN_LAUNCHER_TYPES = {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"}


def load_values(path: Path = VALUES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def unknown_keys(values: Any, path: str = "") -> list[str]:
    """Every key under a checked section that the chart does not document, as a dotted path."""
    problems: list[str] = []
    if isinstance(values, dict):
        allowed = CHART_KEYS.get(path)
        for key, value in values.items():
            child = f"{path}.{key}" if path else key
            if allowed is not None and key not in allowed:
                problems.append(child)
            problems += unknown_keys(value, child)
    elif isinstance(values, list):
        for item in values:
            problems += unknown_keys(item, f"{path}[]")
    return problems


def user_deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


# Names the chart derives for release "dagster" (`dagster.fullname` in each chart's _helpers.tpl:
# the release name, or release-chart when the release name does not contain the chart's name).
RELEASE = "dagster"
USER_DEPLOYMENTS_FULLNAME = f"{RELEASE}-dagster-user-deployments"  # the subchart's fullname


def container_context(values: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The container context the chart gives our code server (DAGSTER_CLI_API_GRPC_CONTAINER_
    CONTEXT), which every run and step launched from it inherits. Each fact is from
    charts/dagster-user-deployments/templates/helpers/_helpers.tpl, `k8sContainerContext`."""
    deployment = user_deployment(values)
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]  # deployment-user.yaml: else none
    subchart = values["dagster-user-deployments"]
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        # first the chart's own per-deployment ConfigMap (configmap-env-user.yaml), then ours
        "env_config_maps": [
            f"{USER_DEPLOYMENTS_FULLNAME}-{deployment['name']}-user-env",
            *[source["name"] for source in deployment.get("envConfigMaps", [])],
        ],
        "namespace": namespace,
        # `dagsterUserDeployments.serviceAccountName`: global, then serviceAccount.name, then this
        "service_account_name": f"{USER_DEPLOYMENTS_FULLNAME}-user-deployments",
    }
    if subchart.get("imagePullSecrets"):
        k8s["image_pull_secrets"] = subchart["imagePullSecrets"]
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = [source["name"] for source in deployment["envSecrets"]]
    # passed through as they are; podSecurityContext and securityContext are NOT (dagster #9924)
    for key, field in (
        ("volumeMounts", "volume_mounts"), ("volumes", "volumes"), ("labels", "labels"),
        ("resources", "resources"), ("schedulerName", "scheduler_name"), ("env", "env"),
    ):  # fmt: skip
        if deployment.get(key):
            k8s[field] = deployment[key]
    return {"k8s": k8s}


def image(values: dict[str, Any]) -> str:
    spec = user_deployment(values)["image"]
    return f"{spec['repository']}:{spec['tag']}"


def run_launcher_config(
    values: dict[str, Any], namespace: str, kubeconfig: Path, dagster_home: str
) -> dict[str, Any]:
    """The K8sRunLauncher instance config the chart writes for our values, from
    templates/helpers/instance/_run-launcher.tpl (`dagsterYaml.runLauncher.k8s`); the kubeconfig
    replaces in-cluster config so a test can point it at an emulated API."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "job_namespace": launcher.get("jobNamespace", namespace),
        "image_pull_policy": launcher["imagePullPolicy"],
        # `dagster.serviceAccountName` of the parent chart: the release's fullname
        "service_account_name": RELEASE,
        "dagster_home": dagster_home,
        "instance_config_map": f"{RELEASE}-instance",
        # `dagster.postgresql.secretName`: global.postgresqlSecretName's default
        "postgres_password_secret": POSTGRES_SECRET,
    }
    if values.get("imagePullSecrets"):
        config["image_pull_secrets"] = values["imagePullSecrets"]
    for key, field in (
        ("envConfigMaps", "env_config_maps"), ("envSecrets", "env_secrets"),
    ):  # fmt: skip
        if launcher.get(key):
            config[field] = [source["name"] for source in launcher[key]]
    for key, field in (
        ("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes"),
        ("labels", "labels"), ("resources", "resources"), ("schedulerName", "scheduler_name"),
        ("securityContext", "security_context"),
    ):  # fmt: skip
        if launcher.get(key):
            config[field] = launcher[key]
    run_k8s = launcher.get("runK8sConfig") or {}
    if run_k8s:
        config["run_k8s_config"] = {
            field: run_k8s[key]
            for key, field in (
                ("containerConfig", "container_config"),
                ("podSpecConfig", "pod_spec_config"),
                ("podTemplateSpecMetadata", "pod_template_spec_metadata"),
                ("jobSpecConfig", "job_spec_config"),
                ("jobMetadata", "job_metadata"),
            )
            if run_k8s.get(key)
        }
    return config


POSTGRES_SECRET = "dagster-postgresql-secret"
