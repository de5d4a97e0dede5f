"""deploy/helm/values.yaml checked against the official Dagster chart's documented values.

The chart cannot be downloaded here, so the keys its values schema accepts at the pinned version
(1.13.27) are written down below for the sections our file sets; a key the chart does not know
(a misspelled `userDeployments`, `envConfigMap`) is reported, as `helm install` with the chart's
values.schema.json would. `container_context` turns the user deployment into the container
context the chart hands to `dagster api grpc` (DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT).
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


def container_context(values: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The container context the chart gives the code server of our user deployment.

    With `includeConfigInLaunchedRuns`, the chart serializes the deployment's env sources,
    pull policy, security contexts and resources, snake-cased, into the `k8s` section.
    """
    deployment = user_deployment(values)
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    k8s: dict[str, Any] = {
        "namespace": namespace,
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [source["name"] for source in deployment.get("envConfigMaps", [])],
        "env_secrets": [source["name"] for source in deployment.get("envSecrets", [])],
        "run_k8s_config": {
            "pod_spec_config": {"security_context": deployment["podSecurityContext"]},
        },
    }
    return {"k8s": k8s}


def image(values: dict[str, Any]) -> str:
    spec = user_deployment(values)["image"]
    return f"{spec['repository']}:{spec['tag']}"


def run_launcher_config(
    values: dict[str, Any], namespace: str, kubeconfig: Path, dagster_home: str
) -> dict[str, Any]:
    """The K8sRunLauncher instance config our values imply (as the chart writes it)."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = launcher["runK8sConfig"]
    return {
        "service_account_name": "dagster",
        "instance_config_map": "dagster-instance",
        "dagster_home": dagster_home,
        "job_namespace": namespace,
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "image_pull_policy": launcher["imagePullPolicy"],
        "env_config_maps": [source["name"] for source in launcher["envConfigMaps"]],
        "env_secrets": [source["name"] for source in launcher["envSecrets"]],
        "run_k8s_config": {"container_config": run_k8s["containerConfig"]},
    }
