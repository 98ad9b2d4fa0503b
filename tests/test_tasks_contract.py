"""Every encoder task through train → save → load → predict → serve, on the tiny BERT with
data built in the test; each answers in its own shape everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import modelyard
from modelyard.errors import ModelyardError
from modelyard.recipe import TASKS, build_recipe
from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from tests.conftest import make_rows, write_csv
from tests.seqtasks.test_seqtasks import multi_label_rows, regression_rows
from tests.tagging.conftest import tagged_rows, write_jsonl

TEXT = "refund invoice password login parcel 42 today"


def _data(task: str, folder: Path) -> Path:
    if task == "token-classification":
        return write_jsonl(folder / "data.jsonl", tagged_rows(60))
    rows = {"classification": make_rows, "multi-label": multi_label_rows}.get(task, regression_rows)
    return write_csv(folder / "data.csv", rows(60))


def _shape(task: str) -> Callable[[dict[str, Any]], bool]:
    return {
        "classification": lambda a: "predicted_label" in a and "probabilities" in a,
        "token-classification": lambda a: {"entities", "words", "tags", "truncated"} <= set(a),
        "multi-label": lambda a: {"labels", "probabilities", "truncated"} <= set(a),
        "regression": lambda a: isinstance(a.get("value"), float),
    }[task]


KINDS = {
    "token-classification": "token-classifier",
    "multi-label": "multi-label-classifier",
    "regression": "regressor",
}
ENCODER_TASKS = ("classification", "token-classification", "multi-label", "regression")


def test_the_contract_covers_every_encoder_task() -> None:
    # language-modeling and generation run on decoders / masked LMs: tests/generation covers them
    assert set(TASKS) - set(ENCODER_TASKS) == {"language-modeling", "generation"}


@pytest.mark.parametrize("task", ENCODER_TASKS)
def test_task_trains_saves_loads_predicts_and_serves(
    task: str, tmp_path: Path, tiny_backbone: Path
) -> None:
    recipe = build_recipe(
        {
            "task": task,
            "run": {"name": task, "output_dir": str(tmp_path / "runs"), "seed": 1},
            "data": {"path": str(_data(task, tmp_path))},
            "model": {"backbone": str(tiny_backbone), "max_length": 32},
            "train": {
                "epochs": 1,
                "batch_size": 8,
                "lr": 5e-3,
                "precision": "fp32",
                "checkpoint_every": None,
                "num_threads": 1,
            },
            "evaluate": {"speed": False},
        },
        "recipe",
        [],
    )
    run = modelyard.train(recipe, progress=False).run_dir
    # load → predict, straight from the saved folder
    [answer] = modelyard.predict(run, TEXT)
    assert _shape(task)(answer), answer
    if task != "classification":
        # the stages that work on classifiers refuse the other tasks' runs with a clear error
        for stage in (
            lambda: modelyard.explain(run, TEXT),
            lambda: modelyard.api.compress(run, methods=["distill:1"]),
        ):
            with pytest.raises(ModelyardError, match=f"{task} run|'{KINDS.get(task)}' artifact"):
                stage()
    # registry → serve → /v1/predict answers the same
    store = ModelStore(tmp_path / "registry")
    modelyard.api.push(run, "m", registry=store.root)
    settings = ServeSettings.model_validate(
        {"models": ["m"], "watch_aliases_s": None, "auth": False}
    )
    with TestClient(create_app(settings, store=store)) as client:
        response = client.post("/v1/predict", json={"texts": [TEXT]})
        assert response.status_code == 200, response.text
        [served] = response.json()["predictions"]
        assert _shape(task)(served), served
        listed = client.get("/v1/models").json()["models"]
        assert listed[0]["kind"] == ("classifier" if task == "classification" else task)
