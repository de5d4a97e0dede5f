"""The MLflow Model Registry: the MLflow resource, registration, the champion alias and rollback."""
