"""Feature engineering: the contract's derived features, computed by its feature module."""
