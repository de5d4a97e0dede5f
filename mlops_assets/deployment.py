"""Per-step Kubernetes resources: what each asset's pod asks for under `k8s_job_executor`.

Every asset carries these as its `dagster-k8s/config` op tag; they only take effect with the
Kubernetes profile (MLOPS_DEPLOYMENT=k8s), where each step runs in its own pod. Sized for the
default 2,000 applications a day and a 30-day window; `benchmarks/partition_memory.py` shows a
1M-row partition peaking at about 2 GiB through features, drift and scoring, so raise the memory
limits with the volume.
"""

from __future__ import annotations

from typing import Any


def _sized(requests: tuple[str, str], limits: tuple[str, str]) -> dict[str, dict[str, str]]:
    """Kubernetes resources from (cpu, memory) requests and limits."""
    return {
        "requests": {"cpu": requests[0], "memory": requests[1]},
        "limits": {"cpu": limits[0], "memory": limits[1]},
    }


STEP_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "ingestion": _sized(("250m", "512Mi"), ("1", "2Gi")),
    "features": _sized(("250m", "512Mi"), ("1", "2Gi")),
    # Training fits the model on the whole window and evaluates the gates: the most of both.
    "training": _sized(("1", "2Gi"), ("2", "6Gi")),
    "registry": _sized(("250m", "1Gi"), ("1", "3Gi")),
    "monitoring": _sized(("500m", "1Gi"), ("2", "4Gi")),
    "serving": _sized(("250m", "1Gi"), ("1", "3Gi")),
}


def k8s_op_tags(group: str) -> dict[str, Any]:
    """The `dagster-k8s/config` op tag giving a step of `group` its requests and limits."""
    return {"dagster-k8s/config": {"container_config": {"resources": STEP_RESOURCES[group]}}}
