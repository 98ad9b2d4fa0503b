"""Send a finished run folder to an MLflow tracking server (the recipe's `tracking:`).

The run is logged once it is saved, from the files of the local store, so a slow or
unreachable server never holds up training and MLflow shows exactly what the folder holds:
parameters as the recipe's dotted keys, the per-step values with the step and time they were
measured, the final metrics at step 0, and the reports as artifacts. The MLflow run's id is
written to `RUN/tracking/mlflow.json`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from modelyard.fsutil import atomic_write_json
from modelyard.plugins import require
from modelyard.recipe import TrackingConfig
from modelyard.tracking.errors import TrackingError
from modelyard.tracking.store import TrackedRun, read_tracked

# a sub-folder: top-level files outside the manifest make a run refuse to load
TRACKING = "tracking/mlflow.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")
_MAX_PARAM = 6000  # MLflow's limit on a parameter value
# MLflow's limits on one log_batch call
_PARAMS_PER_BATCH, _METRICS_PER_BATCH = 100, 1000
T = TypeVar("T")


def mlflow_key(key: str) -> str:
    """Return `key` with the characters MLflow refuses in a metric or parameter name as `_`."""
    return _UNSAFE.sub("_", key)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _client(uri: str) -> Any:
    require("mlflow", extra="tracking")
    # an unreachable server fails after a few seconds instead of MLflow's default of minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _log(client: Any, run_id: str, run: TrackedRun, log_artifacts: bool) -> None:
    from mlflow.entities import Metric, Param

    params = [Param(mlflow_key(k), v[:_MAX_PARAM]) for k, v in sorted(run.params.items())]
    for chunk in _chunks(params, _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=list(chunk))
    now = int(time.time() * 1000)
    metrics = [Metric(mlflow_key(s.key), s.value, int(s.time * 1000), s.step) for s in run.steps]
    metrics += [Metric(mlflow_key(k), v, now, 0) for k, v in sorted(run.metrics.items())]
    for batch in _chunks(metrics, _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=list(batch))
    if log_artifacts:
        for path in run.artifacts:
            client.log_artifact(run_id, str(path))


def log_run(run_dir: str | Path, config: TrackingConfig, name: str | None = None) -> str:
    """Log the run folder to the MLflow server of `config`; return the MLflow run id.

    Raises TrackingError when the server cannot be reached or refuses the run (the run
    folder is complete either way), MissingExtraError without the tracking extra.
    """
    if config.mlflow_uri is None:
        raise TrackingError("tracking.mlflow_uri is not set; nothing to log to")
    path = Path(run_dir)
    run = read_tracked(path)
    client = _client(config.mlflow_uri)
    try:
        experiment = client.get_experiment_by_name(config.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(config.experiment)
        )
        created = client.create_run(
            experiment_id, run_name=name or path.name, tags={"modelyard.run_dir": str(path)}
        )
        run_id = str(created.info.run_id)
        _log(client, run_id, run, config.log_artifacts)
        client.set_terminated(run_id)
    except Exception as exc:  # MLflow raises its own, requests' and OS errors alike
        raise TrackingError(
            f"could not log {path} to MLflow at {config.mlflow_uri}: {exc}; the run itself is "
            "saved (check the server, or set tracking.mlflow_uri null)"
        ) from exc
    (path / TRACKING).parent.mkdir(exist_ok=True)
    atomic_write_json(
        path / TRACKING,
        {
            "mlflow": {
                "uri": config.mlflow_uri,
                "experiment": config.experiment,
                "experiment_id": str(experiment_id),
                "run_id": run_id,
            }
        },
    )
    return run_id


def read_back(uri: str, run_id: str) -> dict[str, float]:
    """Return the latest value of every metric of an MLflow run (what the server holds)."""
    return dict(_client(uri).get_run(run_id).data.metrics)
