"""The `tracking:` section: where a run's parameters, metrics and artifacts are also sent.

Every run always keeps them in its own folder (the local store: `recipe.yaml`,
`history.jsonl`, `metrics.json` and the reports); this section adds an MLflow server.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from modelyard.recipe.base import Section


class TrackingConfig(Section):
    """Experiment tracking beyond the run folder: an MLflow tracking server."""

    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI (e.g. http://127.0.0.1:5000, or sqlite:///mlflow.db); "
        "null: the run folder only. Needs the tracking extra (pip install 'modelyard[tracking]').",
    )
    experiment: str = Field(
        "modelyard",
        min_length=1,
        description="MLflow experiment the run is logged under (created when missing).",
    )
    log_artifacts: bool = Field(
        True,
        description="Also upload the run's reports and small files (metrics, recipe, history, "
        "plots, model card); the weights stay in the run folder.",
    )

    @field_validator("mlflow_uri")
    @classmethod
    def _uri_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value and not value.startswith("file:"):
            raise ValueError(
                "tracking.mlflow_uri needs a scheme: http://HOST:PORT, https://..., "
                "sqlite:///PATH or file:///PATH"
            )
        return value
