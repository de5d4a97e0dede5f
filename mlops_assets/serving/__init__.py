"""Serving: daily batch predictions and their measured performance (assets), and online serving
of the champion (`python -m mlops_assets.serving`)."""
