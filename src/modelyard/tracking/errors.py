"""The error of experiment tracking."""

from __future__ import annotations

from modelyard.errors import ModelyardError


class TrackingError(ModelyardError):
    """A run folder cannot be read as a tracked run, or the MLflow server refused the run."""
