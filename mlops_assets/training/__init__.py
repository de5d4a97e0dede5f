"""Training: the time-split training set, the model pipeline, MLflow tracking and promotion gates."""
