"""Pod Security Standards, "restricted" profile: the rules a namespace labelled
`pod-security.kubernetes.io/enforce: restricted` applies when it admits a pod
(https://kubernetes.io/docs/concepts/security/pod-security-standards/, Kubernetes 1.33).

`violations` takes a pod spec as the API serializes it (camelCase) and names every rule broken,
so a test says which field of which container is wrong.
"""

from __future__ import annotations

from typing import Any

# Volume types "restricted" allows (everything else, hostPath first, is refused).
ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every "restricted" rule `pod_spec` breaks, as `<where>: <rule>`; empty when admitted."""
    problems = [
        f"pod: {field} must not be true" for field in HOST_NAMESPACES if pod_spec.get(field)
    ]
    pod = pod_spec.get("securityContext") or {}
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    if pod.get("runAsUser") == 0:
        problems.append("pod: runAsUser must not be 0")
    if (pod.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod: seccompProfile must not be Unconfined")
    for container in _containers(pod_spec, "initContainers", "containers", "ephemeralContainers"):
        problems += [f"container {container['name']}: {p}" for p in _container(container, pod)]
    return problems


def _container(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    security = container.get("securityContext") or {}
    problems = []
    if security.get("privileged"):
        problems.append("privileged must not be true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    capabilities = security.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append("capabilities must drop ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        problems.append("capabilities may add only NET_BIND_SERVICE")
    if not security.get("runAsNonRoot", pod.get("runAsNonRoot")):
        problems.append("runAsNonRoot must be true (container or pod)")
    if security.get("runAsUser", pod.get("runAsUser")) == 0:
        problems.append("runAsUser must not be 0")
    seccomp = (security.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
    if seccomp not in ALLOWED_SECCOMP:
        problems.append("seccompProfile must be RuntimeDefault or Localhost (container or pod)")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        problems.append("hostPort must not be set")
    if security.get("procMount", "Default") != "Default":
        problems.append("procMount must be Default")
    return problems


def read_only_root(pod_spec: dict[str, Any]) -> list[str]:
    """The containers whose root filesystem is writable (not a Pod Security rule: ours)."""
    return [
        container["name"]
        for container in _containers(pod_spec, "initContainers", "containers")
        if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem")
    ]


def _containers(pod_spec: dict[str, Any], *fields: str) -> list[dict[str, Any]]:
    return [container for field in fields for container in pod_spec.get(field) or []]
