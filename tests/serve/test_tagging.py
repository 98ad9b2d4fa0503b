"""A token-classification run served beside a classifier: /v1/predict answers entity spans."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import modelyard
from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.settings import ServeSettings
from tests.serve.conftest import Keys
from tests.tagging.conftest import train_ner_run

TEXT = "help password login with parcel 42 today"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    return train_ner_run(tmp_path_factory.mktemp("serve-ner"), tiny_backbone)


@pytest.fixture()
def client(
    tmp_path: Path, full_run: Path, tiny_runs: list[Path], keys: Keys
) -> Iterator[TestClient]:
    store = ModelStore(tmp_path / "registry")
    store.push(full_run, "ner")
    store.push(tiny_runs[0], "tiny")
    settings = ServeSettings.model_validate({"models": ["ner", "tiny"], "watch_aliases_s": None})
    with TestClient(create_app(settings, store=store, keys=keys.store)) as test_client:
        yield test_client


def test_predict_answers_entity_spans(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/predict", json={"model": "ner", "texts": [TEXT, "today"]}, headers=keys.headers()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "ner" and body["version"] == "1"
    first, second = body["predictions"]
    assert first["words"] == TEXT.split() and len(first["tags"]) == len(first["words"])
    for entity in first["entities"]:
        assert TEXT[entity["start"] : entity["end"]] == entity["text"]
    assert second["truncated"] is False
    assert (
        first == modelyard.predict(client.app.state.serve.models.taggers["ner"].run.path, TEXT)[0]
    )


def test_the_classifier_beside_it_still_classifies(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/predict", json={"model": "tiny", "texts": ["refund"]}, headers=keys.headers()
    )
    assert response.status_code == 200
    assert "predicted_label" in response.json()["predictions"][0]


def test_models_lists_the_token_classifier(client: TestClient, keys: Keys) -> None:
    models = {
        m["name"]: m for m in client.get("/v1/models", headers=keys.headers()).json()["models"]
    }
    assert models["ner"]["kind"] == "token-classification"
    assert models["ner"]["labels"][0] == "O"


def test_open_inference_protocol_refuses_it_clearly(client: TestClient, keys: Keys) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXT]}]}
    response = client.post("/v2/models/ner/infer", json=body, headers=keys.headers())
    assert response.status_code == 404
    assert "token-classification run; use /v1/predict" in response.json()["error"]
