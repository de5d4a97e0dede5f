"""Feature engineering: plain functions and the `loan_features` asset."""
