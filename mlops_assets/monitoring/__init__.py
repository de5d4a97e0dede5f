"""Monitoring: drift detection, the Evidently report, batch predictions and served-model performance."""
