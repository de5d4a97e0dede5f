"""The MLflow Model Registry: registration, the champion alias and rollback."""
