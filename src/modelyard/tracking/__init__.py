"""Experiment tracking: every run's parameters, per-step metrics and artifacts.

The local store is the run folder itself (`recipe.yaml`, `history.jsonl`, `metrics.json`
and the reports, written by the train stage); `store` reads it back in one shape and
compares two runs. `mlflow_sink` also sends a finished run to an MLflow tracking server when
the recipe's `tracking.mlflow_uri` says so.
"""

from __future__ import annotations

from modelyard.tracking.errors import TrackingError
from modelyard.tracking.store import TrackedRun, compare_runs, flatten, read_tracked

__all__ = ["TrackedRun", "TrackingError", "compare_runs", "flatten", "read_tracked"]
