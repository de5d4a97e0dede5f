"""mlops_assets: a production ML lifecycle as a Dagster code location."""

from mlops_assets.definitions import defs

__all__ = ["defs"]
