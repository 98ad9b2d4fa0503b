"""Runs logged to MLflow: a SQLite tracking store, and a real `mlflow server` on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import RecipeError
from modelyard.recipe import TrackingConfig, build_recipe
from modelyard.tracking import TrackingError, read_tracked
from modelyard.tracking.mlflow_sink import TRACKING, log_run, mlflow_key, read_back
from modelyard.tracking.server import free_port, local_mlflow_server
from tests.tracking.test_store import fake_run

pytest.importorskip("mlflow")


def expected_metrics(run_dir: Path) -> dict[str, float]:
    """Return what MLflow should hold of a run: its final metrics and each series' last value."""
    run = read_tracked(run_dir)
    latest = {mlflow_key(s.key): s.value for s in run.steps}  # steps are sorted
    return {**latest, **{mlflow_key(k): v for k, v in run.metrics.items()}}


@pytest.mark.slow  # importing MLflow and creating its tables: a minute on a loaded machine
def test_a_run_folder_is_logged_and_reads_back_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a SQLite store keeps artifacts in ./mlruns
    run = fake_run(tmp_path / "one", 0.001, 0.75)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_run(run, TrackingConfig(mlflow_uri=uri, experiment="tests"))
    assert read_back(uri, run_id) == expected_metrics(run)
    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "train.loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.7)]
    assert client.get_run(run_id).data.params["train.lr"] == "0.001"
    assert sorted(a.path for a in client.list_artifacts(run_id)) == [
        "history.jsonl",
        "metrics.json",
        "recipe.yaml",
    ]
    saved = json.loads((run / TRACKING).read_text(encoding="utf-8"))
    assert saved["mlflow"]["run_id"] == run_id and saved["mlflow"]["experiment"] == "tests"


def test_an_unreachable_server_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    run = fake_run(tmp_path / "one", 0.001, 0.75)
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match="could not log .* the run itself is saved"):
        log_run(run, TrackingConfig(mlflow_uri=uri))
    assert not (run / TRACKING).exists()


def test_the_tracking_section_is_checked(tiny_recipe: dict[str, Any]) -> None:
    with pytest.raises(RecipeError, match="tracking.mlflow_uri needs a scheme"):
        build_recipe({**tiny_recipe, "tracking": {"mlflow_uri": "localhost:5000"}})
    with pytest.raises(RecipeError, match="tracking.mlfow_uri: unknown key"):
        build_recipe({**tiny_recipe, "tracking": {"mlfow_uri": "http://127.0.0.1:5000"}})
    with pytest.raises(TrackingError, match="tracking.mlflow_uri is not set"):
        log_run(Path("."), TrackingConfig())


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 with a SQLite store; yields its URI."""
    with local_mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.mark.slow
def test_a_trained_run_reads_back_from_a_real_server_as_in_metrics_json(
    mlflow_server: str, tiny_recipe: dict[str, Any]
) -> None:
    from mlflow.tracking import MlflowClient

    import modelyard.api as api

    raw = {
        **tiny_recipe,
        "train": {**tiny_recipe["train"], "epochs": 1},
        "evaluate": {"speed": False},
        "tracking": {"mlflow_uri": mlflow_server, "experiment": "tiny"},
    }
    result = api.train(build_recipe(raw), progress=False)
    run_id = json.loads((result.run_dir / TRACKING).read_text(encoding="utf-8"))["mlflow"]["run_id"]
    remote = read_back(mlflow_server, run_id)
    metrics = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert remote["test.accuracy"] == metrics["test"]["accuracy"]
    assert remote == expected_metrics(result.run_dir)
    assert any(k.startswith("dev.") for k in remote) and "train.loss" in remote
    artifacts = {a.path for a in MlflowClient(mlflow_server).list_artifacts(run_id)}
    assert {"metrics.json", "recipe.yaml", "history.jsonl", "report.md"} <= artifacts
    assert not any(a.endswith(".safetensors") for a in artifacts)  # weights stay local
    assert api.predict(result.run_dir, ["refund"])  # the record beside it keeps the run loadable
