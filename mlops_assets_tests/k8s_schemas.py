"""Kubernetes objects checked against the API's own schemas (PyPI kubernetes-validate, strict).

Strict schemas reject unknown fields, so a misspelled key fails a test instead of being ignored
by a cluster. Custom resources (KServe) have no schema there: their Kubernetes-typed parts are
checked against the API types they embed.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.33"


def validate(obj: dict[str, Any]) -> None:
    """A built-in object (Job, Pod, Deployment, ...) against its strict schema."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def validate_as(fragment: Any, schema: str) -> None:
    """A fragment against one API type, e.g. `objectmeta-meta-v1` or `resourcerequirements-v1`."""
    folder = f"kubernetes-json-schema/v{_schema_version()}-local-strict"
    contents = utils.schema_contents(f"{folder}/{schema}.json", KUBERNETES_VERSION)
    definitions = utils.schema_contents(f"{folder}/_definitions.json", KUBERNETES_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(contents) @ Registry())
    jsonschema.validators.Draft202012Validator(contents, registry=registry).validate(fragment)


def _schema_version() -> str:
    wanted = utils.major_minor(KUBERNETES_VERSION)
    return [v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1]


# The parts of KServe's v1beta1 InferenceService the platform writes, from KServe's API reference;
# anything else is rejected, like a strict schema would.
INFERENCE_SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["predictor"],
            "properties": {
                "predictor": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["model"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "serviceAccountName": {"type": "string"},
                        "model": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["modelFormat", "storageUri"],
                            "properties": {
                                "modelFormat": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["name"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "version": {"type": "string"},
                                    },
                                },
                                "protocolVersion": {"enum": ["v1", "v2", "grpc-v2"]},
                                "runtime": {"type": "string"},
                                "storageUri": {"type": "string", "minLength": 1},
                                "resources": {"type": "object"},
                            },
                        },
                    },
                }
            },
        },
    },
}


def validate_inference_service(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, INFERENCE_SERVICE)
    validate_as(obj["metadata"], "objectmeta-meta-v1")
    validate_as(obj["spec"]["predictor"]["model"].get("resources", {}), "resourcerequirements-v1")
